/** The BlobStore contract against GridFS on FerretDB, plus what only GridFS has. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { after, before, describe, it } from "node:test";
import { MongoClient, type ObjectId } from "mongodb";
import { Keyring } from "../models/envelope-crypto.ts";
import { IntegrityError } from "../models/errors.ts";
import { GridFsBlobStore } from "../models/gridfs-blob-store.ts";
import { blobStoreContract } from "./blob-store-contract.ts";
import { type FerretDb, ferretDbSkipReason, startFerretDb } from "./helpers/ferretdb.ts";

const TIMEOUT_MS = 2000;
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
});
