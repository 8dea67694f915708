/**
 * An import worker killed with SIGKILL in the middle of a job (distributed mode over a real
 * Redis, a namespace of its own): another worker resumes the job, which
 * completes with every item counted exactly once and one image per item. Once with the metadata
 * in SQLite under a shared DATA_DIR, once in MongoDB (FerretDB), without transactions.
 * (Most of the run time is the gateway noticing that the killed node is gone.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "../helpers/client.ts";
import { type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { ImageHost } from "../helpers/image-host.ts";
import { startNode, waitFor, type Node } from "../helpers/jobs.ts";
import { deleteNamespace, testRedis, type TestRedis } from "../helpers/redis.ts";
import { startServer, type RunningServer } from "../helpers/server.ts";

const ITEMS = 120;

crashTest("SQLite", false);
crashTest("MongoDB", ferretDbSkipReason());

function crashTest(backend: "SQLite" | "MongoDB", skip: string | false): void {
	describe(`import worker killed mid-job (${backend})`, { skip }, () => {
		const namespace = `imports-crash-${backend}-${process.pid}-${Date.now()}`;
		const settings = {
			NAMESPACE: namespace,
			SERVICES: "imports,images,storage",
			IMPORT_ALLOW_PRIVATE_NETWORKS: "true",
			IMPORT_CONCURRENCY: "4",
			IMPORT_LEASE_MS: "2000",
			IMPORT_STALL_MS: "1000"
		};
		const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-import-crash-"));
		let redis: TestRedis;
		let mongo: FerretDb | undefined;
		let cluster: Record<string, string>;
		let workerEnv: Record<string, string>;
		let host: ImageHost;
		let gateway: RunningServer;
		const workers: Node[] = [];

		before(async () => {
			redis = await testRedis();
			cluster = { TRANSPORTER: redis.url, NAMESPACE: namespace };
			if (backend === "MongoDB") {
				mongo = await startFerretDb();
				cluster.MONGO_URL = mongo.databaseUrl();
			}
			workerEnv = { ...settings, ...cluster };
			host = await new ImageHost().start();
			host.delayMs = 30;
			workers.push(await startNode(dataDir, { ...workerEnv, NODE_ID: "import-worker-1" }));
			// The gateway and the rest, without the imports service: only the workers import.
			gateway = await startServer({ ...cluster, SERVICES: "api,users,categories,health,images,storage,worker" }, { dataDir });
		});
		after(async () => {
			for (const worker of workers) await worker.stop();
			await gateway?.stop({ keepData: true });
			await host?.stop();
			rmSync(dataDir, { recursive: true, force: true });
			await deleteNamespace(redis.url, namespace);
			await redis.stop();
			await mongo?.stop();
		});

		it("completes on another worker with every item counted once", async () => {
			const alice = await new Client(gateway.url).register("alice");
			// The gateway learns the imports routes once it has discovered the worker.
			await waitFor("the imports routes", async () => ((await alice.get("/api/imports")).status === 200 ? true : undefined));
			const urls = Array.from({ length: ITEMS }, (_, i) => `${host.url}/unique/crash-${i}.jpg`);
			const created = await alice.post("/api/imports", { source: "urls", urls });
			assert.equal(created.status, 202, JSON.stringify(created.body));
			const id = created.body.job.id;

			const atKill = await waitFor("the job to be under way", async () => {
				const job = (await alice.get(`/api/imports/${id}`)).body;
				return job.processed >= 20 ? job : undefined;
			});
			workers[0]!.process.kill("SIGKILL");
			await new Promise(resolve => workers[0]!.process.once("exit", resolve));
			assert.ok(atKill.processed < ITEMS, "the worker died with work left");

			workers.push(await startNode(dataDir, { ...workerEnv, NODE_ID: "import-worker-2" }));
			const job = await waitFor(
				"the job to finish",
				async () => {
					const res = await alice.get(`/api/imports/${id}`);
					return res.status === 200 && res.body.finishedAt ? res.body : undefined;
				},
				90_000
			);
			assert.equal(job.status, "completed", JSON.stringify(job));
			assert.equal(job.total, ITEMS);
			assert.equal(job.processed, ITEMS);
			assert.equal(job.failed, 0);
			assert.equal(job.succeeded + job.duplicates, ITEMS);

			const items = (await alice.get(`/api/imports/${id}/items?limit=1000`)).body.items as { state: string; imageId: string }[];
			assert.equal(items.length, ITEMS);
			assert.ok(items.every(item => item.state === "succeeded" || item.state === "duplicate"));
			assert.equal(new Set(items.map(item => item.imageId)).size, ITEMS, "one image per item");
			assert.equal((await alice.get("/api/images?limit=1")).body.total, ITEMS, "no second image for any item");
		});
	});
}
