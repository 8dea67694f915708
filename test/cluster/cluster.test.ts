/**
 * Distributed mode over a real Redis of the test's own: three nodes in separate processes
 * (gateway; storage+images+categories; users) serve the whole REST flow, and the cluster keeps
 * its promises when a node stops gracefully, when one is killed, and when Redis restarts.
 * Nodes have no shared disk except the two images nodes of the fault tests, which share one
 * DATA_DIR (SQLite + fs blobs on one machine).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";
import type { ServiceBroker } from "moleculer";
import { Client, type ApiResponse } from "../helpers/client.ts";
import { assertCoreRestFlow, clusterEnv, nodesWith, redisSkipReason, startNode, startObserver, startRedis, waitForCluster, waitForRoutes, type RedisServer } from "../helpers/cluster.ts";
import { SHARED_IMAGES, freePort, type RunningServer } from "../helpers/server.ts";

// transform too: guests of public links get the originals' copies without metadata, which it makes.
const DATA_SERVICES = ["storage", "images", "categories", "transform"];
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const DOG = readFileSync(join(SHARED_IMAGES, "dog.jpg"));

/** A request unanswered this long is hung (its failure, not its slowness, is what is tested). */
const NO_ANSWER_MS = 60_000;

function answeredWithin<T>(promise: Promise<T>, ms: number): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms)));
	return Promise.race([promise, hung]).finally(() => clearTimeout(timer));
}

/** Concurrent uploaders of a traffic run. */
const WORKERS = 3;

/** Acknowledged uploads of a traffic run: name -> id. */
type Acked = Map<string, string>;

interface Traffic {
	statuses: number[];
	/** When each request started and ended (performance.now()), in the order of `statuses`. */
	spans: { start: number; end: number }[];
	/** Bodies of the failed requests, for diagnosis. */
	errors: string[];
	acked: Acked;
	stop(): Promise<void>;
}

/**
 * Uploads with unique names (and reads them back) from `workers` loops until stopped. A name
 * stored twice would mean a request executed twice.
 */
function runTraffic(client: Client, label: string, workers = WORKERS): Traffic {
	const statuses: number[] = [];
	const spans: { start: number; end: number }[] = [];
	const errors: string[] = [];
	const acked: Acked = new Map();
	let running = true;
	let seq = 0;
	const loop = async () => {
		while (running) {
			const name = `${label}-${seq++}`;
			let res: ApiResponse;
			const start = performance.now();
			try {
				res = await answeredWithin(client.upload([{ name: `${name}.jpg`, bytes: DOG }], { name, tags: label }), NO_ANSWER_MS);
			} catch (err) {
				res = { status: 0, headers: new Headers(), body: (err as Error).message };
			}
			statuses.push(res.status);
			spans.push({ start, end: performance.now() });
			if (res.status === 201) acked.set(name, res.body.images[0].id);
			else errors.push(`${res.status} ${JSON.stringify(res.body)}`);
			if (res.status !== 201) await new Promise(resolve => setTimeout(resolve, 50));
		}
	};
	const loops = Array.from({ length: workers }, loop);
	return {
		statuses,
		spans,
		errors,
		acked,
		async stop() {
			running = false;
			await Promise.all(loops);
		}
	};
}

/** Every acknowledged upload is listed exactly once and its bytes are intact. */
async function assertStoredOnce(client: Client, tag: string, acked: Acked): Promise<void> {
	const names: string[] = [];
	let cursor: string | null = null;
	do {
		const page: ApiResponse = await client.get(`/api/images?tag=${tag}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
		assert.equal(page.status, 200);
		names.push(...page.body.items.map((image: { name: string }) => image.name));
		cursor = page.body.nextCursor;
	} while (cursor);
	const duplicates = names.filter((name, i) => names.indexOf(name) !== i);
	assert.deepEqual(duplicates, [], "no upload request was executed twice");
	for (const [name, id] of acked) {
		assert.ok(names.includes(name), `acknowledged upload ${name} is stored`);
		const download = await client.download(`/api/images/${id}/content`);
		assert.equal(download.status, 200);
		assert.equal(sha256(download.bytes), sha256(DOG));
	}
}

const skip = redisSkipReason();

describe("cluster over Redis", { skip, timeout: 240_000 }, () => {
	let redis: RedisServer;
	let env: Record<string, string>;
	let observer: ServiceBroker;
	let gateway: RunningServer;
	let data: RunningServer;
	let users: RunningServer;
	const extra: RunningServer[] = [];
	let alice: Client;
	let metricsPort: number;

	/** A second images node on the first one's DATA_DIR. */
	async function startSecondDataNode(nodeId: string): Promise<RunningServer> {
		const node = await startNode(env, DATA_SERVICES, { dataDir: data.dataDir, nodeId });
		extra.push(node);
		await waitForCluster(`${nodeId} hosts images`, () => nodesWith(observer, "images").includes(nodeId));
		return node;
	}

	before(async () => {
		metricsPort = await freePort();
		redis = await startRedis();
		env = clusterEnv(redis);
		observer = await startObserver(env);
		[data, users] = await Promise.all([startNode(env, DATA_SERVICES, { nodeId: "data-1" }), startNode(env, ["users"], { nodeId: "users-1" })]);
		// The gateway is ready when every service it needs answers through the cluster.
		gateway = await startNode({ ...env, METRICS_PORT: String(metricsPort) }, ["api", "health"], { nodeId: "gateway-1" });
		await waitForRoutes(gateway.url);
		alice = await new Client(gateway.url).register("alice");
		await waitForCluster("the observer sees the three nodes", () => nodesWith(observer, "api").length + nodesWith(observer, "images").length + nodesWith(observer, "users").length === 3);
	}, { timeout: 120_000 });

	after(async () => {
		await observer?.stop();
		await Promise.all([gateway, data, users, ...extra].map(node => node?.stop({ keepData: false })));
		await redis?.stop();
	});

	it("serves the REST flow with gateway, images and users on three nodes", async () => {
		assert.deepEqual(nodesWith(observer, "api"), ["gateway-1"]);
		assert.deepEqual(nodesWith(observer, "images"), ["data-1"]);
		assert.deepEqual(nodesWith(observer, "users"), ["users-1"]);
		await assertCoreRestFlow(gateway.url, alice);

		// The gateway's Prometheus endpoint (METRICS_PORT) counts the calls it made to other nodes.
		const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
		const uploads = metrics.split("\n").find(line => line.startsWith("moleculer_request_total{") && line.includes('action="images.upload"'));
		assert.ok(uploads?.includes('nodeID="gateway-1"') && Number(uploads.split(" ").pop()) >= 1, uploads ?? metrics.slice(0, 2000));
	});

	it("loses no in-flight upload when an images node stops gracefully", async () => {
		const second = await startSecondDataNode("data-2");
		const traffic = runTraffic(alice, "graceful");
		await waitForCluster("uploads reach both images nodes", () => traffic.acked.size >= 20);
		const stopAt = performance.now();
		await second.stop({ keepData: true });
		const ackedAtStop = traffic.acked.size;
		await waitForCluster("uploads go on", () => traffic.acked.size >= ackedAtStop + 10);
		await traffic.stop();
		const inFlight = traffic.statuses.filter((_, i) => traffic.spans[i].start < stopAt && traffic.spans[i].end > stopAt);
		assert.ok(inFlight.length > 0, "uploads were in flight when the node was told to stop");
		assert.deepEqual(inFlight.filter(status => status !== 201), [], `every upload in flight at the stop completed; ${traffic.errors.join(" | ")}`);
		// One sent in the moment before the gateway hears of the stop is refused (503), never lost.
		assert.deepEqual(traffic.statuses.filter(status => status !== 201 && status !== 503), [], traffic.errors.join(" | "));
		await assertStoredOnce(alice, "graceful", traffic.acked);
	});

	it("carries on after an images node is killed: calls succeed again after the heartbeat timeout", async () => {
		const doomed = await startSecondDataNode("data-3");
		const traffic = runTraffic(alice, "killed");
		await waitForCluster("uploads run", () => traffic.acked.size >= 10);
		doomed.process.kill("SIGKILL");
		await waitForCluster("the killed node expires", () => !nodesWith(observer, "images").includes("data-3"));
		const settled = traffic.statuses.length;
		await waitForCluster("uploads go on", () => traffic.statuses.length >= settled + WORKERS + 10);
		await traffic.stop();
		const afterExpiry = traffic.statuses.slice(settled + WORKERS); // the requests already in flight may have gone to data-3
		assert.ok(afterExpiry.length > 0);
		assert.deepEqual(afterExpiry.filter(status => status !== 201), [], "all requests succeed once the node has expired");
		const failed = traffic.statuses.filter(status => status !== 201);
		assert.ok(failed.every(status => status === 503), `failures before the expiry are 503, got ${failed}`);
		await assertStoredOnce(alice, "killed", traffic.acked);
	});

	it("fails fast with 503 while Redis is down, recovers when it returns, never runs a request twice", async () => {
		const traffic = runTraffic(alice, "redis");
		await waitForCluster("uploads run", () => traffic.acked.size >= 10);
		const killTime = performance.now();
		await redis.kill();
		const killedAt = traffic.statuses.length;
		try {
			await waitForCluster("requests fail during the gap", () => traffic.statuses.slice(killedAt).filter(status => status === 503).length >= 5);
		} finally {
			await redis.start();
		}
		const ackedAtRestart = traffic.acked.size;
		await waitForCluster("uploads succeed again", () => traffic.acked.size >= ackedAtRestart + 20, 90_000).catch((err: Error) => {
			// What the nodes said is what explains a recovery that did not happen.
			const diagnosis = `statuses ${traffic.statuses.join(",")}\nerrors ${traffic.errors.join(" | ")}\ngateway:\n${gateway.output().slice(-6000)}\ndata:\n${data.output().slice(-4000)}`;
			throw new Error(`${err.message}\n${diagnosis}`);
		});
		await traffic.stop();
		// The requests in flight when Redis died may also have had their upload cut (status 0);
		// every one sent later is answered, 201 or 503.
		const startedBefore = (i: number) => traffic.spans[i].start < killTime;
		const inFlight = traffic.statuses.filter((_, i) => i >= killedAt && startedBefore(i));
		assert.ok(inFlight.every(status => [0, 201, 503].includes(status)), `in flight at the kill: ${inFlight}`);
		const gap = traffic.statuses.filter((_, i) => i >= killedAt && !startedBefore(i));
		assert.ok(gap.every(status => status === 201 || status === 503), `during the gap only 201 or 503, got ${[...new Set(gap)]}: ${traffic.errors.join(" | ")}\n${gateway.output().split("\n").filter(line => line.includes("failed:")).join("\n")}`);
		await assertStoredOnce(alice, "redis", traffic.acked);

		// moleculer#1363's symptom: a node with two subscribed clients gets every request twice.
		for (const node of ["gateway-1", "data-1", "users-1"]) {
			const [, subscribers] = (await redis.command("PUBSUB", "NUMSUB", `MOL-${env.NAMESPACE}.REQ.${node}`)) as [string, number];
			assert.equal(subscribers, 1, `${node} has one subscribed client`);
		}
	});
});
