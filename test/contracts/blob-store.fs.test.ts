import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { PassThrough, Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { ServiceBroker } from "moleculer";
import type { BlobRef } from "../../models/storage/blob-store.ts";
import { CHUNK_SIZE, decryptRange, EnvelopeEncryptor, HEADER_SIZE, Keyring, openEnvelope } from "../../models/storage/envelope-crypto.ts";
import { IntegrityError } from "../../models/shared/errors.ts";
import { FsBlobStore } from "../../models/storage/fs-blob-store.ts";
import { blobStoreContract } from "./blob-store.contract.ts";

const SEALED_CHUNK = CHUNK_SIZE + 16;
const LIMIT = 16 * 1024 * 1024;
/** The storage key an envelope made by hand here is bound to. */
const BLOB_KEY = "enc-00112233445566778899aabbccddeeff";

function tempRoot(): string {
	return mkdtempSync(join(tmpdir(), "imgmesh-blobs-"));
}

/** Every file under root except the reference database, by path relative to root. */
function storedFiles(root: string): string[] {
	return readdirSync(root, { recursive: true, withFileTypes: true })
		.filter(entry => entry.isFile() && entry.parentPath !== root)
		.map(entry => join(entry.parentPath, entry.name).slice(root.length + 1));
}

function blobPath(root: string, key: string): string {
	const path = storedFiles(root).find(file => file.endsWith(`/${key}`));
	assert.ok(path, `no file for ${key}`);
	return join(root, path);
}

function put(store: FsBlobStore, bytes: Buffer, encrypt = true, ref = "image-1"): Promise<BlobRef> {
	return store.put(Readable.from([bytes]), { encrypt, ref, maxBytes: LIMIT });
}

/**
 * Reads until the stream ends or fails; returns what was emitted and the failure, if any. Reads in
 * flowing mode, so every byte the stream emits reaches `received` before a later error destroys it.
 */
function drain(stream: Readable): Promise<{ received: Buffer; error: unknown }> {
	return new Promise(resolve => {
		const pieces: Buffer[] = [];
		stream.on("data", (piece: Buffer) => pieces.push(piece));
		stream.on("error", error => resolve({ received: Buffer.concat(pieces), error }));
		stream.on("end", () => resolve({ received: Buffer.concat(pieces), error: undefined }));
	});
}

function patchFile(path: string, edit: (bytes: Buffer) => void): void {
	const bytes = readFileSync(path);
	edit(bytes);
	writeFileSync(path, bytes);
}

blobStoreContract("FsBlobStore", async () => {
	const root = tempRoot();
	const store = new FsBlobStore({ root, keyring: new Keyring(randomBytes(32)) });
	return {
		store,
		storedObjectCount: async () => storedFiles(root).length,
		corrupt: async (key, offset) =>
			patchFile(blobPath(root, key), file => {
				file[offset]! ^= 0x01;
			}),
		lose: async key => rmSync(blobPath(root, key)),
		truncate: async key => {
			const path = blobPath(root, key);
			truncateSync(path, readFileSync(path).length - 1);
		},
		cleanup: async () => {
			await store.close();
			rmSync(root, { recursive: true, force: true });
		}
	};
});

describe("FsBlobStore on disk", () => {
	const masterKey = randomBytes(32);
	let root: string;
	let store: FsBlobStore;
	const reopen = async (keyring: Keyring) => {
		await store.close();
		store = new FsBlobStore({ root, keyring });
	};

	beforeEach(() => {
		root = tempRoot();
		store = new FsBlobStore({ root, keyring: new Keyring(masterKey) });
	});
	afterEach(async () => {
		await store.close();
		rmSync(root, { recursive: true, force: true });
	});

	it("opened read-only beside it (another node on a shared disk), leaves its uploads under way alone and reads", async () => {
		const bytes = randomBytes(3 * CHUNK_SIZE);
		const source = new PassThrough();
		const putting = store.put(source, { encrypt: false, ref: "img-1", maxBytes: LIMIT });
		source.write(bytes.subarray(0, CHUNK_SIZE));
		for (const deadline = Date.now() + 5000; readdirSync(join(root, "tmp")).length === 0; ) {
			assert.ok(Date.now() < deadline, "the upload's temp file appears");
			await new Promise(resolve => setImmediate(resolve));
		}
		const reader = new FsBlobStore({ root, keyring: new Keyring(masterKey), readOnly: true });
		try {
			source.end(bytes.subarray(CHUNK_SIZE));
			const { key } = await putting;
			assert.deepEqual(await buffer(await reader.open(key)), bytes);
		} finally {
			await reader.close();
		}
	});

	it("fails a tampered chunk with IntegrityError after emitting only the chunks before it", async () => {
		const bytes = randomBytes(3 * CHUNK_SIZE);
		const { key } = await put(store, bytes);
		patchFile(blobPath(root, key), file => {
			file[HEADER_SIZE + SEALED_CHUNK + 10]! ^= 0x01;
		});

		const { received, error } = await drain(await store.open(key));
		assert.ok(error instanceof IntegrityError, String(error));
		assert.deepEqual(received, bytes.subarray(0, CHUNK_SIZE));
		// Tampering is local to its chunk: the others still read, the chunk itself never does.
		assert.deepEqual(await buffer(await store.open(key, { start: 2 * CHUNK_SIZE, end: 2 * CHUNK_SIZE + 9 })), bytes.subarray(2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 10));
		const ranged = await drain(await store.open(key, { start: CHUNK_SIZE + 20, end: CHUNK_SIZE + 30 }));
		assert.ok(ranged.error instanceof IntegrityError);
		assert.equal(ranged.received.length, 0);
	});

	it("detects a tampered tag, swapped chunks and a tampered header", async () => {
		const bytes = randomBytes(2 * CHUNK_SIZE + 5);
		const cases: Record<string, (file: Buffer) => void> = {
			"last tag": file => {
				file[file.length - 1]! ^= 0x80;
			},
			"swapped chunks": file => {
				const first = Buffer.from(file.subarray(HEADER_SIZE, HEADER_SIZE + SEALED_CHUNK));
				file.copy(file, HEADER_SIZE, HEADER_SIZE + SEALED_CHUNK, HEADER_SIZE + 2 * SEALED_CHUNK);
				first.copy(file, HEADER_SIZE + SEALED_CHUNK);
			},
			// The low byte of the plaintext size: the header is authenticated by the key wrap.
			"header size": file => {
				file[24]! ^= 0x01;
			}
		};
		for (const [name, tamper] of Object.entries(cases)) {
			const { key } = await put(store, bytes);
			patchFile(blobPath(root, key), tamper);
			const failure = await store.open(key).then(drain, error => ({ received: Buffer.alloc(0), error }));
			assert.ok(failure.error instanceof IntegrityError, `${name}: ${String(failure.error)}`);
			assert.equal(failure.received.length, name === "last tag" ? 2 * CHUNK_SIZE : 0, name);
		}
	});

	it("detects a truncated or padded file before emitting anything", async () => {
		const bytes = randomBytes(2 * CHUNK_SIZE + 5);
		const length = HEADER_SIZE + 2 * SEALED_CHUNK + 5 + 16;
		const cases = { "last chunk dropped": HEADER_SIZE + 2 * SEALED_CHUNK, "one byte short": length - 1, "one byte of padding": length + 1, "header cut": HEADER_SIZE - 1 };
		for (const [name, newLength] of Object.entries(cases)) {
			const { key } = await put(store, bytes);
			truncateSync(blobPath(root, key), newLength);
			await assert.rejects(store.open(key), IntegrityError, name);
		}
	});

	it("authenticates the final-chunk flag and the end of the ciphertext stream", async () => {
		const keyring = new Keyring(masterKey);
		const encryptor = new EnvelopeEncryptor(keyring, BLOB_KEY);
		const body = await buffer(Readable.from([randomBytes(3 * CHUNK_SIZE)]).pipe(encryptor));
		const envelope = openEnvelope(encryptor.header, keyring, BLOB_KEY);
		const ciphertext = Buffer.concat([encryptor.header, body.subarray(HEADER_SIZE)]);
		const reader = (bytes: Buffer) => (start: number, end: number) => Readable.from([bytes.subarray(start, end + 1)]);

		// A header claiming two chunks makes chunk 1 the final one, which it was not sealed as.
		const shortened = { ...envelope, plaintextSize: 2 * CHUNK_SIZE };
		const dropped = await drain(decryptRange(shortened, undefined, reader(ciphertext)));
		assert.ok(dropped.error instanceof IntegrityError);
		assert.equal(dropped.received.length, CHUNK_SIZE);

		const cut = await drain(decryptRange(envelope, undefined, reader(ciphertext.subarray(0, HEADER_SIZE + 2 * SEALED_CHUNK + 100))));
		assert.ok(cut.error instanceof IntegrityError);
		assert.equal(cut.received.length, 2 * CHUNK_SIZE);
	});

	it("never writes the plaintext to disk", async () => {
		const marker = "imgmesh plaintext marker;";
		const { key } = await put(store, Buffer.from(marker.repeat(10_000)));
		const stored = readFileSync(blobPath(root, key));
		assert.equal(stored.includes(marker), false);
		assert.equal(stored.includes(marker.slice(0, 12)), false);
	});

	it("names the master key when it is not configured", async () => {
		const { key } = await put(store, randomBytes(1000));
		await reopen(new Keyring(randomBytes(32)));
		await assert.rejects(store.open(key), (error: Error) => error instanceof IntegrityError && /master key [0-9a-f]{16}, which is not configured/.test(error.message));
	});

	it("re-wraps data keys under a new master key without touching the chunks", async () => {
		const newKey = randomBytes(32);
		const bytes = randomBytes(CHUNK_SIZE + 1);
		const { key } = await put(store, bytes);
		await put(store, randomBytes(10), false);
		const before = readFileSync(blobPath(root, key));

		await reopen(new Keyring(newKey, [masterKey]));
		assert.deepEqual(await store.rewrapAll(), { rewrapped: 1, failed: [] });
		assert.deepEqual(await store.rewrapAll(), { rewrapped: 0, failed: [] }, "a second run has nothing left to do");
		const after = readFileSync(blobPath(root, key));
		assert.notDeepEqual(after.subarray(0, HEADER_SIZE), before.subarray(0, HEADER_SIZE));
		assert.deepEqual(after.subarray(HEADER_SIZE), before.subarray(HEADER_SIZE));

		await reopen(new Keyring(newKey));
		assert.deepEqual(await buffer(await store.open(key)), bytes);
	});

	it("re-wraps the sound blobs and lists the ones it cannot", async () => {
		const sound = await put(store, randomBytes(100));
		const corrupt = await put(store, randomBytes(100));
		truncateSync(blobPath(root, corrupt.key), HEADER_SIZE - 1);

		await reopen(new Keyring(randomBytes(32), [masterKey]));
		const report = await store.rewrapAll();
		assert.equal(report.rewrapped, 1);
		assert.deepEqual(report.failed.map(failure => failure.key), [corrupt.key]);
		assert.equal((await store.stat(sound.key))?.refs, 1);
	});

	it("leaves no temp files, and clears those a crash left behind", async () => {
		await assert.rejects(store.put(Readable.from([randomBytes(100)]), { encrypt: true, ref: "x", maxBytes: 10 }));
		assert.deepEqual(readdirSync(join(root, "tmp")), []);
		writeFileSync(join(root, "tmp", "interrupted-upload"), "partial");
		await reopen(new Keyring(masterKey));
		assert.deepEqual(readdirSync(join(root, "tmp")), []);
	});

	it("gives the references of an index made before references had times the time of the upgrade", async () => {
		const blob = await put(store, randomBytes(100), false, "image-1");
		await store.close();
		// The index as the previous schema version left it.
		const db = new DatabaseSync(join(root, "blobs.db"));
		db.exec("ALTER TABLE refs DROP COLUMN added_at; UPDATE schema_versions SET version = 2 WHERE schema = 'blobs'");
		db.close();

		const beforeUpgrade = Date.now();
		store = new FsBlobStore({ root, keyring: new Keyring(masterKey) });
		const { refs } = await store.listRefs({ olderThan: new Date(Date.now() + 60_000), limit: 10 });
		assert.deepEqual(
			refs.map(({ key, ref }) => ({ key, ref })),
			[{ key: blob.key, ref: "image-1" }]
		);
		// Whole seconds: the grace period starts at the upgrade, give or take the second it began in.
		assert.ok(refs[0]!.addedAt.getTime() >= beforeUpgrade - 1000, refs[0]!.addedAt.toISOString());
		assert.deepEqual(await store.listRefs({ olderThan: new Date(beforeUpgrade - 1000), limit: 10 }), { refs: [], next: null });
	});

	it("sweeps temp files older than the cutoff while the store runs, not younger ones", async () => {
		const stale = join(root, "tmp", "crashed-upload");
		const fresh = join(root, "tmp", "upload-under-way");
		writeFileSync(stale, "partial");
		writeFileSync(fresh, "partial");
		const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
		utimesSync(stale, twoHoursAgo, twoHoursAgo);
		assert.equal(await store.sweepUnfinished(new Date(Date.now() - 3600_000)), 1);
		assert.deepEqual(readdirSync(join(root, "tmp")), ["upload-under-way"]);
	});

	it("keeps blob files in fan-out directories named after the key", async () => {
		const { key } = await put(store, randomBytes(10), false, "fan-out");
		const id = key.slice("sha256-".length);
		assert.equal(blobPath(root, key), join(root, id.slice(0, 2), key));
	});
});

describe("storage service", () => {
	let broker: ServiceBroker;
	let dataDir: string;

	before(async () => {
		dataDir = mkdtempSync(join(tmpdir(), "imgmesh-storage-"));
		// Config is read once per process, so the environment is set before the service loads it.
		process.env.DATA_DIR = dataDir;
		process.env.STORAGE_MASTER_KEY = randomBytes(32).toString("hex");
		const { default: storage } = await import("../../services/storage.service.ts");
		broker = new ServiceBroker({ logger: false, validator: true });
		broker.createService(storage);
		await broker.start();
	});
	after(async () => {
		await broker.stop();
		rmSync(dataDir, { recursive: true, force: true });
	});

	it("stores a stream and reads it back whole and in part", async () => {
		const bytes = randomBytes(CHUNK_SIZE * 2 + 3);
		for (const encrypt of [false, true]) {
			const blob = await broker.call<BlobRef, object>("storage.put", { encrypt, ref: "img", maxBytes: LIMIT }, { stream: Readable.from([bytes]) });
			assert.equal(blob.size, bytes.length);
			assert.equal(blob.encrypted, encrypt);
			assert.deepEqual(await buffer(await broker.call<Readable, object>("storage.get", { key: blob.key })), bytes);
			assert.deepEqual(
				await buffer(await broker.call<Readable, object>("storage.get", { key: blob.key, start: CHUNK_SIZE - 1, end: CHUNK_SIZE + 1 })),
				bytes.subarray(CHUNK_SIZE - 1, CHUNK_SIZE + 2)
			);
			assert.deepEqual(await buffer(await broker.call<Readable, object>("storage.get", { key: blob.key, start: CHUNK_SIZE })), bytes.subarray(CHUNK_SIZE));
			assert.deepEqual(await broker.call("storage.stat", { key: blob.key }), { key: blob.key, size: bytes.length, encrypted: encrypt, refs: 1 });
			assert.deepEqual(await broker.call("storage.release", { key: blob.key, ref: "img" }), { deleted: true });
			assert.equal(await broker.call("storage.stat", { key: blob.key }), null);
		}
		assert.deepEqual(storedFiles(join(dataDir, "blobs")), []);
	});

	it("validates params strictly and wants a stream", async () => {
		await assert.rejects(broker.call("storage.put", { encrypt: false, ref: "img", maxBytes: 10, extra: 1 }, { stream: Readable.from([]) }), { name: "ValidationError" });
		await assert.rejects(broker.call("storage.put", { encrypt: false, ref: "img", maxBytes: 10 }), { type: "STREAM_REQUIRED" });
		await assert.rejects(broker.call("storage.get", { key: `sha256-${"0".repeat(64)}` }), { code: 404 });
	});

	it("scrubs batch by batch, at the rate asked, and reports and marks a corrupt blob", async () => {
		const blobs = [];
		for (const ref of ["s1", "s2", "s3"]) {
			blobs.push(await broker.call<BlobRef, object>("storage.put", { encrypt: false, ref, maxBytes: LIMIT }, { stream: Readable.from([randomBytes(256 * 1024)]) }));
		}
		const [bad] = blobs;
		patchFile(blobPath(join(dataDir, "blobs"), bad!.key), file => {
			file[1000]! ^= 0x01;
		});

		type Report = { checked: number; bytes: number; corrupt: { key: string; error: string }[]; next: string | null };
		const reports: Report[] = [];
		const started = performance.now();
		let after: string | null = null;
		do {
			const report: Report = await broker.call("storage.scrub", { limit: 2, bytesPerSecond: 1024 * 1024, ...(after ? { after } : {}) });
			reports.push(report);
			after = report.next;
		} while (after);
		assert.deepEqual(
			reports.map(report => report.checked),
			[2, 1]
		);
		assert.deepEqual(
			reports.flatMap(report => report.corrupt.map(({ key }) => key)),
			[bad!.key]
		);
		// About 3/4 MiB read at 1 MiB/s (the corrupt blob's last piece is never emitted).
		assert.ok(performance.now() - started > 500, `paced: ${performance.now() - started} ms`);
		assert.ok(((await broker.call("storage.stat", { key: bad!.key })) as { corruptAt?: string }).corruptAt);
		await assert.rejects(broker.call("storage.scrub", { bytesPerSecond: 0 }), { name: "ValidationError" });
		for (const [i, blob] of blobs.entries()) await broker.call("storage.release", { key: blob.key, ref: `s${i + 1}` });
	});

	it("answers ping and rotateKeys", async () => {
		assert.deepEqual(await broker.call("storage.ping"), { ok: true });
		assert.deepEqual(await broker.call("storage.rotateKeys"), { rewrapped: 0, failed: [] });
	});
});
