/**
 * Real clusters for tests: a redis-server of the test's own on a free loopback port (so it can be
 * killed and restarted), imgmesh nodes in child processes joined over it (test/helpers/server.ts),
 * and an in-process observer node without services that sees the registry and calls actions the
 * way the operator REPL does. Each cluster gets a unique NAMESPACE and short heartbeats.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { ServiceBroker } from "moleculer";
import { Client, fileFrom } from "./client.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, freePort, startServer, type RunningServer } from "./server.ts";

/**
 * Why the Redis suites cannot run here, or undefined when they can. With CI=true a missing
 * redis-server is an error, not a reason to skip.
 */
export function redisSkipReason(): string | undefined {
	const found = spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
	if (found) return undefined;
	if (process.env.CI === "true") throw new Error("CI=true but redis-server is not installed: the cluster suites must run in CI");
	return "redis-server is not installed (apt install redis-server); cluster suites skipped";
}

export interface RedisServer {
	url: string;
	/** SIGKILL: every connection drops at once, nothing is saved. */
	kill(): Promise<void>;
	/** Starts it again on the same port (after `kill`). */
	start(): Promise<void>;
	/** A command on a fresh connection (e.g. PUBSUB NUMSUB). */
	command(...args: string[]): Promise<unknown>;
	stop(): Promise<void>;
}

async function waitForRedis(url: string, child: ChildProcess): Promise<void> {
	const deadline = Date.now() + 10_000;
	while (Date.now() < deadline) {
		if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
		const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
		client.on("error", () => undefined);
		try {
			await client.connect();
			await client.ping();
			return;
		} catch {
			await new Promise(resolve => setTimeout(resolve, 50));
		} finally {
			client.disconnect();
		}
	}
	throw new Error("redis-server did not start within 10 s");
}

/**
 * A redis-server on a free port. Without persistence (the default) a restart after `kill` starts
 * empty; with `appendonly` it replays its append-only file (in a directory of its own, fsynced at
 * every write so that a SIGKILL loses nothing) and comes back with its streams and groups.
 */
export async function startRedis(options: { appendonly?: boolean } = {}): Promise<RedisServer> {
	const port = await freePort();
	const url = `redis://127.0.0.1:${port}`;
	const dir = options.appendonly ? mkdtempSync(join(tmpdir(), "imgmesh-redis-")) : undefined;
	const persistence = dir ? ["--appendonly", "yes", "--appendfsync", "always", "--dir", dir] : ["--appendonly", "no"];
	let child: ChildProcess | undefined;
	const start = async () => {
		child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", ...persistence], { stdio: "ignore" });
		await waitForRedis(url, child);
	};
	const kill = async () => {
		if (!child || child.exitCode !== null || child.signalCode !== null) return;
		const exited = new Promise(resolve => child!.once("exit", resolve));
		child.kill("SIGKILL");
		await exited;
	};
	await start();
	return {
		url,
		kill,
		start,
		async stop() {
			await kill();
			if (dir) rmSync(dir, { recursive: true, force: true });
		},
		async command(...args: string[]) {
			const client = new Redis(url, { maxRetriesPerRequest: 0 });
			try {
				return await client.call(args[0], ...args.slice(1));
			} finally {
				client.disconnect();
			}
		}
	};
}

/** Environment every node of one test cluster shares: its Redis, a fresh namespace, the secrets. */
export function clusterEnv(redis: RedisServer): Record<string, string> {
	return {
		TRANSPORTER: redis.url,
		NAMESPACE: `test-${randomBytes(4).toString("hex")}`,
		// Short heartbeats keep node-loss tests fast; the timeout is still two beats.
		HEARTBEAT_INTERVAL: "1",
		HEARTBEAT_TIMEOUT: "3",
		JWT_SECRET: randomBytes(32).toString("hex"),
		STORAGE_MASTER_KEY: randomBytes(32).toString("hex"),
		TRANSFORM_SIGNING_KEYS: `k1:${randomBytes(32).toString("hex")}`,
		ADMIN_PASSWORD
	};
}

/** Starts one node with the given services; only a node with `api` is waited for over HTTP. */
export function startNode(env: Record<string, string>, services: string[], options: { dataDir?: string; nodeId?: string } = {}): Promise<RunningServer> {
	const nodeEnv = { ...env, SERVICES: services.join(","), ...(options.nodeId ? { NODE_ID: options.nodeId } : {}) };
	return startServer(nodeEnv, { dataDir: options.dataDir, readyPath: services.includes("api") ? undefined : null });
}

/**
 * A node without services in this process, joined to the cluster of `env`, with the same broker
 * options as every node (moleculer.config.ts).
 */
export async function startObserver(env: Record<string, string>): Promise<ServiceBroker> {
	// moleculer.config.ts reads the process configuration when imported: keep its DATA_DIR out of the repo.
	process.env.DATA_DIR ??= mkdtempSync(join(tmpdir(), "imgmesh-observer-"));
	const [{ brokerOptions }, { loadConfig }] = await Promise.all([import("../../moleculer.config.ts"), import("../../config/index.ts")]);
	// Errors only: the observer lives through the Redis outages the tests cause, and says so at length.
	const config = loadConfig({ ...process.env, ...env, LOG_LEVEL: "error", NODE_ID: `observer-${process.pid}` });
	const broker = new ServiceBroker(brokerOptions(config));
	await broker.start();
	return broker;
}

/** Ids of the live nodes that host `service`. */
export function nodesWith(broker: ServiceBroker, service: string): string[] {
	const nodes = broker.registry.getNodeList({ onlyAvailable: true, withServices: true });
	return nodes.filter(node => node.services.some(s => s.name === service)).map(node => node.id).sort();
}

/** Waits until `check` (usually on the observer's registry) holds. */
export async function waitForCluster(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!check()) {
		if (Date.now() > deadline) throw new Error(`cluster: ${what} not reached within ${timeoutMs} ms`);
		await new Promise(resolve => setTimeout(resolve, 100));
	}
}

/**
 * Waits until the gateway has REST routes for the remote services: /api/ready only says they
 * answer, while moleculer-web adds their aliases a moment after it learns of them.
 */
export async function waitForRoutes(gatewayUrl: string, paths = ["/api/categories", "/api/images", "/api/auth/me"]): Promise<void> {
	const deadline = Date.now() + 20_000;
	for (const path of paths) {
		// 404: no such route (yet); 503: the gateway knows its routes lag behind the cluster.
		while ([404, 503].includes((await fetch(gatewayUrl + path)).status)) {
			if (Date.now() > deadline) throw new Error(`gateway has no route ${path} after 20 s`);
			await new Promise(resolve => setTimeout(resolve, 100));
		}
	}
}

/**
 * The core REST flow through a cluster's gateway, as `alice` (a registered user) and the admin:
 * a category, a two-file upload, listing, search, content and a public range, delete, stats (whose
 * user count comes from the users node).
 */
export async function assertCoreRestFlow(gatewayUrl: string, alice: Client): Promise<void> {
	const DOG = readFileSync(join(SHARED_IMAGES, "dog.jpg"));
	const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
	const anon = new Client(gatewayUrl);
	const admin = await anon.login("admin", ADMIN_PASSWORD);
	assert.equal((await admin.post("/api/categories", { name: "Animals" })).status, 201);

	const upload = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg")), fileFrom(join(SHARED_IMAGES, "chelsea.png"))], {
		category: "animals",
		description: "Across nodes #cluster",
		visibility: "public"
	});
	assert.equal(upload.status, 201, JSON.stringify(upload.body));
	const [dog, chelsea] = upload.body.images;
	assert.equal(dog.sha256, sha256(DOG));

	const listed = await alice.get("/api/images");
	assert.equal(listed.body.total, 2);
	const found = await alice.get("/api/images?q=tag:cluster category:animals chelsea");
	assert.deepEqual(found.body.items.map((image: { id: string }) => image.id), [chelsea.id]);

	const content = await anon.download(`/api/images/${dog.id}/content`);
	assert.equal(content.status, 200);
	assert.ok(content.bytes.equals(DOG));
	const range = await anon.download(`/p/${dog.id}`, { range: "bytes=0-99" });
	assert.equal(range.status, 206);
	assert.ok(range.bytes.equals(DOG.subarray(0, 100)));

	assert.equal((await alice.delete(`/api/images/${dog.id}`)).status, 204);
	assert.equal((await alice.get(`/api/images/${dog.id}`)).status, 404);
	assert.equal((await anon.download(`/p/${dog.id}`)).status, 404);
	const stats = await admin.get("/api/stats");
	assert.equal(stats.body.users, 2, "images asks the users node for the count");
}
