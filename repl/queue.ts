/**
 * REPL: `queue` shows every job stream (length, pending, consumers, lag, dead letters). Also
 * reprocessImages, behind `images reprocess <query>` (repl/images.ts): runs the ingest pipeline
 * again for the images a search finds (the query syntax of GET /api/images?q=; empty = every
 * image), optionally only those with a status.
 */
import type { ServiceBroker } from "moleculer";
import { imagesMatching, type ReplCommand } from "../cluster/repl-commands.ts";
import type { ImageStatus } from "../models/images/image.ts";
import { withJobQueue } from "../cluster/job-streams.ts";

/** Reprocesses every image the query finds (with `status`, only those); returns their ids. */
export async function reprocessImages(broker: ServiceBroker, query: string, status?: ImageStatus): Promise<string[]> {
	const ids: string[] = [];
	for await (const image of imagesMatching(broker, query)) {
		if (status && image.status !== status) continue;
		await broker.call("images.reprocess", { id: image.id });
		ids.push(image.id);
	}
	return ids;
}

const commands: ReplCommand[] = [
	{
		command: "queue",
		description: "Job streams: length, pending, consumers, lag and dead letters per channel",
		usage: ["queue"],
		async action(broker) {
			const rows = await withJobQueue(broker, queue => queue.stats());
			if (rows) console.table(rows);
			else console.log("Embedded mode: jobs run on an in-process queue (no streams).");
		}
	}
];

export default commands;
