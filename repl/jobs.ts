/**
 * REPL: `jobs dead` lists the dead-letter stream; `jobs retry <id>` sends a dead letter back to
 * its channel (an image's job also puts the image back to `processing`, or the worker would
 * skip it). Distributed mode only: embedded mode's in-process queue keeps no dead letters.
 */
import { Redis } from "ioredis";
import type { ServiceBroker } from "moleculer";
import { DurableRedisAdapter } from "../models/durable-redis-adapter.ts";
import { JobQueue, type DeadLetter } from "../models/job-queue.ts";
import { CHANNELS } from "../models/jobs.ts";

/** A moleculer-repl custom command. */
export interface ReplCommand {
	command: string;
	description: string;
	options?: { option: string; description: string }[];
	action(broker: ServiceBroker, args: Record<string, any>): Promise<void>;
}

const EMBEDDED = "Embedded mode: jobs run on an in-process queue (no streams, no dead letters).";

/** Runs `work` on the job streams of the broker's Redis channel adapter; null in embedded mode. */
export async function withJobQueue<T>(broker: ServiceBroker, work: (queue: JobQueue) => Promise<T>): Promise<T | null> {
	const adapter = (broker as ServiceBroker & { channelAdapter?: unknown }).channelAdapter;
	if (!(adapter instanceof DurableRedisAdapter)) return null;
	// mixins/channels.ts gives the adapter `redis: { url, consumerOptions }`.
	const { url } = adapter.opts.redis as unknown as { url: string };
	const redis = new Redis(url);
	try {
		return await work(new JobQueue(redis, String(adapter.opts.prefix)));
	} finally {
		redis.disconnect();
	}
}

/**
 * Sends a dead letter back to its channel, then removes it (a crash in between leaves it there to
 * retry again; the pipeline's steps are idempotent). Null if there is no such dead letter.
 */
export async function retryDeadLetter(broker: ServiceBroker, queue: JobQueue, id: string): Promise<DeadLetter | null> {
	const letter = await queue.deadLetter(id);
	if (!letter) return null;
	const imageId = (letter.payload as { id?: unknown } | null)?.id;
	const pipeline: string[] = Object.values(CHANNELS);
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
