/**
 * The two @moleculer/channels 0.1.8 Redis defects, shown on the upstream adapter and fixed in
 * DurableRedisAdapter, against a real Redis (helpers/redis.ts): each test uses its own key prefix
 * and deletes its keys.
 *
 * - stopping a consumer that owns a pending message must not lose the message;
 * - JOB_MAX_ATTEMPTS (maxRetries) is a hard cap on handler runs, then the dead-letter stream;
 * - a message whose deliveries never finish reaches the handler flagged `exhausted`, once.
 */
import Channels from "@moleculer/channels";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { Redis } from "ioredis";
import { ServiceBroker, type Middleware } from "moleculer";
import { DurableRedisAdapter, HEADER_ATTEMPTS, HEADER_ERROR, JOBS_LOST_EVENT } from "../../../cluster/durable-redis-adapter.ts";
import type { Delivery } from "../../../models/pipeline/channels.ts";
import { waitFor } from "../../helpers/jobs.ts";
import { testRedis, type TestRedis } from "../../helpers/redis.ts";

const CHANNEL = "jobs";
const GROUP = "workers";
const DEAD = "dead";

type Handler = (payload: any, delivery: Delivery) => Promise<void>;
type AdapterClass = typeof DurableRedisAdapter | typeof Channels.Adapters.Redis;

interface Options {
	minIdleTime: number;
	claimInterval?: number;
	processingAttemptsInterval?: number;
	/** DurableRedisAdapter's: how long a stop waits for running jobs before handing them back. */
	stopGraceMs?: number;
}

describe("Redis Streams adapter", () => {
	let server: TestRedis;
	let redis: Redis;
	let prefix: string;
	const brokers: ServiceBroker[] = [];

	/** A broker with one consumer of CHANNEL (3 attempts, dead letters on) using the given adapter. */
	async function consumer(Adapter: AdapterClass, nodeID: string, options: Options, handler: Handler): Promise<ServiceBroker> {
		const { stopGraceMs, ...consumerOptions } = options;
		const adapter = new Adapter({
			prefix,
			stopGraceMs,
			redis: { url: server.url, consumerOptions: { claimInterval: 20, startID: "0", ...consumerOptions } }
		});
		const middleware = Channels.Middleware({ adapter } as unknown as Parameters<typeof Channels.Middleware>[0]) as unknown as Middleware;
		const broker = new ServiceBroker({ nodeID, logger: false, middlewares: [middleware] });
		broker.createService({
			name: "consumer",
			channels: { [CHANNEL]: { group: GROUP, maxRetries: 3, deadLettering: { enabled: true, queueName: DEAD }, handler } }
		});
		brokers.push(broker);
		await broker.start();
		return broker;
	}

	const stream = () => `${prefix}.${CHANNEL}`;
	const pendingCount = async () => ((await redis.xpending(stream(), GROUP)) as [number])[0];
	const deadLetters = async () => redis.xrange(`${prefix}.${DEAD}`, "-", "+");
	/** Headers of a dead-letter entry: its fields are payload, headers (JSON). */
	const headersOf = (entry: [string, string[]]) => JSON.parse(entry[1][3]!) as Record<string, unknown>;

	async function publish(payload: unknown): Promise<void> {
		await redis.xadd(stream(), "*", "payload", JSON.stringify(payload));
	}

	function failing(calls: Delivery[]): Handler {
		return async (_payload, delivery) => {
			calls.push({ attempt: delivery.attempt, exhausted: delivery.exhausted });
			throw new Error("boom");
		};
	}

	before(async () => {
		server = await testRedis();
		redis = new Redis(server.url);
	});
	beforeEach(() => {
		prefix = `imgmesh-test-${randomUUID()}`;
	});
	afterEach(async () => {
		await Promise.all(brokers.splice(0).map(broker => broker.stop()));
		const keys = await redis.keys(`${prefix}.*`);
		if (keys.length) await redis.del(...keys);
	});
	after(async () => {
		await redis.quit();
		await server.stop();
	});


	describe("stopping a consumer that owns a pending message", () => {
		it("upstream 0.1.8 deletes the consumer and loses the message", async () => {
			const calls: Delivery[] = [];
			const broker = await consumer(Channels.Adapters.Redis, "a", { minIdleTime: 3_600_000 }, failing(calls));
			await publish({ n: 1 });
			await waitFor("the first delivery", async () => (calls.length ? true : undefined));
			await broker.stop();
			assert.equal(await pendingCount(), 0, "the failed message is no longer pending anywhere");
			assert.deepEqual(await deadLetters(), []);
			assert.equal(await redis.xlen(stream()), 1, "yet it was never handled");
		});

		it("DurableRedisAdapter keeps it, and another consumer handles it", async () => {
			const calls: Delivery[] = [];
			const first = await consumer(DurableRedisAdapter, "a", { minIdleTime: 3_600_000 }, failing(calls));
			await publish({ n: 1 });
			await waitFor("the first delivery", async () => (calls.length ? true : undefined));
			await first.stop();
			assert.equal(await pendingCount(), 1, "still pending, owned by the stopped consumer");

			const handled: Delivery[] = [];
			await consumer(DurableRedisAdapter, "b", { minIdleTime: 200 }, async (payload, delivery) => {
				handled.push({ attempt: delivery.attempt });
				assert.deepEqual(payload, { n: 1 });
			});
			await waitFor("the message to be acknowledged", async () => ((await pendingCount()) === 0 && handled.length ? true : undefined));
			assert.deepEqual(handled, [{ attempt: 2 }]);
			assert.deepEqual(await deadLetters(), []);
		});
	});

	it("dead-letters an unreadable message without running the handler, and goes on", async () => {
		const handled: unknown[] = [];
		await consumer(DurableRedisAdapter, "a", { minIdleTime: 50 }, async payload => {
			handled.push(payload);
		});
		await redis.xadd(stream(), "*", "payload", "{not json");
		await publish({ n: 2 });
		const [dead] = await waitFor("the dead letter", async () => ((await deadLetters()).length ? deadLetters() : undefined));
		await waitFor("the next message", async () => (handled.length ? true : undefined));
		assert.deepEqual(handled, [{ n: 2 }]);
		assert.equal(dead![1][1], "{not json", "moved as it was");
		assert.match(String(headersOf(dead!)[HEADER_ERROR]), /^unreadable message/);
		await waitFor("both acknowledged", async () => ((await pendingCount()) === 0 ? true : undefined));
	});

	it("does not hand out a job again while its handler is still working on it", async () => {
		const calls: Delivery[] = [];
		let finished = false;
		await consumer(DurableRedisAdapter, "a", { minIdleTime: 200 }, async (_payload, delivery) => {
			calls.push({ attempt: delivery.attempt });
			// Five times minIdleTime: without the keep-alive the entry is claimed again meanwhile.
			await new Promise(resolve => setTimeout(resolve, 1000));
			finished = true;
		});
		await consumer(DurableRedisAdapter, "b", { minIdleTime: 200 }, async (_payload, delivery) => {
			calls.push({ attempt: delivery.attempt });
		});
		await publish({ n: 1 });
		await waitFor("the job to be acknowledged", async () => (finished && (await pendingCount()) === 0 ? true : undefined));
		assert.deepEqual(calls, [{ attempt: 1 }]);
	});

	it("creates a consumer group that vanished again, says the jobs were lost, and reads on", async () => {
		const handled: unknown[] = [];
		const broker = await consumer(DurableRedisAdapter, "a", { minIdleTime: 3_600_000 }, async payload => {
			handled.push(payload);
		});
		const lost: unknown[] = [];
		broker.createService({ name: "listener", events: { [JOBS_LOST_EVENT]: (ctx: { params: unknown }) => void lost.push(ctx.params) } });
		await publish({ n: 1 });
		await waitFor("the first message", async () => (handled.length === 1 ? true : undefined));

		// What a Redis restarted without its data looks like to the consumer: no stream, no group.
		await redis.del(stream());
		await publish({ n: 2 });
		await waitFor("the message sent after the loss", async () => (handled.length === 2 ? true : undefined));
		assert.deepEqual(handled, [{ n: 1 }, { n: 2 }]);
		assert.equal(lost.length, 1);
		assert.deepEqual({ ...(lost[0] as object), since: undefined }, { channel: CHANNEL, group: GROUP, since: undefined });
		await waitFor("acknowledged", async () => ((await pendingCount()) === 0 ? true : undefined));
	});

	it("a stopping consumer hands a running job back: the handler is told to stop, another consumer takes it at once, the attempt is not counted", async () => {
		const aborted: boolean[] = [];
		let started = false;
		const first = await consumer(DurableRedisAdapter, "a", { minIdleTime: 3_600_000, stopGraceMs: 100 }, async (_payload, delivery) => {
			started = true;
			await new Promise(resolve => delivery.signal!.addEventListener("abort", resolve));
			aborted.push(delivery.signal!.aborted);
			throw delivery.signal!.reason;
		});
		await publish({ n: 1 });
		await waitFor("the first delivery", async () => (started ? true : undefined));

		const handled: Delivery[] = [];
		// An hour's redelivery timeout: only a hand-back gives it the job within the test.
		await consumer(DurableRedisAdapter, "b", { minIdleTime: 3_600_000 }, async (_payload, delivery) => {
			handled.push({ attempt: delivery.attempt });
		});
		(first as ServiceBroker & { channelAdapter: DurableRedisAdapter }).channelAdapter.stopTakingJobs();
		await waitFor("the job on the other consumer", async () => (handled.length && (await pendingCount()) === 0 ? true : undefined));
		assert.deepEqual(aborted, [true]);
		assert.deepEqual(handled, [{ attempt: 1 }]);
		assert.deepEqual(await deadLetters(), []);
	});

	describe("a message that always fails", () => {
		it("upstream 0.1.8 runs the handler past maxRetries", async () => {
			const calls: Delivery[] = [];
			// The sweep that dead-letters runs at start and then only every 5 s; claims come every 50 ms.
			await consumer(Channels.Adapters.Redis, "a", { minIdleTime: 50, processingAttemptsInterval: 5000 }, failing(calls));
			await publish({ n: 1 });
			await waitFor("more than 3 deliveries", async () => (calls.length > 3 ? true : undefined));
		});

		it("DurableRedisAdapter runs it exactly maxRetries times, then dead-letters it once", async () => {
			const calls: Delivery[] = [];
			await consumer(DurableRedisAdapter, "a", { minIdleTime: 50 }, failing(calls));
			await publish({ n: 1 });
			const [dead] = await waitFor("the dead letter", async () => ((await deadLetters()).length ? deadLetters() : undefined));
			assert.equal(await pendingCount(), 0, "acknowledged: it cannot be claimed again");
			assert.deepEqual(calls, [
				{ attempt: 1, exhausted: false },
				{ attempt: 2, exhausted: false },
				{ attempt: 3, exhausted: false }
			]);
			assert.deepEqual(JSON.parse(dead![1][1]!), { n: 1 });
			const headers = headersOf(dead!);
			assert.equal(headers[HEADER_ERROR], "boom");
			assert.equal(headers[HEADER_ATTEMPTS], 3);
			assert.equal(headers["x-original-channel"], stream());
			assert.equal(headers["x-original-group"], GROUP);
		});

		it("a message whose deliveries never finished reaches the handler once, flagged exhausted", async () => {
			// Three deliveries to a consumer that died each time: the counter is at 3, nothing acked.
			await redis.xgroup("CREATE", stream(), GROUP, "0", "MKSTREAM");
			await publish({ n: 1 });
			await redis.xreadgroup("GROUP", GROUP, "ghost", "COUNT", 1, "STREAMS", stream(), ">");
			const [[id]] = (await redis.xpending(stream(), GROUP, "-", "+", 1)) as [[string]];
			await redis.xclaim(stream(), GROUP, "ghost", 0, id);
			await redis.xclaim(stream(), GROUP, "ghost", 0, id);

			const calls: Delivery[] = [];
			await consumer(DurableRedisAdapter, "a", { minIdleTime: 50 }, async (_payload, delivery) => {
				calls.push({ attempt: delivery.attempt, exhausted: delivery.exhausted });
			});
			const [dead] = await waitFor("the dead letter", async () => ((await deadLetters()).length ? deadLetters() : undefined));
			assert.deepEqual(calls, [{ attempt: 4, exhausted: true }]);
			assert.match(String(headersOf(dead!)[HEADER_ERROR]), /no delivery finished in 3 attempt/);
			assert.equal(await pendingCount(), 0);
		});
	});

});
