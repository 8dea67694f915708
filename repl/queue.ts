/**
 * REPL: `queue` shows every job stream: per consumer group, the workers waiting on it, then
 * length, pending, lag and dead letters. Also
 * reprocessImages, behind `images reprocess <query>` (repl/images.ts): runs the ingest pipeline
 * again for the images a search finds (the query syntax of GET /api/images?q=; empty = every
 * image), optionally only those with a status.
 *
 * Workers are the live nodes (this REPL node's registry, as `cluster` shows it) that run the
 * service a group is named after: every imgmesh channel handler takes its service's name as group
 * (worker, classifier, transform, imports), and a node subscribes to its channels before it
 * announces its services, so each of them is reading the stream. Redis cannot say this: it
 * registers a consumer only when it hands it a first entry, so its count stays 0 until a
 * channel's first job, and it keeps a crashed node's consumer. A channel without a group has
 * never had a worker start in this namespace.
 */
import type { ServiceBroker } from "moleculer";
import { imagesMatching, type ReplCommand } from "../cluster/repl-commands.ts";
import type { ImageStatus } from "../models/images/image.ts";
import { liveNodesByService, withJobQueue, type QueueRow } from "../cluster/job-streams.ts";

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

function printQueue(broker: ServiceBroker, rows: QueueRow[]): void {
	const workers = liveNodesByService(broker);
	const notes: string[] = [];
	console.table(
		rows.map(row => {
			const on = row.group === null ? [] : (workers.get(row.group) ?? []).sort();
			if (row.group === null) notes.push(`${row.channel}: no consumer group yet: no worker for it has started in this namespace; its jobs wait for one.`);
			else if (on.length === 0) notes.push(`${row.channel}: no live '${row.group}' node: its jobs wait until one starts.`);
			return {
				channel: row.channel,
				group: row.group ?? "(none yet)",
				workers: on.length,
				on: on.join(",") || "-",
				length: row.length,
				pending: row.pending,
				lag: row.lag ?? "?",
				dead: row.dead
			};
		})
	);
	console.log("workers: live nodes running the group's service, each reading the channel (waiting when it is empty)");
	for (const note of notes) console.log(note);
}

const commands: ReplCommand[] = [
	{
		command: "queue",
		description: "Job channels: per consumer group, the workers waiting on it, then length, pending, lag and dead letters",
		usage: ["queue"],
		async action(broker) {
			const rows = await withJobQueue(broker, queue => queue.stats());
			if (rows) printQueue(broker, rows);
			else console.log("Embedded mode: jobs run on an in-process queue (no streams).");
		}
	}
];

export default commands;
