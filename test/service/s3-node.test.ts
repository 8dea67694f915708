/**
 * Real nodes with STORAGE=s3 on SeaweedFS. Embedded: the REST flow keeps every byte in the bucket
 * (none under DATA_DIR/blobs), its index beside the other SQLite metadata, and deleting the images
 * deletes their bytes from the bucket (cached variants stay until evicted): the bucket holds
 * exactly the objects the index points at. With MONGO_URL: the index is in MongoDB, so a second
 * node with an empty DATA_DIR serves and deletes what the first one stored.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { Client, fileFrom } from "../helpers/client.ts";
import { type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { settled, waitFor } from "../helpers/jobs.ts";
import { s3SkipReason, startS3, type TestS3 } from "../helpers/s3.ts";
import { type RunningServer, SHARED_IMAGES, startServer } from "../helpers/server.ts";

describe("a node on S3 (SeaweedFS)", { skip: s3SkipReason() }, () => {
	let s3: TestS3;
	let client: S3Client;
	let prefix: string;
	let node: RunningServer;
	let alice: Client;

	const objectNames = async () => ((await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }))).Contents ?? []).map(item => item.Key!);
	const objectCount = async () => (await objectNames()).length;
	/** The node's S3 index, read as it stands. */
	const indexedObjects = () => {
		const db = new DatabaseSync(join(node.dataDir, "s3-index.db"), { readOnly: true });
		try {
			const rows = db.prepare("SELECT key, object FROM s3_blobs").all() as { key: string; object: string }[];
			return { keys: rows.map(row => row.key), objects: rows.map(row => row.object) };
		} finally {
			db.close();
		}
	};
	const sameMembers = (a: string[], b: string[]) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

	before(async () => {
		s3 = await startS3();
		client = s3.client();
		const location = s3.location();
		prefix = location.prefix;
		node = await startServer(s3.nodeEnv(location));
		alice = await new Client(node.url).register("alice");
	});
	after(async () => {
		await node?.stop();
		client?.destroy();
		await s3?.stop();
	});

	it("uploads, processes, serves whole and ranged, transforms and deletes, with every byte in the bucket", async () => {
		const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));
		const plain = await alice.upload([dog], { visibility: "public" });
		assert.equal(plain.status, 201, JSON.stringify(plain.body));
		const secret = await alice.upload([dog], { name: "secret dog", encrypted: "true" });
		assert.equal(secret.status, 201, JSON.stringify(secret.body));
		const ids = [plain.body.images[0].id, secret.body.images[0].id];
		for (const id of ids) assert.equal((await settled(alice, id)).status, "ready");
		const stored = await objectCount();
		assert.ok(stored >= 4, `originals and renditions in the bucket: ${stored} objects`);

		for (const id of ids) {
			const part = await alice.download(`/api/images/${id}/content`, { range: "bytes=70000-70099" });
			assert.equal(part.status, 206);
			assert.deepEqual(part.bytes, Buffer.from(dog.bytes.subarray(70000, 70100)));
			assert.deepEqual((await alice.download(`/api/images/${id}/content`)).bytes, Buffer.from(dog.bytes));
			const thumbnail = await alice.download(`/api/images/${id}/thumbnail`);
			assert.equal(thumbnail.status, 200);
			const webp = await alice.download(`/api/images/${id}/content?w=100&format=webp`);
			assert.equal(webp.status, 200);
			assert.equal(webp.headers.get("content-type"), "image/webp");
		}
		assert.equal(existsSync(join(node.dataDir, "blobs")), false, "no blob on the node's disk");
		assert.equal(existsSync(join(node.dataDir, "s3-index.db")), true, "the index beside the metadata");

		for (const id of ids) {
			assert.equal((await alice.delete(`/api/images/${id}`)).status, 204);
			assert.equal((await alice.delete(`/api/trash/${id}`)).status, 204, "purged: its bytes go");
		}
		const original = `sha256-${createHash("sha256").update(dog.bytes).digest("hex")}`;
		await waitFor("the plain original to leave the index and the bucket", async () => {
			const indexed = indexedObjects();
			return !indexed.keys.includes(original) && sameMembers(await objectNames(), indexed.objects) ? true : undefined;
		});
	});
});

describe("nodes on S3 (SeaweedFS) with the index in MongoDB (FerretDB)", { skip: s3SkipReason() || ferretDbSkipReason() }, () => {
	let s3: TestS3;
	let mongo: FerretDb;
	let env: Record<string, string>;

	before(async () => {
		[s3, mongo] = await Promise.all([startS3(), startFerretDb()]);
		// Shared secrets, as every node of a cluster has them: the second node must read the first one's data.
		env = {
			...s3.nodeEnv(s3.location()),
			MONGO_URL: mongo.databaseUrl(),
			JWT_SECRET: randomBytes(32).toString("hex"),
			STORAGE_MASTER_KEY: randomBytes(32).toString("hex")
		};
	});
	after(async () => {
		await Promise.all([s3?.stop(), mongo?.stop()]);
	});

	it("stores on one node, serves and deletes on another with an empty DATA_DIR", async () => {
		const first = await startServer(env);
		let second: RunningServer | undefined;
		try {
			const alice = await new Client(first.url).register("alice");
			const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));
			const secret = await alice.upload([dog], { name: "secret dog", encrypted: "true" });
			assert.equal(secret.status, 201, JSON.stringify(secret.body));
			const id = secret.body.images[0].id;
			assert.equal((await settled(alice, id)).status, "ready");
			assert.equal(existsSync(join(first.dataDir, "s3-index.db")), false, "the index is in MongoDB");

			second = await startServer(env);
			const elsewhere = new Client(second.url).withToken(alice.token);
			assert.deepEqual((await elsewhere.download(`/api/images/${id}/content`)).bytes, Buffer.from(dog.bytes));
			const part = await elsewhere.download(`/api/images/${id}/content`, { range: "bytes=1000-1999" });
			assert.deepEqual(part.bytes, Buffer.from(dog.bytes.subarray(1000, 2000)));
			assert.equal((await elsewhere.delete(`/api/images/${id}`)).status, 204);
			assert.equal((await alice.download(`/api/images/${id}/content`)).status, 404);
		} finally {
			await second?.stop();
			await first.stop();
		}
	});
});
