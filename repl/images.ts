/**
 * REPL `images stats`, `images find <query>`: the catalogue as an administrator sees it;
 * `images retag <query>|--all` (repl/classify.ts): classify images again; and
 * `images reprocess <query> [--status <status>]` (repl/queue.ts): run the ingest pipeline again.
 */
import type { ServiceBroker } from "moleculer";
import { asOperator, restOf, type ReplArgs, type ReplCommand } from "../cluster/repl-commands.ts";
import type { ImageDoc, ImageStatus } from "../models/images/image.ts";
import { retag } from "./classify.ts";
import { reprocessImages } from "./queue.ts";

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

async function retagImages(broker: ServiceBroker, query: string): Promise<void> {
	const report = await retag(broker, query || undefined, ({ total, tagged, failed }) => {
		process.stdout.write(`\rretagged ${tagged}/${total}${failed.length ? `, ${failed.length} failed` : ""}   `);
	});
	process.stdout.write("\n");
	for (const { id, error } of report.failed) console.log(`  ${id}: ${error}`);
}

const USAGE =
	"images stats | images find <query> | images retag <query> | images retag --all | images reprocess <query> [--status failed] (queries: the search syntax of GET /api/images?q=, e.g. tag:dog owner:alice date:2024)";

const commands: ReplCommand[] = [
	{
		command: "images <op>",
		description: USAGE,
		options: [
			{ option: "--all", description: "images retag: every image" },
			{ option: "--status <status>", description: "images reprocess: only images with this status (processing, ready, failed)" }
		],
		async action(broker: ServiceBroker, args: ReplArgs) {
			const query = restOf(args, 2)
				.replace(/(^|\s)--all(\s|$)/, " ")
				.replace(/(^|\s)--status\s+\S+/, " ")
				.trim();
			if (args.op === "stats") return stats(broker);
			if (args.op === "find") return find(broker, query);
			if (args.op === "retag" && (query || args.options.all)) return retagImages(broker, query);
			if (args.op === "reprocess") {
				const ids = await reprocessImages(broker, query, args.options.status as ImageStatus | undefined);
				return console.log(`Reprocessing ${ids.length} image(s).`);
			}
			console.log(`usage: ${USAGE}`);
		}
	}
];

export default commands;
