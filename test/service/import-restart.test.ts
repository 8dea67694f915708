/**
 * An embedded node killed with SIGKILL in the middle of an import (issue 13, D4). Its in-memory
 * queue is gone with it; the leases it held were its own, so after a restart on the same
 * DATA_DIR the job resumes at once (not after IMPORT_LEASE_MS) and every item is counted exactly
 * once: an item whose image was stored just before the crash counts as succeeded, not as a
 * duplicate of itself.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client } from "../helpers/client.ts";
import { ImageHost } from "../helpers/image-host.ts";
import { waitFor } from "../helpers/jobs.ts";
import { startServer, type RunningServer } from "../helpers/server.ts";

const ITEMS = 160;
/** Far longer than the test's bound: only a resume that does not wait for leases can finish in time. */
const LEASE_MS = "300000";

describe("embedded import killed mid-job", () => {
	let host: ImageHost;
	let server: RunningServer | undefined;
	const env = { IMPORT_ALLOW_PRIVATE_NETWORKS: "true", IMPORT_CONCURRENCY: "4", IMPORT_LEASE_MS: LEASE_MS };

	before(async () => {
		host = await new ImageHost().start();
	});
	after(async () => {
		await server?.stop();
		await host.stop();
	});

	it("resumes at once after the restart and counts every item exactly once", async () => {
		server = await startServer(env);
		const alice = await new Client(server.url).register("alice");
		const urls = Array.from({ length: ITEMS }, (_, i) => `${host.url}/unique/restart-${i}.jpg`);
		const created = await alice.post("/api/imports", { source: "urls", urls });
		assert.equal(created.status, 202, JSON.stringify(created.body));
		const jobId = created.body.job.id;

		// Killed while items are stored: some are in the queue, some mid-download, some just stored.
		await waitFor("the import to be under way", async () => {
			const job = (await alice.get(`/api/imports/${jobId}`)).body;
			return job.processed >= 20 ? job : undefined;
		});
		server.process.kill("SIGKILL");
		await new Promise(resolve => server!.process.once("exit", resolve));

		server = await startServer(env, { dataDir: server.dataDir });
		const again = new Client(server.url, alice.token);
		const job = await waitFor(
			"the import to finish after the restart",
			async () => {
				const body = (await again.get(`/api/imports/${jobId}`)).body;
				return body.finishedAt ? body : undefined;
			},
			60_000
		);
		assert.equal(job.status, "completed", JSON.stringify(job));
		assert.deepEqual(
			{ total: job.total, processed: job.processed, succeeded: job.succeeded, duplicates: job.duplicates, failed: job.failed },
			{ total: ITEMS, processed: ITEMS, succeeded: ITEMS, duplicates: 0, failed: 0 }
		);
		const images = await again.get("/api/images?limit=1");
		assert.equal(images.body.total, ITEMS, "one image per distinct URL");
	});
});
