/**
 * @moleculer/channels' Redis Streams adapter (0.1.8) with its two delivery defects fixed:
 *
 * 1. Stopping a consumer ran XGROUP DELCONSUMER even when the consumer still owned pending
 *    entries (a failed job waiting for its retry, say). DELCONSUMER drops those entries from the
 *    group's pending list, so nobody ever claims them again: the jobs were lost (upstream issue
 *    74). Here a consumer with pending entries is kept; XAUTOCLAIM hands its entries to another
 *    consumer once they are idle for minIdleTime.
 *
 * 2. `maxRetries` was no cap: failed entries were re-claimed every minIdleTime, and only a sweep
 *    every processingAttemptsInterval (over the first 10 pending entries only) moved those with
 *    enough deliveries to the dead-letter stream — a job ran as often as the race allowed, and the
 *    sweep could dead-letter an entry a live consumer was still working on. Here the decision is
 *    made per delivery, from the entry's delivery counter (XPENDING): a failure of delivery
 *    number maxRetries is final (dead letter + ack), and a delivery beyond it (its predecessors
 *    never finished: the worker died) reaches the handler flagged `exhausted` so it can record the
 *    failure without redoing the work. The upstream sweep is switched off.
 *
 * Also: an entry that cannot be deserialized is dead-lettered at once (upstream let the
 * exception escape the read loop as an unhandled rejection, on every worker that claimed it).
 *
 * And: while a handler runs, its entry's idle time is refreshed (XCLAIM JUSTID, which leaves the
 * delivery counter alone), so only a consumer that is gone has its jobs claimed by others.
 *
 * The handler's second argument carries `{ payload, headers, attempt, maxAttempts, exhausted }`
 * (models/pipeline/channels.ts Delivery).
 */
import Channels from "@moleculer/channels";
import type { Delivery } from "../models/pipeline/channels.ts";

const RedisAdapter = Channels.Adapters.Redis;
type RedisChannel = Parameters<InstanceType<typeof RedisAdapter>["processMessage"]>[0];
type Chan = RedisChannel & { maxAttempts: number; failed_messages: () => Promise<void> };
type Client = ReturnType<InstanceType<typeof RedisAdapter>["clients"]["get"]> & {};

/** Extra dead-letter headers: why the job died and after how many deliveries. */
export const HEADER_ERROR = "x-error";
export const HEADER_ATTEMPTS = "x-attempts";

/** How often a stopping consumer checks whether its in-flight messages are done. */
const DRAIN_POLL_MS = 100;

interface Message {
	id: string;
	payload: unknown;
	headers: Record<string, unknown> | undefined;
	/** The serialized payload, moved as is to the dead-letter stream. */
	serialized: Buffer;
	/** The entry's delivery counter. */
	attempt: number;
}

export class DurableRedisAdapter extends RedisAdapter {
	async subscribe(chan: RedisChannel): Promise<void> {
		const durable = chan as Chan;
		durable.maxAttempts = chan.maxRetries ?? this.opts.maxRetries;
		// Out of reach of the upstream sweep, which is also stopped below (its first pass runs
		// inside super.subscribe; with an infinite cap it moves nothing).
		durable.maxRetries = Number.POSITIVE_INFINITY;
		await super.subscribe(chan);
		durable.failed_messages = async () => undefined;
	}

	async processMessage(chan: RedisChannel, message: any[]): Promise<void> {
		// XREADGROUP / XAUTOCLAIM reply: [[stream, [[id, [field, value, ...]], ...]]].
		const entries = message[0][1] as [Buffer, Buffer[]][];
		const ids = entries.map(([id]) => id.toString());
		this.addChannelActiveMessages(chan.id, ids);
		try {
			const attempts = await this.deliveryCounts(chan, ids);
			await Promise.all(
				entries.map(([, fields], i) => {
					const attempt = attempts[i];
					// No longer pending: another consumer acknowledged it meanwhile.
					if (attempt === undefined) return undefined;
					return this.handleEntry(chan as Chan, ids[i]!, attempt, fields);
				})
			);
		} catch (err) {
			// The read loop does not await this method: a rejection here would be unhandled. What
			// was not acked stays pending and is claimed again after minIdleTime.
			this.logger.error(`Could not process messages of ${chan.name}: ${err instanceof Error ? err.message : String(err)}`);
		} finally {
			this.removeChannelActiveMessages(chan.id, ids);
		}
	}

	async unsubscribe(chan: RedisChannel): Promise<void> {
		if (chan.unsubscribing) return;
		chan.unsubscribing = true;
		// Closing the subscription's connection breaks its blocking XREADGROUP.
		this.clients.get(chan.id)?.disconnect();
		while (this.getNumberOfChannelActiveMessages(chan.id) > 0) await new Promise(resolve => setTimeout(resolve, DRAIN_POLL_MS));
		this.clients.delete(chan.id);
		this.stopChannelActiveMessages(chan.id);
		const pub = this.client(this.pubName);
		const owned = (await pub.xpending(chan.name, chan.group, "-", "+", 1, chan.id)) as unknown[];
		if (owned.length > 0) {
			this.logger.info(`Consumer ${chan.id} keeps its pending messages; another consumer claims them after minIdleTime.`);
			return;
		}
		await pub.xgroup("DELCONSUMER", chan.name, chan.group, chan.id);
	}

	private client(name: string): Client {
		const client = this.clients.get(name);
		if (!client) throw new Error(`Redis channel client ${name} is not connected`);
		return client;
	}

	/** Delivery counters of the given pending entries (one XPENDING per id, in one round trip). */
	private async deliveryCounts(chan: RedisChannel, ids: string[]): Promise<(number | undefined)[]> {
		const pipeline = this.client(this.pubName).pipeline();
		for (const id of ids) pipeline.xpending(chan.name, chan.group, id, id, 1);
		const results = (await pipeline.exec()) ?? [];
		return results.map(([err, entries]) => {
			if (err) throw err;
			// Extended form: [[id, consumer, idle ms, delivery count]].
			const entry = (entries as [string, string, number, number][])[0];
			return entry?.[3];
		});
	}

	/** Fields of an entry as the upstream adapter writes them: payload, then optionally headers. */
	private async handleEntry(chan: Chan, id: string, attempt: number, fields: Buffer[]): Promise<void> {
		const serialized = fields[1]!;
		let message: Message;
		try {
			const headers = fields[2]?.toString() === "headers" ? (this.serializer.deserialize(fields[3]) as Record<string, unknown>) : undefined;
			message = { id, payload: this.serializer.deserialize(serialized), headers, serialized, attempt };
		} catch (err) {
			// Unreadable (not written by a producer of ours): no handler can take it, and leaving it
			// pending would have every worker trip over it again.
			const unreadable = { id, payload: undefined, headers: undefined, serialized, attempt };
			await this.deadLetter(chan, unreadable, `unreadable message: ${err instanceof Error ? err.message : String(err)}`);
			await this.client(this.pubName).xack(chan.name, chan.group, id);
			return;
		}
		await this.deliver(chan, message);
	}

	private async deliver(chan: Chan, m: Message): Promise<void> {
		const attempt = m.attempt;
		const exhausted = attempt > chan.maxAttempts;
		const delivery: Delivery & { payload: unknown; headers?: Record<string, unknown> } = {
			payload: m.payload,
			...(m.headers ? { headers: m.headers } : {}),
			attempt,
			maxAttempts: chan.maxAttempts,
			exhausted
		};
		// While the handler runs, its entry is kept fresh: minIdleTime then means "the consumer
		// is gone", not "the job takes long". Without it a job running longer than minIdleTime was
		// claimed again (even by the same consumer), ran twice at once and used up its attempts.
		const keepAlive = setInterval(() => void this.touch(chan, m.id), Math.max(10, Math.floor(chan.redis.minIdleTime / 3)));
		try {
			await chan.handler(m.payload, delivery);
			if (exhausted) await this.deadLetter(chan, m, `no delivery finished in ${chan.maxAttempts} attempt(s)`);
		} catch (err) {
			this.metricsIncrement("moleculer.channels.messages.errors.total", chan);
			// Not acked: the entry stays pending and XAUTOCLAIM delivers it again after minIdleTime.
			if (attempt < chan.maxAttempts) return;
			await this.deadLetter(chan, m, err instanceof Error ? err.message : String(err));
		} finally {
			clearInterval(keepAlive);
		}
		await this.client(this.pubName).xack(chan.name, chan.group, m.id);
	}

	/** Resets the idle time of an entry this consumer works on; JUSTID leaves the delivery counter alone. */
	private async touch(chan: Chan, id: string): Promise<void> {
		try {
			await this.client(this.claimName).xclaim(chan.name, chan.group, chan.id, 0, id, "JUSTID");
		} catch (err) {
			this.logger.warn(`Could not refresh the idle time of ${id} on ${chan.name}: ${err instanceof Error ? err.message : String(err)}`);
		}
	}

	private async deadLetter(chan: Chan, m: Message, reason: string): Promise<void> {
		if (!chan.deadLettering?.enabled) {
			this.logger.error(`Dropped message ${m.id} of ${chan.name} after ${m.attempt} attempt(s): ${reason}`);
			return;
		}
		await this.moveToDeadLetter(chan, m.id, m.serialized, { ...m.headers, [HEADER_ERROR]: reason.slice(0, 1000), [HEADER_ATTEMPTS]: m.attempt });
	}
}
