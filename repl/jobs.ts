/**
 * REPL: `jobs dead` lists the dead-letter stream; `jobs retry <id>` sends a dead letter back to
 * its channel (an image's job also puts the image back to `processing`, or the worker would
 * skip it). Distributed mode only: embedded mode's in-process queue keeps no dead letters.
 */
import type { ServiceBroker } from "moleculer";
import { withJobQueue, type DeadLetter, type JobQueue } from "../models/job-queue.ts";
import { CHANNELS } from "../models/jobs.ts";

/** A moleculer-repl custom command. */
export interface ReplCommand {
	command: string;
	description: string;
	options?: { option: string; description: string }[];
	action(broker: ServiceBroker, args: Record<string, any>): Promise<void>;
}

const EMBEDDED = "Embedded mode: jobs run on an in-process queue (no streams, no dead letters).";

/**
 * Sends a dead letter back to its channel, then removes it (a crash in between leaves it there to
 * retry again; the pipeline's steps are idempotent). Null if there is no such dead letter.
 */
export async function retryDeadLetter(broker: ServiceBroker, queue: JobQueue, id: string): Promise<DeadLetter | null> {
	const letter = await queue.deadLetter(id);
	if (!letter) return null;
	const imageId = (letter.payload as { id?: unknown } | null)?.id;
	// The ingest pipeline's steps decide the image's status; other jobs (compress) do not.
	const pipeline: string[] = [CHANNELS.process, CHANNELS.classify];
	if (pipeline.includes(letter.channel) && typeof imageId === "string") {
		await broker.call("images.setStatus", { id: imageId, status: "processing", from: ["failed"] });
	}
	await broker.sendToChannel(letter.channel, letter.payload);
	await queue.dropDeadLetter(id);
	return letter;
}

const commands: ReplCommand[] = [
	{
		command: "jobs <what> [id]",
		description: "jobs dead: list dead letters | jobs retry <id>: send a dead letter back to its channel",
		async action(broker, args) {
			const done = await withJobQueue(broker, async queue => {
				if (args.what === "dead") {
					console.table((await queue.deadLetters()).map(letter => ({ ...letter, payload: JSON.stringify(letter.payload) })));
				} else if (args.what === "retry" && args.id) {
					const letter = await retryDeadLetter(broker, queue, String(args.id));
					console.log(letter ? `Sent ${JSON.stringify(letter.payload)} back to ${letter.channel}.` : `No dead letter ${args.id}.`);
				} else {
					console.log("Usage: jobs dead | jobs retry <id>");
				}
				return true;
			});
			if (!done) console.log(EMBEDDED);
		}
	}
];

export default commands;
