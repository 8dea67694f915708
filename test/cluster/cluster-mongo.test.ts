/**
 * Distributed mode as deployed: three nodes in separate processes over a Redis of the test's own
 * (gateway; storage+images+categories; users), every one on MongoDB (FerretDB here) with blobs in
 * GridFS and a DATA_DIR of its own, so no disk is shared. The core REST flow runs through the
 * gateway; then MongoDB goes away and comes back, and the cluster follows.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { Client } from "../helpers/client.ts";
import { assertCoreRestFlow, clusterEnv, redisSkipReason, startNode, startRedis, waitForRoutes, type RedisServer } from "../helpers/cluster.ts";
import { ferretDbSkipReason, startFerretDb, type FerretDb } from "../helpers/ferretdb.ts";
import { waitFor } from "../helpers/jobs.ts";
import type { RunningServer } from "../helpers/server.ts";

const skip = redisSkipReason() || ferretDbSkipReason() || undefined;

/** Fail-fast bound: a request while MongoDB is down must be refused well before this. */
const FAIL_FAST_MS = 10_000;

describe("cluster over Redis on MongoDB + GridFS", { skip, timeout: 180_000 }, () => {
	let redis: RedisServer;
	let mongo: FerretDb;
	let nodes: RunningServer[] = [];
	let gateway: RunningServer;
	let data: RunningServer;
	let alice: Client;

	before(async () => {
		[redis, mongo] = await Promise.all([startRedis(), startFerretDb()]);
		const env = { ...clusterEnv(redis), MONGO_URL: mongo.databaseUrl(), STORAGE: "gridfs" };
		// Users first: it creates the admin account the flow signs in with.
		const users = await startNode(env, ["users"], { nodeId: "users-1" });
		// transform too: guests of public links get the originals' copies without metadata, which it makes.
		data = await startNode(env, ["storage", "images", "categories", "transform"], { nodeId: "data-1" });
		gateway = await startNode(env, ["api", "health"], { nodeId: "gateway-1" });
		nodes = [gateway, data, users];
		await waitForRoutes(gateway.url);
		alice = await new Client(gateway.url).register("alice");
	}, { timeout: 120_000 });

	after(async () => {
		await Promise.all(nodes.map(node => node.stop()));
		await Promise.all([redis?.stop(), mongo?.stop()]);
	});

	it("serves the REST flow with no shared disk", async () => {
		await assertCoreRestFlow(gateway.url, alice);
		const onDisk = readdirSync(data.dataDir).filter(name => name === "blobs" || name === "images.db");
		assert.deepEqual(onDisk, [], "metadata and bytes are in MongoDB, not on the data node's disk");
	});

	it("answers 503 fast while MongoDB is down, and recovers by itself", async () => {
		await mongo.down();
		const started = Date.now();
		const ready = await fetch(`${gateway.url}/api/ready`);
		assert.equal(ready.status, 503);
		const listed = await alice.get("/api/images");
		assert.equal(listed.status, 503, JSON.stringify(listed.body));
		assert.ok(Date.now() - started < FAIL_FAST_MS, `refused within ${FAIL_FAST_MS} ms, not hung`);

		await mongo.up();
		await waitFor("the cluster to serve again", async () => ((await fetch(`${gateway.url}/api/ready`)).status === 200 ? true : undefined));
		assert.equal((await alice.get("/api/images")).status, 200);
	});
});
