/**
 * Operator views of the durable job streams (distributed mode), read straight from Redis: what
 * the REPL's `queue` and `jobs dead|retry` commands and the admin REST endpoints
 * (services/jobs.service.ts) show and do, one definition for both. Stream keys are
 * `<NAMESPACE>.<channel>`, as DurableRedisAdapter names them.
 */
import type { Redis } from "ioredis";
import type { ServiceBroker } from "moleculer";
import { DurableRedisAdapter, HEADER_ATTEMPTS, HEADER_ERROR } from "./durable-redis-adapter.ts";
import { CHANNELS, DEAD_LETTER_CHANNEL } from "../models/pipeline/channels.ts";
import type { DeadLetter, QueueRow } from "../models/pipeline/job-types.ts";

export type { DeadLetter, QueueRow };

/** Dead letters read at most (the dead-letter stream is meant to stay short: retry or drop them). */
const DEAD_LETTER_SCAN = 10_000;

/** "<ms>-<seq>" stream ids compared as numbers. */
function idBefore(a: string, b: string): boolean {
	const [aMs, aSeq] = a.split("-").map(BigInt);
	const [bMs, bSeq] = b.split("-").map(BigInt);
	return aMs! < bMs! || (aMs === bMs && aSeq! < bSeq!);
}

/**
 * Runs `work` on the job streams of the broker's Redis channel adapter, over a connection of its
 * own; null in embedded mode (the in-process queue has no streams).
 */
export async function withJobQueue<T>(broker: ServiceBroker, work: (queue: JobQueue) => Promise<T>): Promise<T | null> {
	const adapter = (broker as ServiceBroker & { channelAdapter?: unknown }).channelAdapter;
	if (!(adapter instanceof DurableRedisAdapter)) return null;
	// cluster/channels.ts gives the adapter `redis: { url, consumerOptions }`.
	const { url } = adapter.opts.redis as unknown as { url: string };
	// Imported here, in distributed mode only: ioredis would cost every embedded node RSS.
	const { Redis } = await import("ioredis");
	const redis = new Redis(url);
	try {
		return await work(new JobQueue(redis, String(adapter.opts.prefix)));
	} finally {
		redis.disconnect();
	}
}

/** Pairs a Redis reply's flat [field, value, ...] list into an object. */
function fields(flat: unknown[]): Record<string, unknown> {
	const result: Record<string, unknown> = {};
	for (let i = 0; i + 1 < flat.length; i += 2) result[String(flat[i])] = flat[i + 1];
	return result;
}

export class JobQueue {
	private readonly redis: Redis;
	private readonly prefix: string;

	constructor(redis: Redis, prefix: string) {
		this.redis = redis;
		this.prefix = prefix;
	}

	key(channel: string): string {
		return `${this.prefix}.${channel}`;
	}

	/**
	 * Every job channel with a stream under the prefix (whoever declared it: pipeline, compress,
	 * imports, ...), plus the pipeline's own even before their first job; the dead letters excluded.
	 */
	async channels(): Promise<string[]> {
		const found = new Set<string>(Object.values(CHANNELS));
		let cursor = "0";
		do {
			const [next, keys] = await this.redis.scan(cursor, "MATCH", `${this.prefix}.*`, "COUNT", 1000, "TYPE", "stream");
			for (const key of keys) found.add(key.slice(this.prefix.length + 1));
			cursor = next;
		} while (cursor !== "0");
		found.delete(DEAD_LETTER_CHANNEL);
		return [...found].sort();
	}

	/** One row per consumer group of each channel (one row without a group when none consumes it yet). */
	async stats(channels?: string[]): Promise<QueueRow[]> {
		channels ??= await this.channels();
		const deadByChannel = new Map<string, number>();
		for (const letter of await this.deadLetters(DEAD_LETTER_SCAN)) deadByChannel.set(letter.channel, (deadByChannel.get(letter.channel) ?? 0) + 1);
		const rows: QueueRow[] = [];
		for (const channel of channels) {
			const key = this.key(channel);
			const length = await this.redis.xlen(key);
			const dead = deadByChannel.get(channel) ?? 0;
			const groups = length === 0 && !(await this.redis.exists(key)) ? [] : ((await this.redis.xinfo("GROUPS", key)) as unknown[][]);
			if (groups.length === 0) rows.push({ channel, group: null, length, pending: 0, consumers: 0, lag: length, dead });
			for (const raw of groups) {
				const group = fields(raw);
				rows.push({
					channel,
					group: String(group.name),
					length,
					pending: Number(group.pending),
					consumers: Number(group.consumers),
					lag: group.lag === null || group.lag === undefined ? null : Number(group.lag),
					dead
				});
			}
		}
		return rows;
	}

	/** The oldest `limit` dead letters. */
	async deadLetters(limit = 100): Promise<DeadLetter[]> {
		return this.parse(await this.redis.xrange(this.key(DEAD_LETTER_CHANNEL), "-", "+", "COUNT", limit));
	}

	/** How many dead letters there are. */
	async deadLetterCount(): Promise<number> {
		return this.redis.xlen(this.key(DEAD_LETTER_CHANNEL));
	}

	async deadLetter(id: string): Promise<DeadLetter | null> {
		return this.parse(await this.redis.xrange(this.key(DEAD_LETTER_CHANNEL), id, id))[0] ?? null;
	}

	/**
	 * Deletes the entries of a channel's stream that every consumer group has read and
	 * acknowledged (streams are never trimmed otherwise); returns how many went. Nothing goes while
	 * no group exists: the first worker's group starts at the beginning. Safe to run anywhere, any time.
	 */
	async trimAcknowledged(channel: string): Promise<number> {
		const key = this.key(channel);
		if (!(await this.redis.exists(key))) return 0;
		const groups = ((await this.redis.xinfo("GROUPS", key)) as unknown[][]).map(fields);
		let floor: string | null = null;
		for (const group of groups) {
			const [count, oldest] = (await this.redis.xpending(key, String(group.name))) as [number, string | null];
			// The oldest unacknowledged entry stays; without any, everything up to the last delivered one may go.
			const keep = count > 0 && oldest ? oldest : String(group["last-delivered-id"]);
			if (floor === null || idBefore(keep, floor)) floor = keep;
		}
		return floor === null ? 0 : this.redis.xtrim(key, "MINID", floor);
	}

	/** Removes a dead letter (after it was sent again); true if it was there. */
	async dropDeadLetter(id: string): Promise<boolean> {
		return (await this.redis.xdel(this.key(DEAD_LETTER_CHANNEL), id)) > 0;
	}

	/** Dead-letter entries as DurableRedisAdapter wrote them: fields payload and headers (JSON). */
	private parse(entries: [string, string[]][]): DeadLetter[] {
		return entries.map(([id, flat]) => {
			const entry = fields(flat);
			const headers = JSON.parse(String(entry.headers ?? "{}")) as Record<string, unknown>;
			const channel = String(headers["x-original-channel"] ?? "");
			return {
				id,
				channel: channel.startsWith(`${this.prefix}.`) ? channel.slice(this.prefix.length + 1) : channel,
				group: String(headers["x-original-group"] ?? ""),
				payload: JSON.parse(String(entry.payload)),
				error: headers[HEADER_ERROR] === undefined ? null : String(headers[HEADER_ERROR]),
				attempts: headers[HEADER_ATTEMPTS] === undefined ? null : Number(headers[HEADER_ATTEMPTS])
			};
		});
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
	// The ingest pipeline's steps decide the image's status; other jobs (compress) do not.
	const pipeline: string[] = [CHANNELS.process, CHANNELS.classify];
	if (pipeline.includes(letter.channel) && typeof imageId === "string") {
		await broker.call("images.setStatus", { id: imageId, status: "processing", from: ["failed"] });
	}
	await broker.sendToChannel(letter.channel, letter.payload);
	await queue.dropDeadLetter(id);
	return letter;
}

/**
 * Live node ids by the name of each service they run: a consumer group's workers, as every
 * imgmesh channel handler takes its service's name as group (see repl/queue.ts for why Redis's
 * own consumer count cannot say this).
 */
export function liveNodesByService(broker: ServiceBroker): Map<string, string[]> {
	const byService = new Map<string, string[]>();
	for (const node of broker.registry.getNodeList({ onlyAvailable: true, withServices: true })) {
		for (const { name } of node.services as { name: string }[]) byService.set(name, [...(byService.get(name) ?? []), node.id]);
	}
	return byService;
}
