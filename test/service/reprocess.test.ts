/**
 * Reprocessing for people: POST /api/images/:id/reprocess (owner or admin; others get 404 as for
 * any image they cannot manage) and the admin's POST /api/admin/images/reprocess-failed, on an
 * embedded node. Also the admin job endpoints' answers there: embedded mode has no streams.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "../helpers/client.ts";
import { blobFileCount, poisonJpeg, settled } from "../helpers/jobs.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

describe("reprocessing", () => {
	let server: RunningServer;
	let alice: Client;
	let bob: Client;
	let admin: Client;
	const dog = readFileSync(join(SHARED_IMAGES, "dog.jpg"));

	async function uploaded(client: Client, bytes: Buffer, name: string): Promise<string> {
		const res = await client.upload([{ name, bytes }]);
		assert.equal(res.status, 201, JSON.stringify(res.body));
		return res.body.images[0].id;
	}

	before(async () => {
		server = await startServer();
		const anonymous = new Client(server.url);
		alice = await anonymous.register("alice");
		bob = await anonymous.register("bob");
		admin = await anonymous.login("admin", ADMIN_PASSWORD);
	});
	after(() => server.stop());

	it("lets the owner and admins run an image through the pipeline again; others and unknown ids get 404", async () => {
		const id = await uploaded(alice, dog, "dog.jpg");
		const first = await settled(alice, id);
		assert.equal(first.status, "ready");
		const blobs = blobFileCount(server.dataDir);

		const again = await alice.post(`/api/images/${id}/reprocess`);
		assert.equal(again.status, 202, JSON.stringify(again.body));
		assert.equal(again.body.id, id);
		assert.equal(again.body.status, "processing");
		const ready = await settled(alice, id);
		assert.equal(ready.status, "ready");
		assert.deepEqual(ready.renditions, first.renditions, "the same renditions again");
		assert.equal(blobFileCount(server.dataDir), blobs, "no second set of renditions left behind");

		assert.equal((await bob.post(`/api/images/${id}/reprocess`)).status, 404, "another user's image is not there to reprocess");
		assert.equal((await new Client(server.url).post(`/api/images/${id}/reprocess`)).status, 401);
		assert.equal((await alice.post(`/api/images/unknown-image-id/reprocess`)).status, 404);

		const byAdmin = await admin.post(`/api/images/${id}/reprocess`);
		assert.equal(byAdmin.status, 202, JSON.stringify(byAdmin.body));
		assert.equal((await settled(alice, id)).status, "ready");
	});

	it("is harmless twice in a row: the second is refused with 409 while the first runs, and the image ends ready once", async () => {
		const id = await uploaded(alice, dog, "dog-twice.jpg");
		await settled(alice, id);
		const blobs = blobFileCount(server.dataDir);
		const [first, second] = [await alice.post(`/api/images/${id}/reprocess`), await alice.post(`/api/images/${id}/reprocess`)];
		assert.equal(first.status, 202);
		// The second request finds the image processing (409), or, on a fast machine, already done again (202).
		assert.ok(second.status === 409 || second.status === 202, JSON.stringify(second.body));
		if (second.status === 409) assert.equal(second.body.type, "ALREADY_PROCESSING");
		const ready = await settled(alice, id);
		assert.equal(ready.status, "ready");
		assert.equal(ready.renditions.length, 2);
		assert.equal(blobFileCount(server.dataDir), blobs, "no rendition stored twice");
	});

	it("reprocesses every failed image for an admin, and answers how many were queued", async () => {
		const broken = await uploaded(alice, poisonJpeg(dog), "broken.jpg");
		const brokenToo = await uploaded(bob, poisonJpeg(dog), "broken-too.jpg");
		assert.equal((await settled(alice, broken)).status, "failed");
		assert.equal((await settled(bob, brokenToo)).status, "failed");

		const refused = await alice.post("/api/admin/images/reprocess-failed");
		assert.equal(refused.status, 403, JSON.stringify(refused.body));
		assert.equal(refused.body.type, "ADMIN_ONLY");

		const bulk = await admin.post("/api/admin/images/reprocess-failed");
		assert.equal(bulk.status, 200, JSON.stringify(bulk.body));
		assert.deepEqual(bulk.body, { queued: 2 });
		// A poison image fails again: what matters is that it went through the pipeline again.
		assert.equal((await settled(alice, broken)).status, "failed");
		assert.equal((await settled(bob, brokenToo)).status, "failed");
	});

	it("answers the admin job endpoints honestly in embedded mode: no streams, no dead letters", async () => {
		assert.equal((await alice.get("/api/admin/jobs")).status, 403);
		const overview = await admin.get("/api/admin/jobs");
		assert.equal(overview.status, 200, JSON.stringify(overview.body));
		assert.deepEqual(overview.body, { mode: "embedded", channels: [], deadLetters: 0 });
		assert.deepEqual((await admin.get("/api/admin/jobs/dead")).body, { mode: "embedded", total: 0, items: [] });
		const retry = await admin.post("/api/admin/jobs/dead/1-0/retry");
		assert.equal(retry.status, 404, JSON.stringify(retry.body));
		assert.equal(retry.body.type, "NOT_FOUND");
		assert.equal((await admin.delete("/api/admin/jobs/dead/1-0")).status, 404);
		assert.equal((await admin.delete("/api/admin/jobs/dead/not-an-id")).status, 400);
	});
});
