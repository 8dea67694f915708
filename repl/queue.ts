/**
 * REPL: `queue` shows every job stream (length, pending, consumers, lag, dead letters);
 * `reprocess <query>` runs the ingest pipeline again for the images a search finds (the same
 * query syntax as GET /api/images?q=; empty = every image), optionally only those with a status.
 */
import type { ServiceBroker } from "moleculer";
import type { AuthUser } from "../mixins/auth.ts";
import type { ImageStatus, Page } from "../models/image.ts";
import { withJobQueue } from "../models/job-queue.ts";
import type { ReplCommand } from "./jobs.ts";

const PAGE = 100;
/** The REPL acts as an admin: it sees every image. */
const OPERATOR: AuthUser = { id: "repl", username: "repl", role: "admin" };

/** Reprocesses every image the query finds (with `status`, only those); returns their ids. */
export async function reprocessImages(broker: ServiceBroker, query: string, status?: ImageStatus): Promise<string[]> {
	const ids: string[] = [];
	let cursor: string | undefined;
	do {
		const params = { limit: PAGE, ...(query ? { q: query } : {}), ...(cursor ? { cursor } : {}) };
		const page = await broker.call<Page<{ id: string; status: ImageStatus }>, object>("images.list", params, { meta: { user: OPERATOR } });
		for (const image of page.items) {
			if (status && image.status !== status) continue;
			await broker.call("images.reprocess", { id: image.id });
			ids.push(image.id);
		}
		cursor = page.nextCursor ?? undefined;
	} while (cursor);
	return ids;
}

const commands: ReplCommand[] = [
	{
		command: "queue",
		description: "Job streams: length, pending, consumers, lag and dead letters per channel",
		async action(broker) {
			const rows = await withJobQueue(broker, queue => queue.stats());
			if (rows) console.table(rows);
			else console.log("Embedded mode: jobs run on an in-process queue (no streams).");
		}
	},
	{
		command: "reprocess [query...]",
		description: "images reprocess <query>: run the ingest pipeline again for the images a search finds",
		options: [{ option: "--status <status>", description: "only images with this status (processing, ready, failed)" }],
		async action(broker, args) {
			const query = ((args.query as string[] | undefined) ?? []).join(" ");
			const ids = await reprocessImages(broker, query, args.options?.status as ImageStatus | undefined);
			console.log(`Reprocessing ${ids.length} image(s).`);
		}
	}
];

export default commands;
