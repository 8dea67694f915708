/**
 * The job channels under faults, on a redis-server of the test's own (helpers/cluster.ts) so
 * that it can be killed and started again on the same port: Redis restarted empty mid-workload,
 * Redis restarted from its append-only file, and a worker stopped with SIGTERM while it
 * processes a job. Each cluster is a gateway node (SQLite), a storage node and worker nodes
 * (SERVICES=worker) sharing one data directory, started like `npm start`.
 *
 * JOB_REDELIVER_AFTER_MS is ten minutes throughout: a job that another worker only claims after
 * that timeout could not explain anything these tests see within their bounds.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Redis } from "ioredis";
import { CHANNELS } from "../../models/pipeline/channels.ts";
import { Client } from "../helpers/client.ts";
import { clusterEnv, redisSkipReason, startRedis, type RedisServer } from "../helpers/cluster.ts";
import { cameraJpeg, settled, startNode, waitFor, type Node } from "../helpers/jobs.ts";
import { startServer, type RunningServer } from "../helpers/server.ts";

const LONG_REDELIVERY = { JOB_REDELIVER_AFTER_MS: "600000", JOB_CLAIM_INTERVAL_MS: "100", WORKER_MAX_IN_FLIGHT: "1" };
/** Moleculer's tracking.shutdownTimeout (moleculer.config.ts): a node must be gone by then. */
const SHUTDOWN_TIMEOUT_MS = 30_000;

interface JobCluster {
	redis: RedisServer;
	env: Record<string, string>;
	dataDir: string;
	gateway: RunningServer;
	alice: Client;
	workers: Node[];
	worker(name: string, env?: Record<string, string>): Promise<Node>;
	stop(): Promise<void>;
}

async function startJobCluster(redis: RedisServer): Promise<JobCluster> {
	const env = { ...clusterEnv(redis), ...LONG_REDELIVERY };
	const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-job-faults-"));
	const storage = await startNode(dataDir, { ...env, SERVICES: "storage", NODE_ID: "storage" });
	const gateway = await startServer({ ...env, SERVICES: "api,images,users,categories,health", NODE_ID: "gateway" }, { dataDir });
	const alice = await new Client(gateway.url).register("alice");
	const workers: Node[] = [];
	return {
		redis,
		env,
		dataDir,
		gateway,
		alice,
		workers,
		async worker(name, extra = {}) {
			const node = await startNode(dataDir, { ...env, SERVICES: "worker", NODE_ID: name, ...extra });
			workers.push(node);
			return node;
		},
		async stop() {
			await Promise.all(workers.map(node => node.stop()));
			await gateway.stop({ keepData: true });
			await storage.stop();
			await redis.stop();
			rmSync(dataDir, { recursive: true, force: true });
		}
	};
}

/** Uploads `count` generated photos (large enough that the workers have a backlog); their ids. */
async function uploadPhotos(alice: Client, prefix: string, count: number): Promise<string[]> {
	const files = await Promise.all(Array.from({ length: count }, async (_, i) => ({ name: `${prefix}-${i}.jpg`, bytes: await cameraJpeg(2400, 1600) })));
	const res = await alice.upload(files);
	assert.equal(res.status, 201, JSON.stringify(res.body));
	return res.body.images.map((image: { id: string }) => image.id);
}

async function statuses(alice: Client, ids: string[]): Promise<string[]> {
	return Promise.all(ids.map(async id => (await alice.get(`/api/images/${id}`)).body.status as string));
}

/** Kills Redis once some of the images are ready and others still wait, then starts it again; when it is back. */
async function restartRedisMidWorkload(cluster: JobCluster, ids: string[]): Promise<number> {
	await waitFor("a workload half done", async () => {
		const now = await statuses(cluster.alice, ids);
		return now.includes("ready") && now.filter(status => status === "processing").length >= 2 ? true : undefined;
	}, 60_000);
	await cluster.redis.kill();
	await cluster.redis.start();
	return Date.now();
}

/** Uploads once the cluster serves again after the Redis restart (503 until the nodes reconnect). */
async function uploadAfterRestart(cluster: JobCluster): Promise<string[]> {
	return waitFor("an upload to succeed after the restart", async () => {
		const res = await cluster.alice.upload([{ name: "after.jpg", bytes: await cameraJpeg(800, 600) }]);
		return res.status === 201 ? res.body.images.map((image: { id: string }) => image.id) : undefined;
	}, 60_000);
}

async function assertAllReady(cluster: JobCluster, ids: string[], timeoutMs: number): Promise<void> {
	for (const id of ids) {
		const doc = await settled(cluster.alice, id, timeoutMs).catch((err: Error) => {
			throw new Error(`${err.message}\n${cluster.workers.map(node => node.output().slice(-3000)).join("\n---\n")}`);
		});
		assert.equal(doc.status, "ready", doc.statusReason);
	}
}

const skip = redisSkipReason();

/** Runs `test` on a fresh cluster over a Redis of its own, and stops both whatever happens. */
async function withJobCluster(redisOptions: Parameters<typeof startRedis>[0], test: (cluster: JobCluster) => Promise<void>): Promise<void> {
	const cluster = await startJobCluster(await startRedis(redisOptions));
	try {
		await test(cluster);
	} finally {
		await cluster.stop();
	}
}

describe("job channels under faults", { skip, timeout: 300_000 }, () => {
	it("a Redis restarted without persistence mid-workload: every image ends ready, no node restarted, one log line per incident", t => withJobCluster({}, async cluster => {
		await Promise.all([cluster.worker("w1"), cluster.worker("w2")]);
		const before = await uploadPhotos(cluster.alice, "before", 8);
		const restartedAt = await restartRedisMidWorkload(cluster, before);
		const afterRestart = await uploadAfterRestart(cluster);
		// RECONCILE_STUCK_AFTER_MS is its default (10 min): only a recovery that knows the jobs were lost finishes in time.
		await assertAllReady(cluster, [...before, ...afterRestart], 90_000);
		t.diagnostic(`every image ready ${Date.now() - restartedAt} ms after Redis came back empty`);
		// The workers share the group: whichever sees NOGROUP first creates it again, the other may never see it.
		const noGroup = cluster.workers.map(node => node.output().split("\n").filter(line => line.includes("NOGROUP")));
		assert.ok(noGroup.flat().length >= 1, "a worker noticed that the consumer group was gone");
		for (const lines of noGroup) assert.ok(lines.length <= 1, `one line per incident, not per retry (${lines.length}):\n${lines.slice(0, 5).join("\n")}`);
	}));

	it("a Redis restarted from its append-only file mid-workload: every image ends ready", t => withJobCluster({ appendonly: true }, async cluster => {
		// A job whose handler failed while Redis was down is retried after JOB_REDELIVER_AFTER_MS.
		const retryAfter = { JOB_REDELIVER_AFTER_MS: "3000" };
		await Promise.all([cluster.worker("w1", retryAfter), cluster.worker("w2", retryAfter)]);
		const before = await uploadPhotos(cluster.alice, "aof", 8);
		const restartedAt = await restartRedisMidWorkload(cluster, before);
		const afterRestart = await uploadAfterRestart(cluster);
		await assertAllReady(cluster, [...before, ...afterRestart], 90_000);
		t.diagnostic(`every image ready ${Date.now() - restartedAt} ms after Redis came back from its append-only file`);
	}));

	it("SIGTERM to a worker with a job in flight: another worker finishes the job at once, and the node exits within shutdownTimeout", t => withJobCluster({}, async cluster => {
		const redis = new Redis(cluster.redis.url);
		try {
			const stream = `${cluster.env.NAMESPACE}.${CHANNELS.process}`;
			// Large enough that the job takes seconds: the original (8 MB) travels to the worker first.
			const photo = await cameraJpeg(6000, 4000);
			const id = (await cluster.alice.upload([{ name: "big.jpg", bytes: photo }])).body.images[0].id;
			const first = await cluster.worker("w1", { JOB_STOP_GRACE_MS: "200" });
			await waitFor("w1 to take the job", async () => {
				const pending = (await redis.xpending(stream, "worker", "-", "+", 10)) as [string, string][];
				return pending.some(([, consumer]) => consumer.includes("w1")) ? true : undefined;
			});

			const stopAt = Date.now();
			const exited = new Promise(resolve => first.process.once("exit", resolve));
			first.process.kill("SIGTERM");
			await exited;
			const stopMs = Date.now() - stopAt;
			assert.ok(stopMs < SHUTDOWN_TIMEOUT_MS, `w1 exited ${stopMs} ms after SIGTERM`);
			assert.equal((await cluster.alice.get(`/api/images/${id}`)).body.status, "processing", `w1 stopped working on the job after its grace:\n${first.output().slice(-3000)}`);
			assert.match(first.output(), /Handed back 1 job\(s\)/);

			// Started after w1 left: it can only have the job through the hand-back (or in ten minutes).
			await cluster.worker("w2");
			const doc = await settled(cluster.alice, id, 60_000);
			assert.equal(doc.status, "ready", doc.statusReason);
			t.diagnostic(`w1 exited ${stopMs} ms after SIGTERM; the image was ready ${Date.now() - stopAt} ms after it`);
			assert.ok(Date.now() - stopAt < 60_000, "handed back, not redelivered after JOB_REDELIVER_AFTER_MS");
		} finally {
			redis.disconnect();
		}
	}));

	it("a worker stopped while Redis is down exits within SHUTDOWN_TIMEOUT_MS", t => withJobCluster({}, async cluster => {
		const shutdownTimeoutMs = 4000;
		const worker = await cluster.worker("w1", { SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs), JOB_STOP_GRACE_MS: "1000" });
		await cluster.redis.kill();
		try {
			const stopAt = Date.now();
			const exited = new Promise(resolve => worker.process.once("exit", resolve));
			worker.process.kill("SIGTERM");
			await exited;
			const stopMs = Date.now() - stopAt;
			t.diagnostic(`w1 exited ${stopMs} ms after SIGTERM`);
			// The process's own start-up and exit need a moment beyond the timer.
			assert.ok(stopMs < shutdownTimeoutMs + 1000, `w1 exited ${stopMs} ms after SIGTERM:\n${worker.output().slice(-3000)}`);
		} finally {
			await cluster.redis.start();
		}
	}));

	it("a second SIGTERM while a worker waits for its job exits at once", t => withJobCluster({}, async cluster => {
		const redis = new Redis(cluster.redis.url);
		try {
			const stream = `${cluster.env.NAMESPACE}.${CHANNELS.process}`;
			await cluster.alice.upload([{ name: "big.jpg", bytes: await cameraJpeg(6000, 4000) }]);
			// A grace long enough that the stop waits for the job (seconds) unless told otherwise.
			const first = await cluster.worker("w1", { JOB_STOP_GRACE_MS: "20000" });
			await waitFor("w1 to take the job", async () => {
				const pending = (await redis.xpending(stream, "worker", "-", "+", 10)) as [string, string][];
				return pending.some(([, consumer]) => consumer.includes("w1")) ? true : undefined;
			});
			const exited = new Promise<number | null>(resolve => first.process.once("exit", code => resolve(code)));
			first.process.kill("SIGTERM");
			await waitFor("w1 to begin stopping", async () => (/SIGTERM: stopping/.test(first.output()) ? true : undefined), 10_000);
			const secondAt = Date.now();
			first.process.kill("SIGTERM");
			const code = await exited;
			const exitMs = Date.now() - secondAt;
			assert.equal(code, 1, "a forced exit is not a clean one");
			assert.match(first.output(), /SIGTERM again while stopping: exiting now/);
			assert.ok(exitMs < 2000, `w1 exited ${exitMs} ms after the second SIGTERM`);
			t.diagnostic(`w1 exited ${exitMs} ms after the second SIGTERM`);
		} finally {
			redis.disconnect();
		}
	}));
});
