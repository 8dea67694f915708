/**
 * The BlobStore contract against a real S3-compatible server (SeaweedFS), with the index in SQLite
 * (embedded mode) and in MongoDB on FerretDB (distributed mode), plus what only S3 has.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { after, before, describe, it } from "node:test";
import {
	CreateMultipartUploadCommand,
	DeleteObjectCommand,
	GetObjectCommand,
	ListMultipartUploadsCommand,
	ListObjectsV2Command,
	PutObjectCommand,
	type S3Client,
	UploadPartCommand
} from "@aws-sdk/client-s3";
import { MongoClient } from "mongodb";
import { HEADER_SIZE, Keyring } from "../../models/storage/envelope-crypto.ts";
import { PayloadTooLargeError, UnavailableError } from "../../models/shared/errors.ts";
import type { S3BlobIndex } from "../../models/storage/s3-blob-index.ts";
import { S3BlobStore, type S3Location } from "../../models/storage/s3-blob-store.ts";
import { MongoS3BlobIndex } from "../../models/storage/s3-mongo-index.ts";
import { SqliteS3BlobIndex } from "../../models/storage/s3-sqlite-index.ts";
import { blobStoreContract } from "./blob-store.contract.ts";
import { dropDatabase, type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { s3SkipReason, startS3, type TestS3 } from "../helpers/s3.ts";
import { freePort, startCommand } from "../helpers/server.ts";

const run = promisify(execFile);
const LIMIT = 64 * 1024 * 1024;
/** Over the store's multipart part size (5 MiB): such an upload goes in parts. */
const MULTIPART_BYTES = 9 * 1024 * 1024;

/** An index and how to dispose of it once its store is closed. */
interface TestIndex {
	index: S3BlobIndex;
	drop(): Promise<void>;
}

/** A SQLite index file in a temp dir, for stores opened one after the other. */
function indexFile(): { file: string; drop(): Promise<void> } {
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-s3-index-"));
	return { file: join(dir, "s3-index.db"), drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

function sqliteIndex(): TestIndex {
	const { file, drop } = indexFile();
	return { index: new SqliteS3BlobIndex(file), drop };
}

/** Names of the objects under `location`'s prefix, with their ETags. */
async function objectsUnder(client: S3Client, location: S3Location): Promise<Map<string, string>> {
	const listed = await client.send(new ListObjectsV2Command({ Bucket: location.bucket, Prefix: location.prefix }));
	return new Map((listed.Contents ?? []).map(item => [item.Key!, item.ETag!]));
}

async function uploadsUnder(client: S3Client, location: S3Location): Promise<number> {
	const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: location.bucket, Prefix: location.prefix }));
	return listed.Uploads?.length ?? 0;
}

async function objectBytes(client: S3Client, bucket: string, object: string): Promise<Buffer> {
	const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: object }));
	return buffer(answer.Body as Readable);
}

/** Rewrites blob `key`'s object, behind the store's back. */
async function editObject(client: S3Client, index: S3BlobIndex, bucket: string, key: string, edit: (bytes: Buffer) => Buffer): Promise<void> {
	const { object } = (await index.find(key))!;
	const bytes = edit(await objectBytes(client, bucket, object));
	await client.send(new PutObjectCommand({ Bucket: bucket, Key: object, Body: bytes }));
}

/** A source that delivers `size` random bytes in 1 MiB pieces, then fails with `error`. */
function failingAfter(size: number, error: Error): Readable {
	return Readable.from(
		(async function* () {
			for (let sent = 0; sent < size; sent += 1024 * 1024) yield randomBytes(Math.min(1024 * 1024, size - sent));
			throw error;
		})()
	);
}

describe("S3 blob store (SeaweedFS)", { skip: s3SkipReason() }, () => {
	let s3: TestS3;
	let client: S3Client;
	before(async () => {
		s3 = await startS3();
		client = s3.client();
	});
	after(async () => {
		client?.destroy();
		await s3?.stop();
	});

	const open = (location: S3Location, index: S3BlobIndex, keyring: Keyring, orphanAgeMs?: number) =>
		new S3BlobStore({ ...location, keyring, index, ...(orphanAgeMs === undefined ? {} : { orphanAgeMs }) });

	/** The contract with the index `makeIndex` makes: a fresh prefix and index for every test. */
	function contractWith(name: string, makeIndex: () => TestIndex): void {
		blobStoreContract(name, async () => {
			const location = s3.location();
			const { index, drop } = makeIndex();
			const store = open(location, index, new Keyring(randomBytes(32)));
			const edit = (key: string, change: (bytes: Buffer) => Buffer) => editObject(client, index, location.bucket, key, change);
			return {
				store,
				storedObjectCount: async () => (await objectsUnder(client, location)).size + (await uploadsUnder(client, location)),
				corrupt: (key, offset) =>
					edit(key, bytes => {
						bytes[offset]! ^= 0x01;
						return bytes;
					}),
				truncate: key => edit(key, bytes => bytes.subarray(0, bytes.length - 1)),
				lose: async key => {
					await client.send(new DeleteObjectCommand({ Bucket: location.bucket, Key: (await index.find(key))!.object }));
				},
				async cleanup() {
					await store.close();
					for (const object of (await objectsUnder(client, location)).keys()) await client.send(new DeleteObjectCommand({ Bucket: location.bucket, Key: object }));
					await drop();
				}
			};
		});
	}

	contractWith("S3BlobStore, SQLite index", sqliteIndex);

	describe("with the index in MongoDB (FerretDB)", { skip: ferretDbSkipReason() }, () => {
		let mongo: FerretDb;
		before(async () => {
			mongo = await startFerretDb();
		});
		after(() => mongo?.stop());
		contractWith("S3BlobStore, MongoDB index", () => {
			const url = mongo.databaseUrl();
			return { index: new MongoS3BlobIndex({ url, timeoutMs: 2000 }), drop: () => dropDatabase(url) };
		});

		it("gives the references of s3blobs documents stored before references had times the time of the first start after", async () => {
			const location = s3.location();
			const url = mongo.databaseUrl();
			const keyring = new Keyring(randomBytes(32));
			const first = open(location, new MongoS3BlobIndex({ url, timeoutMs: 2000 }), keyring);
			const { key } = await first.put(Readable.from([randomBytes(1000)]), { encrypt: false, ref: "image-1", maxBytes: LIMIT });
			await first.put(Readable.from([randomBytes(1000)]), { encrypt: false, ref: "image.with.dots", maxBytes: LIMIT });
			await first.close();
			// As an older version stored them: no refTimes.
			const direct = new MongoClient(url);
			await direct.db().collection("s3blobs").updateMany({}, { $unset: { refTimes: "" } });
			await direct.close();

			const beforeStart = new Date(Date.now() - 1);
			const reopened = open(location, new MongoS3BlobIndex({ url, timeoutMs: 2000 }), keyring);
			try {
				assert.equal(await reopened.ping(), true, "stamped before the first call");
				const { refs } = await reopened.listRefs({ olderThan: new Date(Date.now() + 60_000), limit: 10 });
				assert.deepEqual(refs.map(entry => entry.ref).sort(), ["image-1", "image.with.dots"]);
				for (const entry of refs) assert.ok(entry.addedAt >= beforeStart, "not older than the start: the grace period starts there");
				assert.deepEqual(await reopened.releaseStale(key, "image-1", new Date(Date.now() + 60_000)), { released: true, deleted: true });
			} finally {
				await reopened.close();
				await dropDatabase(url);
			}
		});
	});

	it("keeps no plaintext and no header in the bucket, and rotates the master key without touching an object", async () => {
		const location = s3.location();
		const { file, drop } = indexFile();
		const oldKey = randomBytes(32);
		const bytes = randomBytes(300 * 1024);
		const first = open(location, new SqliteS3BlobIndex(file), new Keyring(oldKey));
		const { key } = await first.put(Readable.from([bytes]), { encrypt: true, ref: "image-1", maxBytes: LIMIT });
		await first.close();
		const before = await objectsUnder(client, location);
		const stored = await objectBytes(client, location.bucket, [...before.keys()][0]!);
		assert.equal(stored.subarray(0, HEADER_SIZE).equals(Buffer.alloc(HEADER_SIZE)), true, "the header slot stays zero");
		assert.equal(stored.includes(bytes.subarray(0, 32)), false, "no plaintext stored");

		const rotated = open(location, new SqliteS3BlobIndex(file), new Keyring(randomBytes(32), [oldKey]));
		try {
			assert.deepEqual(await rotated.rewrapAll(), { rewrapped: 1, failed: [] });
			assert.deepEqual(await rotated.rewrapAll(), { rewrapped: 0, failed: [] }, "a second run has nothing left to do");
			assert.deepEqual(await objectsUnder(client, location), before, "the same objects, unchanged");
			assert.deepEqual(await buffer(await rotated.open(key, { start: 1000, end: 200_000 })), bytes.subarray(1000, 200_001));
		} finally {
			await rotated.close();
			await drop();
		}
	});

	it("stores every size around the 5 MiB part boundaries byte for byte, whatever the pieces it comes in", async () => {
		const part = 5 * 1024 * 1024;
		const location = s3.location();
		const { index, drop } = sqliteIndex();
		const store = open(location, index, new Keyring(randomBytes(32)));
		try {
			// One PUT (empty, exactly one part), then multipart: one byte over, two full parts, three and a bit.
			for (const size of [0, part, part + 1, 2 * part, 3 * part + 7]) {
				const bytes = randomBytes(size);
				// Pieces that straddle every part boundary.
				const pieces = Array.from({ length: Math.ceil(size / 1_000_003) }, (_, i) => bytes.subarray(i * 1_000_003, (i + 1) * 1_000_003));
				const blob = await store.put(Readable.from(pieces), { encrypt: false, ref: "a", maxBytes: LIMIT });
				assert.equal(blob.size, size);
				assert.ok((await buffer(await store.open(blob.key))).equals(bytes), `${size} bytes read back`);
				await store.release(blob.key, "a");
			}
			assert.equal(await uploadsUnder(client, location), 0, "every multipart upload completed");
		} finally {
			await store.close();
			await drop();
		}
	});

	it("aborts the multipart upload of a source that fails, or of one past maxBytes, leaving nothing", async () => {
		const location = s3.location();
		const { index, drop } = sqliteIndex();
		const store = open(location, index, new Keyring(randomBytes(32)));
		try {
			for (const encrypt of [false, true]) {
				const boom = new Error("client went away");
				await assert.rejects(store.put(failingAfter(MULTIPART_BYTES + 1024, boom), { encrypt, ref: "a", maxBytes: LIMIT }), error => error === boom);
				await assert.rejects(store.put(failingAfter(MULTIPART_BYTES + 1024, boom), { encrypt, ref: "a", maxBytes: MULTIPART_BYTES }), PayloadTooLargeError);
				assert.equal((await objectsUnder(client, location)).size, 0);
				assert.equal(await uploadsUnder(client, location), 0);
			}
			const big = randomBytes(2 * MULTIPART_BYTES);
			const blob = await store.put(Readable.from([big]), { encrypt: true, ref: "a", maxBytes: LIMIT });
			assert.deepEqual(await buffer(await store.open(blob.key, { start: MULTIPART_BYTES - 5, end: MULTIPART_BYTES + 5 })), big.subarray(MULTIPART_BYTES - 5, MULTIPART_BYTES + 6));
			assert.deepEqual(await buffer(await store.open(blob.key)), big);
		} finally {
			await store.close();
			await drop();
		}
	});

	it("sweeps away at start the unfinished uploads and unreferenced objects a dead node left", async () => {
		const location = s3.location();
		const { file, drop } = indexFile();
		const keyring = new Keyring(randomBytes(32));
		const first = open(location, new SqliteS3BlobIndex(file), keyring);
		const bytes = randomBytes(1000);
		const { key } = await first.put(Readable.from([bytes]), { encrypt: false, ref: "image-1", maxBytes: LIMIT });
		await first.close();
		const [stored] = (await objectsUnder(client, location)).keys();
		const orphan = `${location.prefix}objects/${"a".repeat(32)}`;
		await client.send(new PutObjectCommand({ Bucket: location.bucket, Key: orphan, Body: Buffer.from("left behind") }));
		const unfinished = `${location.prefix}objects/${"b".repeat(32)}`;
		const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: location.bucket, Key: unfinished }));
		await client.send(new UploadPartCommand({ Bucket: location.bucket, Key: unfinished, UploadId, PartNumber: 1, Body: randomBytes(1024) }));
		// Not the store's objects: outside its objects/ folder, never swept.
		const foreign = `${location.prefix}other/${"c".repeat(32)}`;
		await client.send(new PutObjectCommand({ Bucket: location.bucket, Key: foreign, Body: Buffer.from("someone else's") }));

		const young = open(location, new SqliteS3BlobIndex(file), keyring);
		await young.close();
		assert.equal((await objectsUnder(client, location)).size, 3, "younger than an hour: maybe an upload still under way");
		assert.equal(await uploadsUnder(client, location), 1);

		// A store that takes everything for old enough, as one started an hour later would.
		const later = open(location, new SqliteS3BlobIndex(file), keyring, 0);
		try {
			await later.ping();
			assert.deepEqual(await buffer(await later.open(key)), bytes);
		} finally {
			await later.close();
		}
		assert.deepEqual([...(await objectsUnder(client, location)).keys()].sort(), [stored!, foreign].sort(), "the blob's object and the foreign one stay");
		assert.equal(await uploadsUnder(client, location), 0, "the unfinished upload is aborted");
		await drop();
	});

	it("sweeps unfinished uploads and unreferenced objects begun before the collector's cutoff while it serves", async () => {
		const location = s3.location();
		const { index, drop } = sqliteIndex();
		const store = open(location, index, new Keyring(randomBytes(32)));
		try {
			const bytes = randomBytes(1000);
			const { key } = await store.put(Readable.from([bytes]), { encrypt: false, ref: "image-1", maxBytes: LIMIT });
			const [stored] = (await objectsUnder(client, location)).keys();
			await client.send(new PutObjectCommand({ Bucket: location.bucket, Key: `${location.prefix}objects/${"a".repeat(32)}`, Body: Buffer.from("left behind") }));
			const unfinished = `${location.prefix}objects/${"b".repeat(32)}`;
			const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: location.bucket, Key: unfinished }));
			await client.send(new UploadPartCommand({ Bucket: location.bucket, Key: unfinished, UploadId, PartNumber: 1, Body: randomBytes(1024) }));

			assert.equal(await store.sweepUnfinished(new Date(Date.now() - 3600_000)), 0, "begun after the cutoff: maybe under way");
			assert.equal((await objectsUnder(client, location)).size, 2);
			// S3 times are whole seconds: a cutoff a second ahead is past everything made above.
			assert.equal(await store.sweepUnfinished(new Date(Date.now() + 1000)), 2, "the orphan object and the unfinished upload");
			assert.deepEqual([...(await objectsUnder(client, location)).keys()], [stored]);
			assert.equal(await uploadsUnder(client, location), 0);
			assert.deepEqual(await buffer(await store.open(key)), bytes);
		} finally {
			await store.close();
			await drop();
		}
	});

	it("gives the references of a SQLite index made before references had times the time of the upgrade", async () => {
		const location = s3.location();
		const { file, drop } = indexFile();
		const keyring = new Keyring(randomBytes(32));
		const first = open(location, new SqliteS3BlobIndex(file), keyring);
		const blob = await first.put(Readable.from([randomBytes(100)]), { encrypt: false, ref: "image-1", maxBytes: LIMIT });
		await first.close();
		// The index as the previous schema version left it.
		const db = new DatabaseSync(file);
		db.exec("ALTER TABLE s3_refs DROP COLUMN added_at; UPDATE schema_versions SET version = 1 WHERE schema = 's3_blobs'");
		db.close();

		const beforeUpgrade = Date.now();
		const upgraded = open(location, new SqliteS3BlobIndex(file), keyring);
		try {
			const { refs } = await upgraded.listRefs({ olderThan: new Date(Date.now() + 60_000), limit: 10 });
			assert.deepEqual(
				refs.map(({ key, ref }) => ({ key, ref })),
				[{ key: blob.key, ref: "image-1" }]
			);
			// Whole seconds: the grace period starts at the upgrade, give or take the second it began in.
			assert.ok(refs[0]!.addedAt.getTime() >= beforeUpgrade - 1000, refs[0]!.addedAt.toISOString());
			assert.deepEqual(await upgraded.releaseStale(blob.key, "image-1", new Date(Date.now() + 60_000)), { released: true, deleted: true });
			assert.equal((await objectsUnder(client, location)).size, 0);
		} finally {
			await upgraded.close();
			await drop();
		}
	});

	it("presigns a GET of a plain blob's object with the response headers asked, and of no encrypted, corrupt or missing blob", async () => {
		const location = s3.location();
		const { index, drop } = sqliteIndex();
		const store = new S3BlobStore({ ...location, keyring: new Keyring(randomBytes(32)), index, presignedTtlSeconds: 60 });
		const response = { contentType: "image/png", contentDisposition: "inline; filename=a.png", cacheControl: "public, max-age=3600" };
		try {
			const bytes = randomBytes(5000);
			const plain = await store.put(Readable.from([bytes]), { encrypt: false, ref: "a", maxBytes: LIMIT });
			const url = (await store.presignedUrl(plain.key, response))!;
			assert.match(url, /X-Amz-Expires=60/);
			const answer = await fetch(url);
			assert.equal(answer.status, 200);
			assert.deepEqual(Buffer.from(await answer.arrayBuffer()), bytes);
			assert.equal(answer.headers.get("content-type"), "image/png");
			assert.equal(answer.headers.get("content-disposition"), "inline; filename=a.png");
			assert.equal(answer.headers.get("cache-control"), "public, max-age=3600");
			assert.equal((await fetch(url.replace("X-Amz-Expires=60", "X-Amz-Expires=600"))).status, 403, "signed: the expiry cannot be stretched");

			const encrypted = await store.put(Readable.from([bytes]), { encrypt: true, ref: "b", maxBytes: LIMIT });
			assert.equal(await store.presignedUrl(encrypted.key, response), null);
			assert.equal(await store.presignedUrl(`sha256-${"0".repeat(64)}`, response), null);
			await editObject(client, index, location.bucket, plain.key, stored => Buffer.concat([stored, Buffer.from("x")]));
			await assert.rejects(buffer(await store.open(plain.key)));
			assert.equal(await store.presignedUrl(plain.key, response), null, "marked corrupt by the read");
		} finally {
			await store.close();
			await drop();
		}
	});

	it("reports a bucket out of reach as UnavailableError (503, retryable) and fails its ping", async () => {
		const { index, drop } = sqliteIndex();
		const store = open({ ...s3.location(), endpoint: `http://127.0.0.1:${await freePort()}` }, index, new Keyring(randomBytes(32)));
		try {
			await assert.rejects(store.put(Readable.from([randomBytes(100)]), { encrypt: false, ref: "a", maxBytes: LIMIT }), UnavailableError);
			assert.equal(await store.ping(), false);
		} finally {
			await store.close();
			await drop();
		}
	});

	it("streams a 200 MB upload in two 5 MiB part buffers, and its download: the process's peak RSS grows by a fraction of that", async () => {
		const size = 200 * 1024 * 1024;
		// Measured 23 MiB plain, 47 MiB encrypted (the envelope's chunks); with lib-storage's Upload (8 MiB
		// parts, two in flight) 75 and 100 MiB.
		const uploadBound = 64 * 1024 * 1024;
		// Run as a node runs (package.json's start script: its allocator setting and node flags).
		const { env, nodeArgs } = startCommand();
		for (const encrypt of [false, true]) {
			const location = s3.location();
			const { stdout } = await run(process.execPath, [...nodeArgs.filter(arg => arg.startsWith("--")), fileURLToPath(new URL("../helpers/s3-stream-rss.ts", import.meta.url))], {
				env: { ...process.env, ...env, S3_LOCATION: JSON.stringify(location), SIZE: String(size), ENCRYPT: String(encrypt) }
			});
			const { uploadGrowth, growth, baseline, ...transfer } = JSON.parse(stdout) as { size: number; read: number; matches: boolean; baseline: number; uploadGrowth: number; growth: number };
			assert.deepEqual(transfer, { size, read: size, matches: true });
			const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
			const report = `${encrypt ? "encrypted" : "plain"}: peak RSS ${mb(baseline)} MB before, ${mb(baseline + uploadGrowth)} MB after the upload, ${mb(baseline + growth)} MB after the download`;
			assert.ok(uploadGrowth < uploadBound, report);
			assert.ok(growth < size / 2, report);
			assert.equal((await objectsUnder(client, location)).size, 0, "released");
		}
	});
});
