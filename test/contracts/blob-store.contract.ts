/**
 * The behaviour every BlobStore adapter must have. An adapter's test file calls
 * blobStoreContract with a factory that makes a fresh, empty store for each test.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { BlobStore, ByteRange, ScrubReport } from "../../models/storage/blob-store.ts";
import { newEncryptedKey } from "../../models/storage/blob-support.ts";
import { HEADER_SIZE } from "../../models/storage/envelope-crypto.ts";
import { IntegrityError, NotFoundError, PayloadTooLargeError, RangeNotSatisfiableError } from "../../models/shared/errors.ts";

export interface StoreUnderTest {
	store: BlobStore;
	/**
	 * How many objects the backend physically holds, blobs and unfinished uploads alike (temp
	 * files, orphaned chunks): the suite's way to see that nothing is left behind.
	 */
	storedObjectCount(): Promise<number>;
	/** Flips one bit of the blob's bytes as the backend holds them (envelope offsets for encrypted blobs), behind the store's back. */
	corrupt(key: string, offset: number): Promise<void>;
	/** Drops the last stored byte of the blob, behind the store's back. */
	truncate(key: string): Promise<void>;
	/** Deletes the blob's stored bytes (not its record), behind the store's back. */
	lose(key: string): Promise<void>;
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

/** A time strictly later than every time taken before the call: the clock has moved on since. */
async function instantAfterNow(): Promise<Date> {
	const now = Date.now();
	while (Date.now() <= now) await new Promise(resolve => setImmediate(resolve));
	return new Date();
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

		describe("integrity", () => {
			const noPause = async () => {};

			/** Scrubs every blob, `limit` per call, each call resuming where the last stopped. */
			async function scrubAll(limit: number): Promise<{ calls: ScrubReport[]; corrupt: string[] }> {
				const calls: ScrubReport[] = [];
				let after: string | undefined;
				do {
					const report = await store.scrub({ ...(after ? { after } : {}), limit, pace: noPause });
					calls.push(report);
					after = report.next ?? undefined;
				} while (after);
				return { calls, corrupt: calls.flatMap(report => report.corrupt.map(({ key }) => key)) };
			}

			it("cuts a full read of a plain blob whose bytes changed before its end, marks it corrupt and refuses it afterwards", async () => {
				const bytes = randomBytes(3 * CHUNK + 100);
				const { key } = await put(bytes, false);
				await subject.corrupt(key, 2 * CHUNK + 7);

				const { received, error } = await drain(await store.open(key));
				assert.ok(error instanceof IntegrityError, String(error));
				assert.ok(received.length < bytes.length, `stopped short of the end: ${received.length} of ${bytes.length} bytes`);
				assert.match((await store.stat(key))?.corruptAt ?? "", /^\d{4}-\d\d-\d\dT/, "stat shows when it was found corrupt");

				// Refused at once from now on, ranges included (a range alone cannot check the hash).
				await assert.rejects(store.open(key), (err: Error) => err instanceof IntegrityError && /corrupt/.test(err.message));
				await assert.rejects(store.open(key, { start: 0, end: 10 }), IntegrityError);
			});

			it("cuts a full read of a plain blob that was cut short on storage", async () => {
				const bytes = randomBytes(CHUNK + 5);
				const { key } = await put(bytes, false);
				await subject.truncate(key);
				const { received, error } = await drain(await store.open(key));
				assert.ok(error instanceof IntegrityError, String(error));
				assert.ok(received.length < bytes.length);
			});

			it("fails a blob whose stored bytes are gone with IntegrityError, marks a plain one and takes the same bytes as its repair", async () => {
				const bytes = randomBytes(CHUNK + 1);
				const plain = await put(bytes, false, "a");
				const encrypted = await put(bytes, true, "b");
				await subject.lose(plain.key);
				await subject.lose(encrypted.key);

				const { corrupt } = await scrubAll(10);
				assert.deepEqual(corrupt.sort(), [plain.key, encrypted.key].sort(), "not taken for blobs released meanwhile");
				for (const key of [plain.key, encrypted.key]) await assert.rejects(store.open(key).then(drain).then(({ error }) => Promise.reject(error)), IntegrityError);
				assert.ok((await store.stat(plain.key))?.corruptAt);

				await put(bytes, false, "c");
				assert.deepEqual(await read(plain.key), bytes);
				assert.equal((await store.stat(plain.key))?.refs, 2);
			});

			it("repairs a corrupt plain blob when the same bytes are put again", async () => {
				const bytes = randomBytes(2 * CHUNK + 3);
				const { key } = await put(bytes, false, "a");
				await subject.corrupt(key, 5);
				await drain(await store.open(key));
				assert.ok((await store.stat(key))?.corruptAt);

				assert.equal((await put(bytes, false, "b")).key, key);
				assert.deepEqual(await store.stat(key), { key, size: bytes.length, encrypted: false, refs: 2 });
				assert.deepEqual(await read(key), bytes);
				assert.equal(await subject.storedObjectCount(), 1, "the corrupt copy is gone");
			});

			it("scrub checks every blob, plain and encrypted, reports the corrupt ones and resumes after the last key checked", async () => {
				const plain = await Promise.all([0, 1, 2, 3].map(i => put(randomBytes(CHUNK + i), false, `plain-${i}`)));
				const encrypted = await Promise.all([0, 1].map(i => put(randomBytes(CHUNK + 10), true, `enc-${i}`)));
				const sound = [...plain, ...encrypted].reduce((sum, blob) => sum + blob.size, 0);
				await subject.corrupt(plain[2]!.key, 100);
				await subject.corrupt(encrypted[1]!.key, HEADER_SIZE + 100);

				const { calls, corrupt } = await scrubAll(4);
				assert.deepEqual(
					calls.map(report => report.checked),
					[4, 2]
				);
				assert.equal(calls.at(-1)!.next, null);
				assert.deepEqual(corrupt.sort(), [plain[2]!.key, encrypted[1]!.key].sort());
				assert.ok(calls.every(report => report.corrupt.every(({ error }) => error.length > 0)));
				const bytes = calls.reduce((sum, report) => sum + report.bytes, 0);
				assert.ok(bytes <= sound && bytes >= sound - 2 * (CHUNK + 10), `bytes read: ${bytes} of ${sound}`);
				// The plain one is marked (its hash is the truth); the encrypted one is refused on every read anyway.
				assert.ok((await store.stat(plain[2]!.key))?.corruptAt);
				assert.equal((await store.stat(encrypted[1]!.key))?.corruptAt, undefined);

				const again = await scrubAll(100);
				assert.deepEqual(
					again.calls.map(report => report.checked),
					[6]
				);
				assert.deepEqual(again.corrupt.sort(), corrupt.sort(), "a marked blob is still reported");
			});

			it("scrub paces its reads through the caller's pace function", async () => {
				const blobs = [await put(randomBytes(3 * CHUNK), false), await put(randomBytes(CHUNK), true, "image-2")];
				let paced = 0;
				const report = await store.scrub({ limit: 10, pace: async bytes => void (paced += bytes) });
				assert.deepEqual({ checked: report.checked, corrupt: report.corrupt, next: report.next }, { checked: 2, corrupt: [], next: null });
				assert.equal(report.bytes, 4 * CHUNK);
				assert.equal(paced, report.bytes);
				assert.equal((await store.scrub({ after: [...blobs].sort((a, b) => (a.key < b.key ? -1 : 1)).at(-1)!.key, limit: 10, pace: noPause })).checked, 0);
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

		describe("references for the garbage collector", () => {
			it("lists references added before a time, with when and how big, in (key, ref) order, page by page", async () => {
				const shared = randomBytes(300);
				const a = await put(shared, false, "a");
				await put(shared, false, "b");
				const c = await put(randomBytes(200), true, "c");
				const cutoff = await instantAfterNow();
				await put(randomBytes(100), false, "young");

				const expected = [
					{ key: a.key, ref: "a", size: 300 },
					{ key: a.key, ref: "b", size: 300 },
					{ key: c.key, ref: "c", size: 200 }
				].sort((x, y) => (x.key === y.key ? x.ref.localeCompare(y.ref) : x.key < y.key ? -1 : 1));
				const listed = [];
				let after;
				do {
					const page = await store.listRefs({ ...(after ? { after } : {}), olderThan: cutoff, limit: 2 });
					assert.ok(page.refs.length <= 2);
					listed.push(...page.refs);
					after = page.next ?? undefined;
				} while (after);
				assert.deepEqual(
					listed.map(({ key, ref, size }) => ({ key, ref, size })),
					expected
				);
				for (const entry of listed) assert.ok(entry.addedAt instanceof Date && entry.addedAt < cutoff, String(entry.addedAt));
				assert.deepEqual((await store.listRefs({ olderThan: cutoff, limit: 10 })).next, null);
			});

			it("restarts a reference's time when it is added again", async () => {
				const bytes = randomBytes(100);
				const first = await put(bytes, false, "a");
				const cutoff = await instantAfterNow();
				assert.equal((await store.listRefs({ olderThan: cutoff, limit: 10 })).refs.length, 1);
				await put(bytes, false, "a");
				assert.deepEqual((await store.listRefs({ olderThan: cutoff, limit: 10 })).refs, [], "re-held since");
				assert.equal((await store.stat(first.key))?.refs, 1);
			});

			it("releases a stale reference, and the blob with its last one, but keeps one added again since", async () => {
				const bytes = randomBytes(CHUNK + 1);
				const blob = await put(bytes, false, "old");
				await put(bytes, false, "renewed");
				const cutoff = await instantAfterNow();
				await put(bytes, false, "renewed");

				assert.deepEqual(await store.releaseStale(blob.key, "renewed", cutoff), { released: false, deleted: false });
				assert.deepEqual(await store.releaseStale(blob.key, "old", cutoff), { released: true, deleted: false });
				assert.deepEqual(await store.releaseStale(blob.key, "old", cutoff), { released: false, deleted: false }, "once");
				assert.deepEqual(await read(blob.key), bytes);
				assert.deepEqual(await store.releaseStale(blob.key, "renewed", await instantAfterNow()), { released: true, deleted: true });
				assert.equal(await store.stat(blob.key), null);
				assert.equal(await subject.storedObjectCount(), 0);
				assert.deepEqual(await store.releaseStale(blob.key, "renewed", new Date()), { released: false, deleted: false });
			});

			it("never loses the bytes of a put that re-holds a reference while the collector releases it", async () => {
				const bytes = randomBytes(CHUNK + 3);
				const blob = await put(bytes, false, "held");
				const cutoff = await instantAfterNow();
				// A rerun storing the same bytes again races the collector's release of the old reference:
				// whichever goes first, the put's reference and bytes stay.
				const [again] = await Promise.all([put(bytes, false, "held"), store.releaseStale(blob.key, "held", cutoff)]);
				assert.equal(again.key, blob.key);
				assert.equal((await store.stat(blob.key))?.refs, 1);
				assert.deepEqual(await read(blob.key), bytes);
				assert.deepEqual((await store.listRefs({ olderThan: cutoff, limit: 10 })).refs, []);
			});

			it("sweeps nothing of a finished upload", async () => {
				const blob = await put(randomBytes(100), true, "a");
				assert.equal(await store.sweepUnfinished(await instantAfterNow()), 0);
				assert.equal(await subject.storedObjectCount(), 1);
				assert.equal((await store.stat(blob.key))?.refs, 1);
			});
		});

		describe("importBlob, what a migration from another store calls", () => {
			const T1 = new Date("2026-01-02T03:04:05.678Z");
			const T2 = new Date("2026-02-03T04:05:06.789Z");
			const sourceOf = (bytes: Buffer) => async () => streamOf(bytes);
			const neverRead = async (): Promise<Readable> => assert.fail("the source must not be read again");

			for (const encrypted of [false, true]) {
				it(`copies a${encrypted ? "n encrypted" : " plain"} blob under its own key, with every reference and its time`, async () => {
					const bytes = randomBytes(CHUNK * 2 + 5);
					const key = encrypted ? newEncryptedKey() : `sha256-${sha256(bytes)}`;
					const result = await store.importBlob(key, sourceOf(bytes), { encrypted, size: bytes.length, refs: [{ ref: "a", addedAt: T1 }, { ref: "b", addedAt: T2 }] });
					assert.deepEqual(result, { copied: true, sha256: sha256(bytes) });
					assert.deepEqual(await read(key), bytes);
					assert.deepEqual(await read(key, { start: CHUNK - 2, end: CHUNK + 2 }), bytes.subarray(CHUNK - 2, CHUNK + 3));
					assert.deepEqual(await store.stat(key), { key, size: bytes.length, encrypted, refs: 2 });
					const listed = (await store.listRefs({ olderThan: new Date(), limit: 10 })).refs;
					assert.deepEqual(
						listed.map(({ ref, addedAt }) => ({ ref, addedAt: addedAt.getTime() })),
						[
							{ ref: "a", addedAt: T1.getTime() },
							{ ref: "b", addedAt: T2.getTime() }
						]
					);
					assert.equal(await subject.storedObjectCount(), 1);
				});
			}

			it("copies a blob once: again, it only adds the references it lacks, without reading the source", async () => {
				const bytes = randomBytes(1000);
				const key = newEncryptedKey();
				await store.importBlob(key, sourceOf(bytes), { encrypted: true, size: bytes.length, refs: [{ ref: "a", addedAt: T1 }] });
				const again = await store.importBlob(key, neverRead, { encrypted: true, size: bytes.length, refs: [{ ref: "a", addedAt: T1 }, { ref: "c", addedAt: T2 }] });
				assert.deepEqual(again, { copied: false });
				assert.equal((await store.stat(key))?.refs, 2);
				assert.equal(await subject.storedObjectCount(), 1);
				assert.deepEqual(await read(key), bytes);
			});

			it("takes the references of a plain blob it holds already from a put, and then releases like any blob", async () => {
				const bytes = randomBytes(500);
				const blob = await put(bytes, false, "local");
				assert.deepEqual(await store.importBlob(blob.key, neverRead, { encrypted: false, size: bytes.length, refs: [{ ref: "moved", addedAt: T1 }] }), { copied: false });
				assert.equal(await store.release(blob.key, "local"), false);
				assert.equal(await store.release(blob.key, "moved"), true);
				assert.equal(await subject.storedObjectCount(), 0);
			});

			it("refuses bytes that are not what the key or the size says, and leaves nothing behind", async () => {
				const bytes = randomBytes(700);
				const otherKey = `sha256-${sha256(randomBytes(700))}`;
				const refs = [{ ref: "a", addedAt: T1 }];
				await assert.rejects(store.importBlob(otherKey, sourceOf(bytes), { encrypted: false, size: bytes.length, refs }), IntegrityError);
				const encryptedKey = newEncryptedKey();
				await assert.rejects(store.importBlob(encryptedKey, sourceOf(bytes), { encrypted: true, size: bytes.length + 1, refs }), IntegrityError);
				assert.equal(await store.stat(otherKey), null);
				assert.equal(await store.stat(encryptedKey), null);
				assert.equal(await subject.storedObjectCount(), 0);
			});
		});

		it("answers ping while healthy", async () => {
			assert.equal(await store.ping(), true);
		});
	});
}
