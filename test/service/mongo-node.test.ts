/**
 * A real node on MongoDB and GridFS (FerretDB): the REST flow keeps nothing on the node's disk,
 * a second node with an empty DATA_DIR serves the same images and follows the same import jobs,
 * and MongoDB going away turns into 503s and a failing /api/ready until it is back.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MongoClient } from "mongodb";
import { Client, fileFrom } from "../helpers/client.ts";
import { type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { ImageHost } from "../helpers/image-host.ts";
import { waitFor } from "../helpers/jobs.ts";
import { ADMIN_PASSWORD, type RunningServer, SHARED_IMAGES, startServer } from "../helpers/server.ts";

describe("a node on MongoDB + GridFS (FerretDB)", { skip: ferretDbSkipReason() }, () => {
	let mongo: FerretDb;
	let mongoUrl: string;
	let env: Record<string, string>;
	let node: RunningServer;
	let alice: Client;

	before(async () => {
		mongo = await startFerretDb();
		mongoUrl = mongo.databaseUrl();
		// Shared secrets, as every node of a cluster has them: a second node must read the first one's data.
		env = {
			MONGO_URL: mongoUrl,
			STORAGE: "gridfs",
			MONGO_TIMEOUT_MS: "500",
			// The import test's web site is on loopback.
			IMPORT_ALLOW_PRIVATE_NETWORKS: "true",
			JWT_SECRET: randomBytes(32).toString("hex"),
			STORAGE_MASTER_KEY: randomBytes(32).toString("hex")
		};
		node = await startServer(env);
		alice = await new Client(node.url).register("alice");
	});
	after(async () => {
		await node?.stop();
		await mongo?.stop();
	});

	it("uploads, lists, searches, serves ranges and deletes, keeping nothing on the node's disk", async () => {
		const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));
		const plain = await alice.upload([dog], { description: "A harbour dog", visibility: "public" });
		assert.equal(plain.status, 201, JSON.stringify(plain.body));
		const secret = await alice.upload([dog], { name: "secret dog", encrypted: "true" });
		assert.equal(secret.status, 201, JSON.stringify(secret.body));
		const [plainId, secretId] = [plain.body.images[0].id, secret.body.images[0].id];

		const list = await alice.get("/api/images");
		assert.equal(list.body.total, 2);
		assert.deepEqual(list.body.items.map((image: { id: string }) => image.id), [secretId, plainId], "newest first");
		const found = await alice.get("/api/images?q=harb");
		assert.deepEqual(found.body.items.map((image: { id: string }) => image.id), [plainId]);

		for (const id of [plainId, secretId]) {
			const part = await alice.download(`/api/images/${id}/content`, { range: "bytes=70000-70099" });
			assert.equal(part.status, 206);
			assert.equal(part.headers.get("content-range"), `bytes 70000-70099/${dog.bytes.length}`);
			assert.deepEqual(part.bytes, Buffer.from(dog.bytes.subarray(70000, 70100)));
			assert.deepEqual((await alice.download(`/api/images/${id}/content`)).bytes, Buffer.from(dog.bytes));
		}

		assert.equal(existsSync(join(node.dataDir, "images.db")), false, "metadata is not in SQLite");
		assert.equal(existsSync(join(node.dataDir, "blobs")), false, "blobs are not on disk");
		const client = new MongoClient(mongoUrl);
		try {
			const images = await client.db().collection("images").find({}).toArray();
			assert.equal(images.length, 2);
			for (const image of images) {
				const blob = await client.db().collection("blobs").findOne({ _id: image.blob });
				assert.equal(blob?.encrypted, image._id === secretId, `the original of ${image._id} is in GridFS`);
			}
		} finally {
			await client.close();
		}

		assert.equal((await alice.delete(`/api/images/${secretId}`)).status, 204);
		assert.equal((await alice.download(`/api/images/${secretId}/content`)).status, 404);
		assert.equal((await alice.get("/api/images")).body.total, 1);
	});

	it("lets a second node with an empty DATA_DIR serve the same users and images", async () => {
		const second = await startServer(env);
		try {
			const admin = await new Client(second.url).login("admin", ADMIN_PASSWORD);
			const { body } = await admin.get("/api/images");
			assert.equal(body.total, 1);
			const bytes = await admin.download(`/api/images/${body.items[0].id}/content`);
			assert.deepEqual(bytes.bytes, readFileSync(join(SHARED_IMAGES, "dog.jpg")));
			assert.equal((await alice.withToken(alice.token).get("/api/auth/me")).status, 200);
		} finally {
			await second.stop();
		}
	});

	it("answers 503 while MongoDB is down and recovers by itself", async () => {
		await mongo.down();
		try {
			const ready = await alice.get("/api/ready");
			assert.equal(ready.status, 503);
			const failing = ready.body.checks.filter((check: { ok: boolean }) => !check.ok).map((check: { service: string }) => check.service);
			assert.deepEqual(failing.sort(), ["categories", "images", "storage", "users"]);
			const list = await alice.get("/api/images");
			assert.equal(list.status, 503);
			assert.equal(list.body.type, "SERVICE_UNAVAILABLE");
		} finally {
			await mongo.up();
		}
		assert.equal((await alice.get("/api/ready")).status, 200);
		assert.equal((await alice.get("/api/images")).body.total, 1);
	});

	// Last: it adds images the tests above do not expect.
	it("keeps import jobs in MongoDB: a second node with an empty DATA_DIR follows them to the end", async () => {
		const host = await new ImageHost().start();
		const second = await startServer(env);
		try {
			const urls = ["/img/dog.jpg", "/copy/dog.jpg", "/missing.jpg"].map(path => host.url + path);
			const created = await alice.post("/api/imports", { source: "urls", urls });
			assert.equal(created.status, 202, JSON.stringify(created.body));
			const elsewhere = new Client(second.url).withToken(alice.token);
			const job = await waitFor("the import to finish", async () => {
				const res = await elsewhere.get(`/api/imports/${created.body.job.id}`);
				assert.equal(res.status, 200, JSON.stringify(res.body));
				return res.body.finishedAt ? res.body : undefined;
			});
			assert.deepEqual(
				[job.status, job.total, job.processed, job.succeeded, job.duplicates, job.failed],
				["completed_with_errors", 3, 3, 1, 1, 1],
				"the same bytes from a second URL are a duplicate"
			);
			const failed = await elsewhere.get(`/api/imports/${job.id}/items?state=failed`);
			assert.deepEqual(failed.body.items.map((item: { key: string }) => item.key), [`${host.url}/missing.jpg`]);
		} finally {
			await second.stop();
			await host.stop();
		}
	});
});

// No server needed: the configuration is refused before anything connects.
describe("backend selection", () => {
	it("refuses to start with STORAGE=gridfs but no MONGO_URL, or an unknown STORAGE", async () => {
		await assert.rejects(startServer({ STORAGE: "gridfs" }), /STORAGE=gridfs keeps blobs in MongoDB: set MONGO_URL too/);
		await assert.rejects(startServer({ STORAGE: "tape", MONGO_URL: "mongodb://127.0.0.1:1/x" }), /STORAGE must be one of fs, gridfs, s3, got "tape"/);
	});
});
