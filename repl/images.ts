/**
 * REPL `images stats`, `images find <query>`: the catalogue as an administrator sees it;
 * `images retag <query>|--all` (repl/classify.ts): classify images again; and
 * `images reprocess <query>|--all [--status <status>]` (repl/queue.ts): run the ingest pipeline
 * again. A query is everything typed after the sub-command, in the search syntax of
 * GET /api/images?q= (quotes kept: `images find "red car" tag:"new york"`). The commands that
 * rewrite images never take a missing query for "every image": that is `--all`.
 */
import type { ServiceBroker } from "moleculer";
import { asOperator, UsageError, type ReplArgs, type ReplCommand } from "../cluster/repl-commands.ts";
import type { ImageDoc, ImageStatus, SearchPage } from "../models/images/image.ts";
import { retag } from "./classify.ts";
import { reprocessImages } from "./queue.ts";

const FIND_LIMIT = 50;

async function stats(broker: ServiceBroker): Promise<void> {
	const result = await broker.call<Record<string, unknown>, object>("images.stats", {}, asOperator);
	console.table(Object.entries(result).map(([key, value]) => ({ key, value: typeof value === "object" ? JSON.stringify(value) : value })));
}

async function find(broker: ServiceBroker, query: string): Promise<void> {
	const page = await broker.call<SearchPage<ImageDoc>, object>("images.list", { q: query, limit: FIND_LIMIT }, asOperator);
	if (page.total === 0) return console.log("No image matches.");
	const more = page.totalIsEstimate ? " or more" : "";
	console.log(`${page.total}${more} image(s) match${page.total > page.items.length ? `; the newest ${page.items.length} shown` : ""}`);
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

async function retagImages(broker: ServiceBroker, query: string | undefined): Promise<void> {
	// A progress line on a terminal; piped output gets the summary only.
	const tty = process.stdout.isTTY;
	const report = await retag(broker, query, ({ total, tagged, failed }) => {
		if (tty) process.stdout.write(`\rretagged ${tagged}/${total}${failed.length ? `, ${failed.length} failed` : ""}   `);
	});
	if (tty) process.stdout.write("\n");
	console.log(`Retagged ${report.tagged} of ${report.total} image(s).${report.failed.length ? ` ${report.failed.length} failed:` : ""}`);
	for (const { id, error } of report.failed) console.log(`  ${id}: ${error}`);
}

const STATUSES: readonly ImageStatus[] = ["processing", "ready", "failed"];

/** The images a rewriting command works on: a query, or every image with --all (not both). */
function selection(args: ReplArgs): string | undefined {
	const query = args.query as string | undefined;
	if (query && args.options.all) throw new UsageError("a query or --all, not both");
	if (!query && !args.options.all) throw new UsageError(`images ${String(args.op)}: which images? a query, or --all`);
	return query;
}

async function run(broker: ServiceBroker, args: ReplArgs): Promise<void> {
	const query = args.query as string | undefined;
	const { all, status } = args.options;
	if (args.op !== "reprocess" && status !== undefined) throw new UsageError("--status is for images reprocess");
	if (args.op !== "retag" && args.op !== "reprocess" && all) throw new UsageError("--all is for images retag and images reprocess");
	switch (args.op) {
		case "stats":
			if (query) throw new UsageError();
			return stats(broker);
		case "find":
			if (!query) throw new UsageError("images find: a search query");
			return find(broker, query);
		case "retag":
			return retagImages(broker, selection(args));
		case "reprocess": {
			if (status !== undefined && !STATUSES.includes(status as ImageStatus)) throw new UsageError(`--status takes one of: ${STATUSES.join(", ")}`);
			const ids = await reprocessImages(broker, selection(args) ?? "", status as ImageStatus | undefined);
			return console.log(`Reprocessing ${ids.length} image(s).`);
		}
	}
	throw new UsageError();
}

const commands: ReplCommand[] = [
	{
		command: "images [op] [query...]",
		description: "The catalogue: stats; find, retag or reprocess the images a search query finds (GET /api/images?q= syntax)",
		usage: [
			"images stats",
			"images find <query>",
			"images retag <query> | images retag --all",
			"images reprocess <query> [--status <processing|ready|failed>] | images reprocess --all [--status <...>]",
			"(a query in the search syntax of GET /api/images?q=, e.g. tag:dog owner:alice date:2024 \"red car\")"
		],
		options: [
			{ option: "--all", description: "images retag, images reprocess: every image" },
			{ option: "--status [status]", description: "images reprocess: only images with this status (processing, ready, failed)" }
		],
		action: run
	}
];

export default commands;
