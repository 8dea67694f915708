/**
 * The behaviour every BlobStore adapter must have. An adapter's test file calls
 * blobStoreContract with a factory that makes a fresh, empty store for each test.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { BlobStore, ByteRange } from "../../models/storage/blob-store.ts";
import { NotFoundError, PayloadTooLargeError, RangeNotSatisfiableError } from "../../models/shared/errors.ts";

export interface StoreUnderTest {
	store: BlobStore;
	/**
	 * How many objects the backend physically holds, blobs and unfinished uploads alike (temp
	 * files, orphaned chunks): the suite's way to see that nothing is left behind.
	 */
	storedObjectCount(): Promise<number>;
	cleanup(): Promise<void>;
}

const CHUNK = 64 * 1024;
const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 1024 * 1024 + 3];
const MAX_BYTES = 8 * 1024 * 1024;

function sha256(bytes: Buffer): string {
	return createHash("sha256").update(bytes).digest("hex");
}

/** `bytes` as a stream of odd-sized pieces, so no piece lines up with a chunk boundary. */
function streamOf(bytes: Buffer, pieceSize = 10_007): Readable {
	const pieces: Buffer[] = [];
	for (let offset = 0; offset < bytes.length; offset += pieceSize) pieces.push(bytes.subarray(offset, offset + pieceSize));
	return Readable.from(pieces);
}

/** A source that delivers `bytes`, then fails with `error`. */
function failingStream(bytes: Buffer, error: Error): Readable {
	return Readable.from(
		(async function* () {
			yield bytes;
			throw error;
		})()
	);
}

export function blobStoreContract(name: string, makeStore: () => Promise<StoreUnderTest>): void {
	describe(`BlobStore contract: ${name}`, () => {
		let subject: StoreUnderTest;
		let store: BlobStore;
		beforeEach(async () => {
			subject = await makeStore();
			store = subject.store;
		});
		afterEach(() => subject.cleanup());

		const put = (bytes: Buffer, encrypt: boolean, ref = "image-1", maxBytes = MAX_BYTES) =>
			store.put(streamOf(bytes), { encrypt, ref, maxBytes });
		const read = async (key: string, range?: ByteRange) => buffer(await store.open(key, range));

		for (const encrypt of [false, true]) {
			const mode = encrypt ? "encrypted" : "plain";

			describe(mode, () => {
				it("round-trips every size around the chunk boundaries, with the right sha256 and size", async () => {
					for (const size of SIZES) {
						const bytes = randomBytes(size);
						const blob = await put(bytes, encrypt);
						assert.equal(blob.sha256, sha256(bytes), `sha256 of ${size} bytes`);
						assert.equal(blob.size, size);
						assert.equal(blob.encrypted, encrypt);
						assert.match(blob.key, encrypt ? /^enc-/ : new RegExp(`^sha256-${blob.sha256}$`));
						assert.deepEqual(await read(blob.key), bytes, `${size} bytes read back`);
						assert.deepEqual(await store.stat(blob.key), { key: blob.key, size, encrypted: encrypt, refs: 1 });
					}
				});

				it("reads ranges: first byte, last byte, across chunk boundaries, whole", async () => {
					const bytes = randomBytes(3 * CHUNK + 100);
					const last = bytes.length - 1;
					const { key } = await put(bytes, encrypt);
					const ranges: ByteRange[] = [
						{ start: 0, end: 0 },
						{ start: last, end: last },
						{ start: CHUNK - 1, end: CHUNK },
						{ start: CHUNK, end: 2 * CHUNK - 1 },
						{ start: 100, end: 2 * CHUNK + 50 },
						{ start: 0, end: last }
					];
					for (const range of ranges) {
						assert.deepEqual(await read(key, range), bytes.subarray(range.start, range.end + 1), JSON.stringify(range));
					}
				});

				it("reads to the end when a range ends past it, as HTTP does", async () => {
					const bytes = randomBytes(CHUNK + 10);
					const { key } = await put(bytes, encrypt);
					assert.deepEqual(await read(key, { start: CHUNK, end: CHUNK + 1000 }), bytes.subarray(CHUNK));
				});

				it("refuses ranges starting past the end with RangeNotSatisfiableError", async () => {
					const bytes = randomBytes(1000);
					const { key } = await put(bytes, encrypt);
					await assert.rejects(store.open(key, { start: 1000, end: 1000 }), RangeNotSatisfiableError);
					await assert.rejects(store.open(key, { start: 5000, end: 6000 }), RangeNotSatisfiableError);
					await assert.rejects(store.open(key, { start: 10, end: 9 }), RangeNotSatisfiableError);
					const empty = await put(Buffer.alloc(0), encrypt, "image-2");
					await assert.rejects(store.open(empty.key, { start: 0, end: 0 }), RangeNotSatisfiableError);
				});

				it("accepts exactly maxBytes and refuses one more with PayloadTooLargeError, leaving nothing behind", async () => {
					const bytes = randomBytes(2 * CHUNK + 1);
					await assert.rejects(put(bytes, encrypt, "image-1", bytes.length - 1), PayloadTooLargeError);
					assert.equal(await subject.storedObjectCount(), 0);
					assert.equal(await store.stat(`sha256-${sha256(bytes)}`), null);
					const blob = await put(bytes, encrypt, "image-1", bytes.length);
					assert.deepEqual(await read(blob.key), bytes);
				});

				it("rejects with the source's error and leaves nothing behind when the source fails", async () => {
					const boom = new Error("client went away");
					const upload = store.put(failingStream(randomBytes(CHUNK + 5), boom), { encrypt, ref: "image-1", maxBytes: MAX_BYTES });
					await assert.rejects(upload, error => error === boom);
					assert.equal(await subject.storedObjectCount(), 0);
				});

				it("releases idempotently per ref", async () => {
					const blob = await put(randomBytes(100), encrypt, "a");
					assert.equal(await store.release(blob.key, "someone-else"), false);
					assert.equal((await store.stat(blob.key))?.refs, 1);
					assert.equal(await store.release(blob.key, "a"), true);
					assert.equal(await store.release(blob.key, "a"), true);
					assert.equal(await store.stat(blob.key), null);
					await assert.rejects(store.open(blob.key), NotFoundError);
					assert.equal(await subject.storedObjectCount(), 0);
				});
			});
		}

		describe("deduplication", () => {
			it("stores identical plain bytes once, and deletes them with their last ref", async () => {
				const bytes = randomBytes(CHUNK + 7);
				const first = await put(bytes, false, "a");
				const second = await put(bytes, false, "b");
				assert.deepEqual(second, first);
				assert.equal(await subject.storedObjectCount(), 1);
				assert.equal((await store.stat(first.key))?.refs, 2);

				assert.equal(await store.release(first.key, "a"), false);
				assert.equal((await store.stat(first.key))?.refs, 1);
				assert.deepEqual(await read(first.key), bytes);

				assert.equal(await store.release(first.key, "b"), true);
				assert.equal(await store.stat(first.key), null);
				assert.equal(await subject.storedObjectCount(), 0);
			});

			it("does nothing more when the same bytes are put again for the same ref", async () => {
				const bytes = randomBytes(500);
				const first = await put(bytes, false, "a");
				assert.deepEqual(await put(bytes, false, "a"), first);
				assert.deepEqual(await store.stat(first.key), { key: first.key, size: 500, encrypted: false, refs: 1 });
				assert.equal(await subject.storedObjectCount(), 1);
			});

			it("never deduplicates encrypted blobs", async () => {
				const bytes = randomBytes(500);
				const first = await put(bytes, true, "a");
				const second = await put(bytes, true, "a");
				assert.notEqual(second.key, first.key);
				assert.equal(second.sha256, first.sha256);
				assert.equal(await subject.storedObjectCount(), 2);
				assert.equal(await store.release(first.key, "a"), true);
				assert.deepEqual(await read(second.key), bytes);
			});

			it("counts concurrent puts of the same bytes as one blob with every ref", async () => {
				const bytes = randomBytes(CHUNK * 2);
				const refs = Array.from({ length: 8 }, (_, i) => `image-${i}`);
				const blobs = await Promise.all(refs.map(ref => put(bytes, false, ref)));
				assert.equal(new Set(blobs.map(blob => blob.key)).size, 1);
				assert.equal((await store.stat(blobs[0]!.key))?.refs, refs.length);
				assert.equal(await subject.storedObjectCount(), 1);
				const deleted = await Promise.all(refs.map(ref => store.release(blobs[0]!.key, ref)));
				assert.equal(deleted.filter(Boolean).length, 1, "exactly the last release deletes");
				assert.equal(await subject.storedObjectCount(), 0);
			});

			it("never loses a blob to a release racing a put of the same bytes", async () => {
				const bytes = randomBytes(CHUNK);
				for (let round = 0; round < 5; round++) {
					const { key } = await put(bytes, false, "old");
					const [, blob] = await Promise.all([store.release(key, "old"), put(bytes, false, "new")]);
					assert.deepEqual(await read(blob.key), bytes, `round ${round}`);
					assert.equal((await store.stat(key))?.refs, 1);
					assert.equal(await store.release(key, "new"), true);
				}
			});
		});

		describe("missing keys", () => {
			const missing = [`sha256-${"0".repeat(64)}`, `enc-${"0".repeat(32)}`, "../../etc/passwd", ""];

			it("open fails with NotFoundError, stat is null, release reports the blob gone", async () => {
				for (const key of missing) {
					await assert.rejects(store.open(key), NotFoundError, JSON.stringify(key));
					assert.equal(await store.stat(key), null);
					assert.equal(await store.release(key, "image-1"), true);
				}
			});
		});

		it("answers ping while healthy", async () => {
			assert.equal(await store.ping(), true);
		});
	});
}
