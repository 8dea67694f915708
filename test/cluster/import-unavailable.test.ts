/**
 * An import whose items meet a cluster without a service they need (distributed mode over a real
 * Redis): here no node runs `images` yet, as when a gateway's or a storage node's services are
 * still being discovered. The items are not the cause, so they do not fail; and they run again
 * once the service is there, after a short pause, not after their lease (`IMPORT_LEASE_MS`,
 * 5 minutes by default, which this test keeps).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "../helpers/client.ts";
import { ImageHost } from "../helpers/image-host.ts";
import { startNode, waitFor, type Node } from "../helpers/jobs.ts";
import { deleteNamespace, testRedis, type TestRedis } from "../helpers/redis.ts";
import { startServer, type RunningServer } from "../helpers/server.ts";

const ITEMS = 6;

describe("import items meeting a cluster without the images service", () => {
	const namespace = `imports-unavailable-${process.pid}-${Date.now()}`;
	const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-import-unavailable-"));
	let redis: TestRedis;
	let cluster: Record<string, string>;
	let host: ImageHost;
	let gateway: RunningServer;
	const nodes: Node[] = [];

	before(async () => {
		redis = await testRedis();
		cluster = { TRANSPORTER: redis.url, NAMESPACE: namespace };
		host = await new ImageHost().start();
		// Not ready by /api/ready (no node runs images yet): alive is enough.
		gateway = await startServer({ ...cluster, SERVICES: "api,users,categories,health" }, { dataDir, readyPath: "/api/health" });
		nodes.push(await startNode(dataDir, { ...cluster, SERVICES: "imports", IMPORT_ALLOW_PRIVATE_NETWORKS: "true", NODE_ID: "importer" }));
	});
	after(async () => {
		for (const node of nodes) await node.stop();
		await gateway?.stop({ keepData: true });
		await host?.stop();
		rmSync(dataDir, { recursive: true, force: true });
		await deleteNamespace(redis.url, namespace);
		await redis.stop();
	});

	it("waits for the service and then imports every item, well within the items' lease", async () => {
		const alice = await new Client(gateway.url).register("alice");
		await waitFor("the imports routes", async () => ((await alice.get("/api/imports")).status === 200 ? true : undefined));
		const urls = Array.from({ length: ITEMS }, (_, i) => `${host.url}/unique/unavailable-${i}.jpg`);
		const created = await alice.post("/api/imports", { source: "urls", urls });
		assert.equal(created.status, 202, JSON.stringify(created.body));
		const id = created.body.job.id;
		const importer = nodes[0]!;
		await waitFor("the items to meet the missing service", async () => (/will run again/.test(importer.output()) ? true : undefined));
		assert.equal((await alice.get(`/api/imports/${id}`)).body.failed, 0, "no item failed for the cluster's reasons");

		nodes.push(await startNode(dataDir, { ...cluster, SERVICES: "images,storage", NODE_ID: "images" }));
		// 60 s: a fifth of the lease the items would otherwise wait out.
		const job = await waitFor(
			"the job to finish",
			async () => {
				const res = await alice.get(`/api/imports/${id}`);
				return res.body.finishedAt ? res.body : undefined;
			},
			60_000
		);
		assert.deepEqual([job.status, job.succeeded, job.failed], ["completed", ITEMS, 0], JSON.stringify(job));
	});
});
