/**
 * @moleculer/channels' Redis Streams adapter (0.1.8) with its delivery defects fixed. The
 * connections, publishing and dead-letter writing are upstream's; subscribing (the read and
 * claim loops), handling and unsubscribing are this class's.
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
 *    failure without redoing the work. There is no sweep.
 *
 * 3. A consumer group is created only at subscribe. When Redis lost its data (restarted without
 *    persistence, flushed, the key evicted), every read and claim failed with NOGROUP, in a loop
 *    without pause that logged each failure (~38 MB a minute per worker), and no job ran again
 *    until every node restarted. Here the group is created again (XGROUP CREATE … MKSTREAM) with
 *    back-off, the incident is logged once, and JOBS_LOST_EVENT tells the node's services that
 *    the jobs the group held are gone (the worker's reconciler enqueues them again).
 *
 * 4. Stopping waited without bound for the jobs in flight. Here a stop (stopTakingJobs, from the
 *    signal handler, or the unsubscribe) stops reading at once and gives the jobs in flight
 *    `stopGraceMs` to finish; those still running then are handed back: made idle beyond any
 *    redelivery timeout (XCLAIM … IDLE), so another worker's next claim takes them at once, with
 *    their delivery counter as it was before this delivery (RETRYCOUNT), since being stopped is
 *    not the job's failure.
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
type Client = ReturnType<InstanceType<typeof RedisAdapter>["clients"]["get"]> & {};
type AdapterOptions = ConstructorParameters<typeof RedisAdapter>[0];

interface Chan extends RedisChannel {
	maxAttempts: number;
	/** Entries whose handler runs now, by id: their delivery counter, and how to tell the handler to stop. */
	running: Map<string, { attempt: number; abort: AbortController }>;
	/** Set when the stop's grace ran out: running entries were handed back, none is acked or started any more. */
	handedBack?: boolean;
	/** When the group was last created: a NOGROUP answer to a command sent before that is stale. */
	groupCreatedAt: number;
	/** When this consumer first saw its group gone, until the group exists again. */
	groupLostAt?: number;
	/** A read or claim failed (other than NOGROUP) and none has succeeded since: logged once. */
	failing?: boolean;
}

/** Extra dead-letter headers: why the job died and after how many deliveries. */
export const HEADER_ERROR = "x-error";
export const HEADER_ATTEMPTS = "x-attempts";

/**
 * Broadcast on the local broker when a channel's consumer group was created again because it had
 * vanished: `{ channel, group, since }` (channel without the namespace prefix, `since` the ISO
 * time the loss was noticed). Every job the group held is gone.
 */
export const JOBS_LOST_EVENT = "jobs.lost";

/** How often a stopping consumer checks whether its in-flight messages are done. */
const DRAIN_POLL_MS = 100;
/** While the adapter has no free slot for a channel, how often it looks again (upstream's figure). */
const FULL_POLL_MS = 10;
/** Back-off of a read or claim loop after a failure: doubles from the first to the last. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** Idle time given to a handed-back entry: beyond any redelivery timeout, and far below "now". */
const HANDED_BACK_IDLE_MS = 365 * 24 * 3600 * 1000;

interface Message {
	id: string;
	payload: unknown;
	headers: Record<string, unknown> | undefined;
	/** The serialized payload, moved as is to the dead-letter stream. */
	serialized: Buffer;
	/** The entry's delivery counter. */
	attempt: number;
}

function messageOf(err: unknown): string {
	return err instanceof Error ? err.message : String(err);
}

function isNoGroup(err: unknown): boolean {
	return messageOf(err).startsWith("NOGROUP");
}

function sleep(ms: number): Promise<void> {
	return new Promise(resolve => setTimeout(resolve, ms));
}

function backoff(failures: number): number {
	return Math.min(BACKOFF_FIRST_MS * 2 ** Math.max(0, failures - 1), BACKOFF_MAX_MS);
}

export class DurableRedisAdapter extends RedisAdapter {
	/** How long a stop waits for the jobs in flight before handing them back. */
	private readonly stopGraceMs: number;
	private readonly subscribed = new Set<Chan>();
	/** Set once the node stops taking jobs: when the jobs still running are handed back. */
	private stopDeadline: number | undefined;

	constructor(opts: AdapterOptions & { stopGraceMs?: number }) {
		super(opts);
		this.stopGraceMs = opts.stopGraceMs ?? Number.POSITIVE_INFINITY;
	}

	async subscribe(channel: RedisChannel): Promise<void> {
		const chan = channel as Chan;
		chan.redis = { ...this.opts.redis.consumerOptions, ...chan.redis };
		chan.maxInFlight ??= this.opts.maxInFlight;
		chan.maxAttempts = chan.maxRetries ?? this.opts.maxRetries;
		chan.deadLettering = { ...this.opts.deadLettering, ...chan.deadLettering } as Chan["deadLettering"];
		if (chan.deadLettering?.enabled) chan.deadLettering.queueName = this.addPrefixTopic(chan.deadLettering.queueName);
		chan.running = new Map();
		chan.groupCreatedAt = 0;
		const reader = await this.createRedisClient(chan.id, this.opts.redis);
		this.clients.set(chan.id, reader);
		this.initChannelActiveMessages(chan.id);
		await this.createGroup(chan, chan.redis.startID);
		this.subscribed.add(chan);
		void this.readLoop(chan, reader);
		void this.claimLoop(chan);
	}

	/**
	 * The node was told to stop: every channel stops reading and claiming now, and the jobs still
	 * running after the grace are handed back, whatever the broker's own stop is busy with then
	 * (its stop delay, waiting for calls in flight) before it unsubscribes the channels.
	 */
	stopTakingJobs(): void {
		if (this.stopDeadline !== undefined) return;
		this.stopDeadline = Date.now() + this.stopGraceMs;
		for (const chan of this.subscribed) this.clients.get(chan.id)?.disconnect();
		if (!Number.isFinite(this.stopGraceMs)) return;
		setTimeout(() => {
			for (const chan of this.subscribed) void this.handBackRunning(chan);
		}, this.stopGraceMs).unref();
	}

	/** Waits for the channel's jobs in flight until the grace runs out, then hands back the rest. */
	async unsubscribe(channel: RedisChannel): Promise<void> {
		const chan = channel as Chan;
		if (chan.unsubscribing) return;
		chan.unsubscribing = true;
		// Closing the connection breaks the blocking read.
		this.clients.get(chan.id)?.disconnect();
		const deadline = this.stopDeadline ?? Date.now() + this.stopGraceMs;
		while (this.getNumberOfChannelActiveMessages(chan.id) > 0 && !chan.handedBack && Date.now() < deadline) await sleep(DRAIN_POLL_MS);
		await this.handBackRunning(chan);
		this.subscribed.delete(chan);
		this.clients.delete(chan.id);
		this.stopChannelActiveMessages(chan.id);
		const owned = (await this.client(this.pubName).xpending(chan.name, chan.group, "-", "+", 1, chan.id)) as unknown[];
		if (owned.length > 0) {
			this.logger.info(`Consumer ${chan.id} keeps its pending messages: another consumer claims them.`);
			return;
		}
		await this.client(this.pubName).xgroup("DELCONSUMER", chan.name, chan.group, chan.id);
	}

	async processMessage(chan: RedisChannel, message: any[]): Promise<void> {
		// XREADGROUP / XAUTOCLAIM reply: [[stream, [[id, [field, value, ...]], ...]]].
		const entries = message[0][1] as [Buffer, Buffer[]][];
		const ids = entries.map(([id]) => id.toString());
		// Untracked once handed back: a read that answers after that only hands its entries back too.
		if (this.activeMessages.has(chan.id)) this.addChannelActiveMessages(chan.id, ids);
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
			// The loops do not await this method: a rejection here would be unhandled. What was not
			// acked stays pending and is claimed again after minIdleTime. A vanished group is the
			// loops' incident, logged there once.
			if (!isNoGroup(err)) this.logger.error(`Could not process messages of ${chan.name}: ${messageOf(err)}`);
		} finally {
			// A hand-back stopped the tracking of these already.
			if (this.activeMessages.has(chan.id)) this.removeChannelActiveMessages(chan.id, ids);
		}
	}

	private client(name: string): Client {
		const client = this.clients.get(name);
		if (!client) throw new Error(`Redis channel client ${name} is not connected`);
		return client;
	}

	private reading(chan: Chan): boolean {
		return !chan.unsubscribing && this.stopDeadline === undefined && !this.stopping;
	}

	private freeSlots(chan: Chan): number {
		return chan.maxInFlight! - this.getNumberOfChannelActiveMessages(chan.id);
	}

	/** New entries, as upstream reads them: blocking, at most as many as there are free slots. */
	private async readLoop(chan: Chan, reader: Client): Promise<void> {
		let failures = 0;
		while (this.reading(chan)) {
			if (this.freeSlots(chan) <= 0) {
				await sleep(FULL_POLL_MS);
				continue;
			}
			const sentAt = Date.now();
			try {
				const reply = await reader.callBuffer("XREADGROUP", "GROUP", chan.group, chan.id, "BLOCK", chan.redis.readTimeoutInterval, "COUNT", this.freeSlots(chan), "STREAMS", chan.name, ">");
				failures = 0;
				this.recovered(chan);
				if (reply) void this.processMessage(chan, reply as any[]);
			} catch (err) {
				// Closing the connection is how a stop breaks the blocking read.
				if (!this.reading(chan)) return;
				await this.recover(chan, err, sentAt, ++failures);
			}
		}
	}

	/** Entries idle for minIdleTime (their consumer died, failed them, or handed them back). */
	private async claimLoop(chan: Chan): Promise<void> {
		// XAUTOCLAIM walks the pending list from a cursor; "0-0" when it went round.
		let cursor = "0-0";
		let failures = 0;
		while (this.reading(chan)) {
			if (this.freeSlots(chan) <= 0) {
				await sleep(FULL_POLL_MS);
				continue;
			}
			const sentAt = Date.now();
			try {
				const reply = (await this.client(this.claimName).callBuffer("XAUTOCLAIM", chan.name, chan.group, chan.id, chan.redis.minIdleTime, cursor, "COUNT", this.freeSlots(chan))) as [Buffer, unknown[]];
				failures = 0;
				this.recovered(chan);
				cursor = reply[0].toString();
				if (reply[1].length > 0) {
					this.metricsIncrement("moleculer.channels.messages.retries.total", chan);
					void this.processMessage(chan, [reply]);
				}
			} catch (err) {
				if (!this.reading(chan)) return;
				// The pending list it walked may be gone with the group.
				cursor = "0-0";
				await this.recover(chan, err, sentAt, ++failures);
				continue;
			}
			await sleep(chan.redis.claimInterval);
		}
	}

	/**
	 * After a failed read or claim: a vanished group is created again at once; anything else
	 * (Redis unreachable, loading) waits a back-off. Either way the incident is logged once.
	 */
	private async recover(chan: Chan, err: unknown, sentAt: number, failures: number): Promise<void> {
		if (isNoGroup(err)) {
			// Sent before the other loop created the group again: nothing new.
			if (sentAt < chan.groupCreatedAt) return;
			if (chan.groupLostAt === undefined) {
				chan.groupLostAt = Date.now();
				this.logger.warn(`Consumer group ${chan.group} of ${chan.name} is gone (${messageOf(err)}): Redis lost its data, and the jobs the group held. Creating it again; the reconcilers enqueue the lost work again.`);
			}
			if (await this.createGroup(chan, "0")) return;
		} else if (!chan.failing) {
			chan.failing = true;
			this.logger.warn(`Reading jobs of ${chan.name} failed: ${messageOf(err)}. Retrying with back-off up to ${BACKOFF_MAX_MS} ms.`);
		}
		await sleep(backoff(failures));
	}

	private recovered(chan: Chan): void {
		if (!chan.failing) return;
		chan.failing = false;
		this.logger.info(`Reading jobs of ${chan.name} again.`);
	}

	/**
	 * XGROUP CREATE … MKSTREAM; an existing group is fine. Created again after a loss, the group
	 * starts at "0": everything in the new stream arrived after the loss, none of it read yet.
	 * False when Redis refused (the caller backs off and tries again).
	 */
	private async createGroup(chan: Chan, startId: string): Promise<boolean> {
		try {
			await this.client(this.pubName).xgroup("CREATE", chan.name, chan.group, startId, "MKSTREAM");
		} catch (err) {
			if (!messageOf(err).includes("BUSYGROUP")) {
				if (chan.groupLostAt === undefined) this.logger.error(`Unable to create the consumer group ${chan.group} of ${chan.name}: ${messageOf(err)}`);
				return false;
			}
		}
		chan.groupCreatedAt = Date.now();
		const lostAt = chan.groupLostAt;
		if (lostAt === undefined) return true;
		chan.groupLostAt = undefined;
		this.logger.info(`Consumer group ${chan.group} of ${chan.name} created again.`);
		const prefix = `${this.opts.prefix}.`;
		const channel = chan.name.startsWith(prefix) ? chan.name.slice(prefix.length) : chan.name;
		this.broker.broadcastLocal(JOBS_LOST_EVENT, { channel, group: chan.group, since: new Date(lostAt).toISOString() });
		return true;
	}

	/**
	 * The grace ran out: the channel's entries still running go back to the group for another
	 * consumer, and no entry is started, acked or refreshed here any more. Their handlers may go
	 * on until the process exits; nothing waits for them.
	 */
	private async handBackRunning(chan: Chan): Promise<void> {
		if (chan.handedBack) return;
		chan.handedBack = true;
		const running = [...chan.running];
		const active = this.activeMessages.get(chan.id);
		if (active?.length) this.removeChannelActiveMessages(chan.id, [...active] as string[]);
		if (running.length === 0) return;
		await Promise.all(
			running.map(([id, { attempt, abort }]) => {
				abort.abort(new Error("the node stopped: the job was handed back to another worker"));
				return this.handBack(chan, id, attempt);
			})
		);
		this.logger.info(`Handed back ${running.length} job(s) of ${chan.name} still running after ${this.stopGraceMs} ms: another consumer takes them at once.`);
	}

	/**
	 * Makes an entry this consumer holds claimable by any other at once (idle beyond every
	 * minIdleTime), its delivery counter back to what it was before this delivery.
	 */
	private async handBack(chan: Chan, id: string, attempt: number): Promise<void> {
		try {
			await this.client(this.claimName).xclaim(chan.name, chan.group, chan.id, 0, id, "IDLE", HANDED_BACK_IDLE_MS, "RETRYCOUNT", attempt - 1, "JUSTID");
		} catch (err) {
			this.logger.warn(`Could not hand back ${id} of ${chan.name} (it is claimed after minIdleTime instead): ${messageOf(err)}`);
		}
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
			await this.deadLetter(chan, unreadable, `unreadable message: ${messageOf(err)}`);
			await this.client(this.pubName).xack(chan.name, chan.group, id);
			return;
		}
		if (chan.handedBack) {
			await this.handBack(chan, id, attempt);
			return;
		}
		const abort = new AbortController();
		chan.running.set(id, { attempt, abort });
		try {
			await this.deliver(chan, message, abort.signal);
		} finally {
			chan.running.delete(id);
		}
	}

	private async deliver(chan: Chan, m: Message, signal: AbortSignal): Promise<void> {
		const attempt = m.attempt;
		const exhausted = attempt > chan.maxAttempts;
		const delivery: Delivery & { payload: unknown; headers?: Record<string, unknown> } = {
			payload: m.payload,
			...(m.headers ? { headers: m.headers } : {}),
			attempt,
			maxAttempts: chan.maxAttempts,
			exhausted,
			signal
		};
		// While the handler runs, its entry is kept fresh: minIdleTime then means "the consumer
		// is gone", not "the job takes long". Without it a job running longer than minIdleTime was
		// claimed again (even by the same consumer), ran twice at once and used up its attempts.
		const keepAlive = setInterval(() => void this.touch(chan, m.id), Math.max(10, Math.floor(chan.redis.minIdleTime / 3)));
		try {
			await chan.handler(m.payload, delivery);
			if (chan.handedBack) return;
			if (exhausted) await this.deadLetter(chan, m, `no delivery finished in ${chan.maxAttempts} attempt(s)`);
		} catch (err) {
			// Handed back: another consumer has it; this run's failure (the broker stopping under it) says nothing.
			if (chan.handedBack) return;
			this.metricsIncrement("moleculer.channels.messages.errors.total", chan);
			// Not acked: the entry stays pending and XAUTOCLAIM delivers it again after minIdleTime.
			if (attempt < chan.maxAttempts) return;
			await this.deadLetter(chan, m, messageOf(err));
		} finally {
			clearInterval(keepAlive);
		}
		await this.client(this.pubName).xack(chan.name, chan.group, m.id);
	}

	/** Resets the idle time of an entry this consumer works on; JUSTID leaves the delivery counter alone. */
	private async touch(chan: Chan, id: string): Promise<void> {
		// Handed back: refreshing it would take it back from the consumer that has it now.
		if (chan.handedBack) return;
		try {
			await this.client(this.claimName).xclaim(chan.name, chan.group, chan.id, 0, id, "JUSTID");
		} catch (err) {
			if (!isNoGroup(err)) this.logger.warn(`Could not refresh the idle time of ${id} on ${chan.name}: ${messageOf(err)}`);
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
