/** The BlobStore contract against GridFS on FerretDB, plus what only GridFS has. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { after, before, describe, it } from "node:test";
import { type Binary, MongoClient, ObjectId } from "mongodb";
import { Keyring } from "../../models/storage/envelope-crypto.ts";
import { IntegrityError } from "../../models/shared/errors.ts";
import { GridFsBlobStore } from "../../models/storage/gridfs-blob-store.ts";
import { blobStoreContract } from "./blob-store.contract.ts";
import { type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";

const TIMEOUT_MS = 2000;

/** A GridFS chunk as the store writes it. */
type Chunk = { _id: string; files_id: ObjectId; n: number; data: Buffer };
const LIMIT = 16 * 1024 * 1024;

/** Direct access to a store's database, to look at and damage what it wrote. */
async function withDatabase<T>(url: string, work: (client: MongoClient) => Promise<T>): Promise<T> {
	const client = new MongoClient(url);
	try {
		return await work(client);
	} finally {
		await client.close();
	}
}

/** Rewrites the GridFS chunk of blob `key` that holds stored byte `offset`, behind the store's back. */
function editChunk(url: string, key: string, offset: number, edit: (data: Buffer, at: number) => Buffer): Promise<void> {
	return withDatabase(url, async client => {
		const db = client.db();
		const blob = await db.collection<{ _id: string; fileId: ObjectId }>("blobs").findOne({ _id: key });
		const file = await db.collection("blobdata.files").findOne({ _id: blob!.fileId });
		const n = Math.floor(offset / file!.chunkSize);
		const chunk = await db.collection<Chunk>("blobdata.chunks").findOne({ files_id: blob!.fileId, n });
		const data = edit(Buffer.from((chunk!.data as unknown as Binary).buffer), offset - n * file!.chunkSize);
		await db.collection<Chunk>("blobdata.chunks").updateOne({ _id: chunk!._id }, { $set: { data } });
	});
}

/** The length of blob `key`'s GridFS file. */
function fileLength(url: string, key: string): Promise<number> {
	return withDatabase(url, async client => {
		const blob = await client.db().collection<{ _id: string; fileId: ObjectId }>("blobs").findOne({ _id: key });
		return (await client.db().collection("blobdata.files").findOne({ _id: blob!.fileId }))!.length as number;
	});
}

/** GridFS files plus chunks that belong to no file (an upload that was not cleaned up). */
function storedObjectCount(url: string): Promise<number> {
	return withDatabase(url, async client => {
		const files = await client.db().collection("blobdata.files").distinct("_id");
		const chunkOwners: ObjectId[] = await client.db().collection("blobdata.chunks").distinct("files_id");
		const fileIds = new Set(files.map(String));
		return fileIds.size + chunkOwners.filter(id => !fileIds.has(String(id))).length;
	});
}

describe("GridFS blob store (FerretDB)", { skip: ferretDbSkipReason() }, () => {
	let server: FerretDb;
	before(async () => {
		server = await startFerretDb();
	});
	after(() => server.stop());

	const open = (url: string, keyring: Keyring) => new GridFsBlobStore({ url, timeoutMs: TIMEOUT_MS, keyring });

	blobStoreContract("GridFsBlobStore", async () => {
		const url = server.databaseUrl();
		const store = open(url, new Keyring(randomBytes(32)));
		return {
			store,
			storedObjectCount: () => storedObjectCount(url),
			corrupt: (key, offset) =>
				editChunk(url, key, offset, (data, at) => {
					data[at]! ^= 0x01;
					return data;
				}),
			lose: key =>
				withDatabase(url, async client => {
					const blob = await client.db().collection<{ _id: string; fileId: ObjectId }>("blobs").findOne({ _id: key });
					await client.db().collection("blobdata.chunks").deleteMany({ files_id: blob!.fileId });
				}),
			truncate: async key => editChunk(url, key, (await fileLength(url, key)) - 1, (data, at) => data.subarray(0, at)),
			async cleanup() {
				await store.close();
				await withDatabase(url, client => client.db().dropDatabase());
			}
		};
	});

	it("keeps the envelope header out of the chunks and re-wraps it without touching them", async () => {
		const url = server.databaseUrl();
		const oldKey = randomBytes(32);
		const bytes = randomBytes(300 * 1024);
		const first = open(url, new Keyring(oldKey));
		const { key } = await first.put(Readable.from([bytes]), { encrypt: true, ref: "image-1", maxBytes: LIMIT });
		await first.close();
		const chunks = () => withDatabase(url, client => client.db().collection("blobdata.chunks").find({}).sort({ n: 1 }).toArray());
		const before = await chunks();
		assert.equal(Buffer.from(before[0]!.data.buffer).subarray(0, 85).equals(Buffer.alloc(85)), true, "the header slot stays zero");
		assert.equal(before.some(chunk => Buffer.from(chunk.data.buffer).includes(bytes.subarray(0, 32))), false, "no plaintext stored");

		const rotated = open(url, new Keyring(randomBytes(32), [oldKey]));
		try {
			assert.deepEqual(await rotated.rewrapAll(), { rewrapped: 1, failed: [] });
			assert.deepEqual(await rotated.rewrapAll(), { rewrapped: 0, failed: [] }, "a second run has nothing left to do");
			assert.deepEqual(await chunks(), before);
			assert.deepEqual(await buffer(await rotated.open(key, { start: 1000, end: 200_000 })), bytes.subarray(1000, 200_001));
		} finally {
			await rotated.close();
		}
	});

	it("fails a tampered or truncated encrypted blob with IntegrityError", async () => {
		const url = server.databaseUrl();
		const store = open(url, new Keyring(randomBytes(32)));
		try {
			const bytes = randomBytes(200 * 1024);
			const tampered = await store.put(Readable.from([bytes]), { encrypt: true, ref: "a", maxBytes: LIMIT });
			await withDatabase(url, async client => {
				const chunk = await client.db().collection("blobdata.chunks").findOne({ n: 0 });
				const data = Buffer.from(chunk!.data.buffer);
				data[1000]! ^= 1;
				await client.db().collection("blobdata.chunks").updateOne({ _id: chunk!._id }, { $set: { data } });
			});
			await assert.rejects(buffer(await store.open(tampered.key)), IntegrityError);

			const truncated = await store.put(Readable.from([bytes]), { encrypt: true, ref: "b", maxBytes: LIMIT });
			await withDatabase(url, client => client.db().collection("blobdata.files").updateMany({}, { $inc: { length: -1 } }));
			await assert.rejects(store.open(truncated.key), IntegrityError);
		} finally {
			await store.close();
		}
	});

	it("gives the references of blobs stored before references had times the time of the first start after", async () => {
		const url = server.databaseUrl();
		const keyring = new Keyring(randomBytes(32));
		const first = open(url, keyring);
		const { key } = await first.put(Readable.from([randomBytes(1000)]), { encrypt: false, ref: "image-1", maxBytes: LIMIT });
		await first.put(Readable.from([randomBytes(1000)]), { encrypt: false, ref: "image.with.dots", maxBytes: LIMIT });
		await first.close();
		// As an older version stored it: no refTimes.
		await withDatabase(url, client => client.db().collection("blobs").updateMany({}, { $unset: { refTimes: "" } }));

		const beforeStart = new Date(Date.now() - 1);
		const reopened = open(url, keyring);
		try {
			assert.equal(await reopened.ping(), true, "stamped before the first call");
			const { refs } = await reopened.listRefs({ olderThan: new Date(Date.now() + 60_000), limit: 10 });
			assert.deepEqual(refs.map(entry => entry.ref).sort(), ["image-1", "image.with.dots"]);
			for (const entry of refs) assert.ok(entry.addedAt >= beforeStart, "not older than the start: the grace period starts there");
			assert.deepEqual(await reopened.releaseStale(key, "image-1", new Date(Date.now() + 60_000)), { released: true, deleted: true });
		} finally {
			await reopened.close();
		}
	});

	it("sweeps away at start what a node that died mid-upload left, once it is old enough", async () => {
		const url = server.databaseUrl();
		const keyring = new Keyring(randomBytes(32));
		const first = open(url, keyring);
		const bytes = randomBytes(1000);
		const { key } = await first.put(Readable.from([bytes]), { encrypt: false, ref: "image-1", maxBytes: LIMIT });
		await first.close();
		const hoursAgo = (hours: number) => ObjectId.createFromTime(Math.floor(Date.now() / 1000) - hours * 3600);
		const leftovers = { oldFile: hoursAgo(2), oldChunksOnly: hoursAgo(3), recentFile: new ObjectId() };
		await withDatabase(url, async client => {
			const db = client.db();
			for (const [name, id] of Object.entries(leftovers)) {
				if (name !== "oldChunksOnly") await db.collection("blobdata.files").insertOne({ _id: id, length: 3, chunkSize: 261120, uploadDate: new Date(), filename: id.toHexString() });
				await db.collection<Chunk>("blobdata.chunks").insertOne({ _id: `${id.toHexString()}-0`, files_id: id, n: 0, data: Buffer.from("abc") });
			}
			// The stored blob's file made old too: an old file is kept while a blob points at it.
			const blob = await db.collection<{ _id: string; fileId: ObjectId }>("blobs").findOne({ _id: key });
			const chunks = await db.collection("blobdata.chunks").find({ files_id: blob!.fileId }).toArray();
			const file = await db.collection("blobdata.files").findOne({ _id: blob!.fileId });
			const oldId = hoursAgo(5);
			await db.collection("blobdata.files").insertOne({ ...file!, _id: oldId });
			await db.collection<Chunk>("blobdata.chunks").insertMany(chunks.map(chunk => ({ ...(chunk as unknown as Chunk), _id: `${oldId.toHexString()}-${chunk.n}`, files_id: oldId })));
			await db.collection<{ _id: string; fileId: ObjectId }>("blobs").updateOne({ _id: key }, { $set: { fileId: oldId } });
		});
		assert.equal(await storedObjectCount(url), 5, "two copies of the blob's file and three leftovers");

		const reopened = open(url, keyring);
		try {
			assert.equal(await reopened.ping(), true, "the sweep runs before the first call");
			const fileIds = await withDatabase(url, async client => (await client.db().collection("blobdata.chunks").distinct("files_id")).map(String));
			assert.equal(fileIds.includes(String(leftovers.oldFile)), false);
			assert.equal(fileIds.includes(String(leftovers.oldChunksOnly)), false);
			assert.equal(fileIds.includes(String(leftovers.recentFile)), true, "maybe an upload still under way");
			assert.deepEqual(await buffer(await reopened.open(key)), bytes);
			assert.equal(await storedObjectCount(url), 3, "the blob's old file, its unused young copy and the recent leftover");
		} finally {
			await reopened.close();
		}
	});
});
