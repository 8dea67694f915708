/**
 * Durable jobs across processes, on a real Redis (helpers/redis.ts) with a namespace of its own: a gateway node, a storage node and worker nodes (SERVICES=worker), all
 * started like `npm start`, sharing one data directory. Covers a worker killed with SIGKILL in
 * the middle of a job, the same job delivered twice, a poison image, the REPL's queue, jobs
 * and reprocess commands, the admin job endpoints over REST, and storage away in the middle of
 * a job (retried with back-off, not failed).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { ServiceBroker, type BrokerOptions } from "moleculer";
import { loadConfig } from "../../config/index.ts";
import { channelsMiddleware } from "../../cluster/channels.ts";
import { JobQueue } from "../../cluster/job-streams.ts";
import { CHANNELS, DEAD_LETTER_CHANNEL } from "../../models/pipeline/channels.ts";
import { retryDeadLetter } from "../../cluster/job-streams.ts";
import { reprocessImages } from "../../repl/queue.ts";
import { Client, fileFrom } from "../helpers/client.ts";
import { blobFileCount, cameraJpeg, poisonJpeg, settled, startNode, waitFor, type Node } from "../helpers/jobs.ts";
import { testRedis, type TestRedis } from "../helpers/redis.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const GROUP = "worker";

describe("durable jobs on Redis Streams (multi-process)", () => {
	const namespace = `imgmesh-test-${randomUUID()}`;
	const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-jobs-"));
	let server: TestRedis;
	let cluster: Record<string, string>;
	const settings = {
		NAMESPACE: namespace,
		// Fast redelivery, so a dead worker's job and each retry of a failing one come back in 2 s.
		JOB_REDELIVER_AFTER_MS: "2000",
		JOB_CLAIM_INTERVAL_MS: "100",
		JOB_MAX_ATTEMPTS: "3",
		// Quick back-off after a transient failure (storage away), so its retries come within a second.
		JOB_RETRY_BASE_MS: "200",
		JOB_RETRY_MAX_MS: "1000"
	};
	let redis: Redis;
	let queue: JobQueue;
	let stream: string;
	const nodes: Node[] = [];
	let storage: Node;
	let gateway: RunningServer;
	let alice: Client;
	/** A broker in this process joined to the cluster, as the REPL runs one. */
	let operator: ServiceBroker;

	async function worker(name: string): Promise<Node> {
		const node = await startNode(dataDir, { ...cluster, SERVICES: "worker", NODE_ID: name });
		nodes.push(node);
		return node;
	}

	/** Pending entries of the worker group: [entry id, consumer, idle ms, deliveries]. */
	async function pending(): Promise<[string, string, number, number][]> {
		return (await redis.xpending(stream, GROUP, "-", "+", 100)) as [string, string, number, number][];
	}

	/** Waits until the worker group has read every entry and acknowledged all of them. */
	async function drained(): Promise<void> {
		await waitFor("the worker group to drain", async () => {
			const [row] = (await queue.stats([CHANNELS.process])).filter(r => r.group === GROUP);
			return row && row.pending === 0 && row.lag === 0 ? true : undefined;
		});
	}

	before(async () => {
		server = await testRedis();
		cluster = { ...settings, TRANSPORTER: server.url };
		redis = new Redis(server.url);
		queue = new JobQueue(redis, namespace);
		stream = queue.key(CHANNELS.process);
		storage = await startNode(dataDir, { ...cluster, SERVICES: "storage", NODE_ID: "storage" });
		gateway = await startServer({ ...cluster, SERVICES: "api,images,users,categories,health,jobs", NODE_ID: "gateway" }, { dataDir });
		alice = await new Client(gateway.url).register("alice");
		const config = loadConfig({ ...cluster, DATA_DIR: dataDir, LOG_LEVEL: "warn" });
		operator = new ServiceBroker({ nodeID: "operator", namespace, transporter: server.url as BrokerOptions["transporter"], logger: false, middlewares: [channelsMiddleware(config)] });
		await operator.start();
		await operator.waitForServices(["images"]);
	});

	after(async () => {
		await operator.stop();
		await Promise.all(nodes.map(node => node.stop()));
		await gateway.stop({ keepData: true });
		await storage.stop();
		const keys = await redis.keys(`${namespace}.*`);
		if (keys.length) await redis.del(...keys);
		await redis.quit();
		await server.stop();
		rmSync(dataDir, { recursive: true, force: true });
	});

	it("finishes on another worker a job whose worker was killed in the middle of it", async () => {
		// Large enough that the job takes a while: the original (8 MB) travels to the worker first.
		const photo = await cameraJpeg(6000, 4000);
		const id = (await alice.upload([{ name: "big.jpg", bytes: photo }])).body.images[0].id;
		const first = await worker("w1");
		await waitFor("w1 to take the job", async () => ((await pending()).some(([, consumer]) => consumer.includes(".w1.")) ? true : undefined));
		first.process.kill("SIGKILL");
		await new Promise(resolve => first.process.once("exit", resolve));
		assert.equal((await alice.get(`/api/images/${id}`)).body.status, "processing", "w1 died before finishing");

		await worker("w2");
		const doc = await settled(alice, id, 60_000);
		assert.equal(doc.status, "ready", doc.statusReason);
		assert.deepEqual(
			doc.renditions.map((r: { width: number; height: number }) => [r.width, r.height]),
			[[360, 240], [1080, 720]]
		);
		await drained();
	});

	it("makes one set of renditions when the same job arrives twice at once", async () => {
		await Promise.all(nodes.splice(0).map(node => node.stop()));
		const before = blobFileCount(dataDir);
		// Encrypted renditions get random keys: two runs would leave two sets unless one is released.
		const res = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { encrypted: "true" });
		const id = res.body.images[0].id;
		const [[, fields]] = await redis.xrevrange(stream, "+", "-", "COUNT", 1);
		assert.deepEqual(JSON.parse(fields[1]!), { id });
		await redis.xadd(stream, "*", ...fields);

		await worker("w3");
		const doc = await settled(alice, id);
		assert.equal(doc.status, "ready");
		await drained();
		assert.equal(doc.renditions.length, 2);
		assert.equal(blobFileCount(dataDir) - before, 3, "the original and one set of two renditions");
	});

	it("fails a poison image after JOB_MAX_ATTEMPTS deliveries, dead-letters its job, and keeps working", async () => {
		const good = readFileSync(join(SHARED_IMAGES, "mug-cc0.jpeg"));
		const res = await alice.upload([
			{ name: "poison.jpg", bytes: poisonJpeg(good) },
			{ name: "mug.jpeg", bytes: good }
		]);
		const [poison, fine] = res.body.images;
		assert.equal((await settled(alice, fine.id)).status, "ready", "the worker goes on with other jobs");
		const failed = await settled(alice, poison.id);
		assert.equal(failed.status, "failed");
		assert.match(failed.statusReason, /corrupt jpeg data/i);

		const [letter] = await waitFor("the dead letter", async () => {
			const letters = await queue.deadLetters();
			return letters.length ? letters : undefined;
		});
		assert.deepEqual(
			{ channel: letter!.channel, group: letter!.group, payload: letter!.payload, attempts: letter!.attempts },
			{ channel: CHANNELS.process, group: GROUP, payload: { id: poison.id }, attempts: 3 }
		);
		assert.match(letter!.error!, /corrupt jpeg data/i);
		await drained();
		const [row] = (await queue.stats([CHANNELS.process])).filter(r => r.group === GROUP);
		assert.deepEqual({ pending: row!.pending, lag: row!.lag, dead: row!.dead, consumers: row!.consumers > 0 }, { pending: 0, lag: 0, dead: 1, consumers: true });

		// `jobs retry`: the image goes back to processing, fails again, and is dead-lettered again.
		assert.equal((await retryDeadLetter(operator, queue, letter!.id))?.id, letter!.id);
		assert.equal((await alice.get(`/api/images/${poison.id}`)).body.status, "processing");
		assert.equal((await settled(alice, poison.id)).status, "failed");
		const again = await waitFor("the second dead letter", async () => {
			const letters = await queue.deadLetters();
			return letters.length && letters[0]!.id !== letter!.id ? letters : undefined;
		});
		assert.equal(again.length, 1, "the retried letter was removed");
		assert.equal(await retryDeadLetter(operator, queue, letter!.id), null, "a letter retried is gone");
		assert.equal(await redis.xlen(queue.key(DEAD_LETTER_CHANNEL)), 1);
	});

	it("shows admins the channels and dead letters over REST, and retries and discards a dead letter", async () => {
		const admin = await new Client(gateway.url).login("admin", ADMIN_PASSWORD);
		const refused = await alice.get("/api/admin/jobs");
		assert.equal(refused.status, 403);
		assert.equal(refused.body.type, "ADMIN_ONLY");

		const overview = await admin.get("/api/admin/jobs");
		assert.equal(overview.status, 200, JSON.stringify(overview.body));
		assert.equal(overview.body.mode, "distributed");
		assert.equal(overview.body.deadLetters, 1, "the poison image's letter");
		const row = overview.body.channels.find((r: { channel: string; group: string }) => r.channel === CHANNELS.process && r.group === GROUP);
		assert.deepEqual({ pending: row.pending, lag: row.lag, dead: row.dead, working: row.workers > 0 }, { pending: 0, lag: 0, dead: 1, working: true });

		const dead = await admin.get("/api/admin/jobs/dead");
		assert.equal(dead.body.total, 1);
		const [letter] = dead.body.items;
		assert.equal(letter.channel, CHANNELS.process);
		assert.match(letter.error, /corrupt jpeg data/i);
		const imageId = letter.payload.id;

		const retried = await admin.post(`/api/admin/jobs/dead/${letter.id}/retry`);
		assert.equal(retried.status, 200, JSON.stringify(retried.body));
		assert.equal(retried.body.retried.id, letter.id);
		assert.equal((await alice.get(`/api/images/${imageId}`)).body.status, "processing", "the image is back in the pipeline");
		assert.equal((await settled(alice, imageId)).status, "failed");
		const [again] = await waitFor("the retried job's new dead letter", async () => {
			const items = (await admin.get("/api/admin/jobs/dead")).body.items as { id: string }[];
			return items.length === 1 && items[0]!.id !== letter.id ? items : undefined;
		});
		assert.equal((await admin.post(`/api/admin/jobs/dead/${letter.id}/retry`)).status, 404, "a retried letter is gone");

		assert.equal((await admin.delete(`/api/admin/jobs/dead/${again!.id}`)).status, 204);
		assert.deepEqual((await admin.get("/api/admin/jobs/dead")).body, { mode: "distributed", total: 0, items: [] });
		assert.equal((await admin.delete(`/api/admin/jobs/dead/${again!.id}`)).status, 404);
		assert.equal((await alice.delete(`/api/admin/jobs/dead/${again!.id}`)).status, 403);
	});

	it("reprocesses the images a search finds, replacing their renditions", async () => {
		const before = blobFileCount(dataDir);
		const ids = await reprocessImages(operator, "dog", "ready");
		assert.equal(ids.length, 1);
		const doc = await settled(alice, ids[0]!);
		assert.equal(doc.status, "ready");
		assert.equal(doc.renditions.length, 2);
		await drained();
		assert.equal(blobFileCount(dataDir), before, "the old (encrypted) renditions were released");
	});

	it("waits while storage is away instead of failing the image, and finishes it once storage is back", async () => {
		await Promise.all(nodes.splice(0).map(node => node.stop()));
		const id = (await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { name: "patient" })).body.images[0].id;
		await storage.stop();
		const patient = await worker("w-patient");
		const waiting = await waitFor("the image to wait for storage", async () => {
			const image = (await alice.get(`/api/images/${id}`)).body;
			assert.equal(image.status, "processing", `not failed for good: ${JSON.stringify(image)}`);
			return image.statusReason ? image : undefined;
		});
		assert.match(waiting.statusReason, /waiting to retry \(\d+ of \d+\) after a transient error/);
		// More retries than JOB_MAX_ATTEMPTS: they are not the channel's attempts.
		const beyond = Number(settings.JOB_MAX_ATTEMPTS) + 1;
		await waitFor(`retry ${beyond}`, async () => (new RegExp(`retry ${beyond} of \\d+`).test(patient.output()) ? true : undefined));
		assert.equal((await alice.get(`/api/images/${id}`)).body.status, "processing");
		storage = await startNode(dataDir, { ...cluster, SERVICES: "storage", NODE_ID: "storage-again" });
		const doc = await settled(alice, id, 60_000);
		assert.equal(doc.status, "ready", doc.statusReason);
		assert.equal(doc.statusReason, null);
		assert.equal(await redis.xlen(queue.key(DEAD_LETTER_CHANNEL)), 0, "no dead letter");
	});

	// Last: deleting a stream entry leaves the group's lag unknown, which drained() waits on.
	it("enqueues again an image whose job was lost", async () => {
		await Promise.all(nodes.splice(0).map(node => node.stop()));
		const id = (await alice.upload([fileFrom(join(SHARED_IMAGES, "hummingbird.jpg"))])).body.images[0].id;
		const [[entry]] = await redis.xrevrange(stream, "+", "-", "COUNT", 1);
		assert.equal(await redis.xdel(stream, entry), 1, "the job is gone from Redis");

		const node = await startNode(dataDir, { ...cluster, SERVICES: "worker", NODE_ID: "w-reconcile", RECONCILE_STUCK_AFTER_MS: "500", RECONCILE_INTERVAL_MS: "200" });
		nodes.push(node);
		const doc = await settled(alice, id);
		assert.equal(doc.status, "ready");
		assert.match(node.output(), /Reconciler: enqueued 1 image\(s\) stuck in processing again/);
	});
});
