/** REPL `images stats` and `images find <query>`: the catalogue as an administrator sees it. */
import type { ServiceBroker } from "moleculer";
import { asOperator, restOf, type ReplArgs, type ReplCommand } from "../cluster/repl-commands.ts";
import type { ImageDoc } from "../models/image.ts";

const FIND_LIMIT = 50;

async function stats(broker: ServiceBroker): Promise<void> {
	const result = await broker.call<Record<string, unknown>, object>("images.stats", {}, asOperator);
	console.table(Object.entries(result).map(([key, value]) => ({ key, value: typeof value === "object" ? JSON.stringify(value) : value })));
}

async function find(broker: ServiceBroker, query: string): Promise<void> {
	const page = await broker.call<{ items: ImageDoc[]; total: number }, object>("images.list", { ...(query ? { q: query } : {}), limit: FIND_LIMIT }, asOperator);
	console.log(`${page.total} image(s) match${page.total > page.items.length ? `; the newest ${page.items.length} shown` : ""}`);
	console.table(
		page.items.map(image => ({
			id: image.id,
			name: image.name,
			owner: image.ownerName,
			format: image.format,
			size: image.size,
			visibility: image.visibility,
			encrypted: image.encrypted,
			status: image.status,
			created: image.createdAt
		}))
	);
}

const commands: ReplCommand[] = [
	{
		command: "images <op>",
		description: "images stats | images find <query> (search syntax of GET /api/images?q=, e.g. tag:dog owner:alice date:2024)",
		async action(broker: ServiceBroker, args: ReplArgs) {
			if (args.op === "stats") return stats(broker);
			if (args.op === "find") return find(broker, restOf(args, 2));
			console.log(`unknown: images ${args.op} (use: images stats | images find <query>)`);
		}
	}
];

export default commands;
