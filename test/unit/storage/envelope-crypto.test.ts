/**
 * Direct tests of the envelope format. test/contracts/blob-store.fs.test.ts already covers, through
 * FsBlobStore, tampered chunks and tags, swapped chunks, a tampered size, truncated files, an
 * unconfigured master key and rewrapAll; here: the module's own functions, byte for byte.
 */
import assert from "node:assert/strict";
import { createCipheriv, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { describe, it } from "node:test";
import type { ByteRange } from "../../../models/storage/blob-store.ts";
import {
	CHUNK_SIZE,
	decryptRange,
	EnvelopeEncryptor,
	envelopeLength,
	HEADER_SIZE,
	Keyring,
	masterKeyId,
	needsRewrap,
	openEnvelope,
	openSecret,
	parseHeader,
	rewrapHeader,
	sealSecret
} from "../../../models/storage/envelope-crypto.ts";
import { IntegrityError } from "../../../models/shared/errors.ts";

const TAG = 16;
const SEALED = CHUNK_SIZE + TAG;
const keyA = randomBytes(32);
const keyB = randomBytes(32);
/** The storage key every envelope here is bound to, and another blob's. */
const BLOB_KEY = "enc-00112233445566778899aabbccddeeff";
const OTHER_BLOB_KEY = "enc-ffeeddccbbaa99887766554433221100";

/** Encrypts `plaintext`, fed in `pieceSize` pieces; returns the envelope as a writer stores it. */
async function seal(plaintext: Buffer, keyring = new Keyring(keyA), pieceSize = 10_000): Promise<Buffer> {
	const pieces: Buffer[] = [];
	for (let offset = 0; offset < plaintext.length; offset += pieceSize) pieces.push(plaintext.subarray(offset, offset + pieceSize));
	const encryptor = new EnvelopeEncryptor(keyring, BLOB_KEY);
	const stream = await buffer(Readable.from(pieces).pipe(encryptor));
	return Buffer.concat([encryptor.header, stream.subarray(HEADER_SIZE)]);
}

/** Decrypts `range` of a stored envelope; records what it read. Resolves with the bytes or the failure. */
async function open(stored: Buffer, range?: ByteRange, keyring = new Keyring(keyA), read = (start: number, end: number) => stored.subarray(start, end + 1)) {
	const reads: [number, number][] = [];
	const envelope = openEnvelope(stored.subarray(0, HEADER_SIZE), keyring, BLOB_KEY);
	const pieces: Buffer[] = [];
	const stream = decryptRange(envelope, range, (start, end) => {
		reads.push([start, end]);
		return Readable.from([read(start, end)]);
	});
	stream.on("data", (piece: Buffer) => pieces.push(piece));
	const error = await new Promise<unknown>(resolve => stream.on("error", resolve).on("end", () => resolve(undefined)));
	return { plaintext: Buffer.concat(pieces), error, reads };
}

function flipped(bytes: Buffer, offset: number): Buffer {
	const copy = Buffer.from(bytes);
	copy[offset]! ^= 0x01;
	return copy;
}

/** `error` is an IntegrityError (500, INTEGRITY_ERROR) whose message (and data) match. */
function assertIntegrity(error: unknown, message: RegExp, data?: unknown) {
	assert.ok(error instanceof IntegrityError, String(error));
	assert.equal(error.code, 500);
	assert.equal(error.type, "INTEGRITY_ERROR");
	assert.match(error.message, message);
	if (data !== undefined) assert.deepEqual(error.data, data);
}

const throwsIntegrity = (fn: () => unknown, message: RegExp, data?: unknown) =>
	assert.throws(fn, error => (assertIntegrity(error, message, data), true));

describe("envelope encryption", () => {
	for (const size of [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17]) {
		it(`round-trips ${size} bytes with the documented layout`, async () => {
			const plaintext = randomBytes(size);
			const stored = await seal(plaintext);
			const chunks = Math.max(1, Math.ceil(size / CHUNK_SIZE));
			assert.equal(stored.length, HEADER_SIZE + size + chunks * TAG);
			assert.equal(envelopeLength(openEnvelope(stored.subarray(0, HEADER_SIZE), new Keyring(keyA), BLOB_KEY)), stored.length);
			assert.deepEqual(parseHeader(stored.subarray(0, HEADER_SIZE)), { version: 2, keyId: masterKeyId(keyA), chunkSize: CHUNK_SIZE, plaintextSize: size });
			const { plaintext: decrypted, error } = await open(stored);
			assert.equal(error, undefined);
			assert.ok(decrypted.equals(plaintext));
		});
	}

	it("gives the same plaintext a new data key, so other ciphertext, every time", async () => {
		const plaintext = Buffer.alloc(1000, 7);
		const [first, second] = await Promise.all([seal(plaintext), seal(plaintext)]);
		assert.notDeepEqual(first.subarray(HEADER_SIZE), second.subarray(HEADER_SIZE));
		const dataKey = (stored: Buffer) => openEnvelope(stored.subarray(0, HEADER_SIZE), new Keyring(keyA), BLOB_KEY).dataKey;
		assert.notDeepEqual(dataKey(first), dataKey(second));
		assert.equal(first.includes(plaintext.subarray(0, 32)), false);
	});

	it("emits a zero placeholder header that can never pass as a valid one", async () => {
		const encryptor = new EnvelopeEncryptor(new Keyring(keyA), BLOB_KEY);
		assert.throws(() => encryptor.header, /only once the plaintext has ended/);
		const stream = await buffer(Readable.from([randomBytes(10)]).pipe(encryptor));
		assert.deepEqual(stream.subarray(0, HEADER_SIZE), Buffer.alloc(HEADER_SIZE));
		throwsIntegrity(() => parseHeader(stream.subarray(0, HEADER_SIZE)), /bad header/);
		assert.equal(encryptor.header.subarray(0, 5).toString("latin1"), "IMGE\u0002");
	});

	it("decrypts a range, reading only the chunks it overlaps", async () => {
		const plaintext = randomBytes(3 * CHUNK_SIZE + 100);
		const stored = await seal(plaintext);
		const last = plaintext.length - 1;
		for (const [start, end, firstChunk, lastChunk] of [
			[0, 0, 0, 0],
			[CHUNK_SIZE - 1, CHUNK_SIZE, 0, 1],
			[CHUNK_SIZE, CHUNK_SIZE, 1, 1],
			[CHUNK_SIZE + 5, 3 * CHUNK_SIZE + 1, 1, 3],
			[last, last, 3, 3],
			[0, last, 0, 3]
		] as const) {
			const { plaintext: part, error, reads } = await open(stored, { start, end });
			assert.equal(error, undefined);
			assert.ok(part.equals(plaintext.subarray(start, end + 1)), `${start}-${end}`);
			const readEnd = Math.min(HEADER_SIZE + (lastChunk + 1) * SEALED, stored.length) - 1;
			assert.deepEqual(reads, [[HEADER_SIZE + firstChunk * SEALED, readEnd]], `${start}-${end}`);
		}
	});

	it("refuses every header field that was changed", async () => {
		const header = (await seal(randomBytes(100))).subarray(0, HEADER_SIZE);
		const keyring = new Keyring(keyA);
		throwsIntegrity(() => openEnvelope(flipped(header, 0), keyring, BLOB_KEY), /Not an encrypted blob \(bad header\)/);
		throwsIntegrity(() => openEnvelope(header.subarray(0, HEADER_SIZE - 1), keyring, BLOB_KEY), /bad header/);
		throwsIntegrity(() => openEnvelope(Buffer.concat([header, Buffer.alloc(1)]), keyring, BLOB_KEY), /bad header/);
		throwsIntegrity(() => openEnvelope(flipped(header, 4), keyring, BLOB_KEY), /Unsupported encrypted blob version 3/);
		const downgraded = Buffer.from(header);
		downgraded[4] = 1;
		throwsIntegrity(() => openEnvelope(downgraded, keyring, BLOB_KEY), /header failed authentication/, { keyId: masterKeyId(keyA) });
		throwsIntegrity(() => openEnvelope(flipped(header, 5), keyring, BLOB_KEY), /which is not configured/);
		// chunk size (13..16), plaintext size (17..24), wrap IV, wrapped key, wrap tag
		for (const offset of [16, 17, 24, 25, 36, 37, 68, 69, HEADER_SIZE - 1]) {
			throwsIntegrity(() => openEnvelope(flipped(header, offset), keyring, BLOB_KEY), /header failed authentication/, { keyId: masterKeyId(keyA) });
		}
	});

	it("fails a tampered chunk or tag at that chunk, after the plaintext before it", async () => {
		const plaintext = randomBytes(2 * CHUNK_SIZE + 10);
		const stored = await seal(plaintext);
		for (const [offset, chunk] of [
			[HEADER_SIZE, 0],
			[HEADER_SIZE + SEALED - 1, 0],
			[HEADER_SIZE + SEALED + 123, 1],
			[stored.length - TAG - 1, 2]
		] as const) {
			const { plaintext: before, error } = await open(flipped(stored, offset));
			assertIntegrity(error, new RegExp(`chunk ${chunk} failed authentication`), { chunk });
			assert.ok(before.equals(plaintext.subarray(0, chunk * CHUNK_SIZE)));
		}
	});

	it("detects a ciphertext stream cut at a chunk boundary or with trailing bytes", async () => {
		const stored = await seal(randomBytes(2 * CHUNK_SIZE + 10));
		const cut = await open(stored, undefined, undefined, start => stored.subarray(start, HEADER_SIZE + SEALED));
		assertIntegrity(cut.error, /truncated at chunk 1/, { chunk: 1 });
		const ranged = await open(stored, { start: 0, end: CHUNK_SIZE }, undefined, start => stored.subarray(start, HEADER_SIZE + SEALED));
		assertIntegrity(ranged.error, /truncated at chunk 1/);
		const padded = await open(stored, { start: 0, end: 10 }, undefined, start => stored.subarray(start, HEADER_SIZE + SEALED + 1));
		assertIntegrity(padded.error, /trailing bytes/);
		assert.equal(padded.plaintext.length, 11, "the chunk itself was sound");
	});

	it("fixes each master key's id, and accepts only 32-byte keys", () => {
		assert.match(masterKeyId(keyA), /^[0-9a-f]{16}$/);
		assert.equal(masterKeyId(Buffer.from(keyA)), masterKeyId(keyA));
		assert.notEqual(masterKeyId(keyB), masterKeyId(keyA));
		assert.equal(new Keyring(keyA, [keyB]).currentId, masterKeyId(keyA));
		for (const bad of [randomBytes(16), randomBytes(33), Buffer.alloc(0)]) {
			assert.throws(() => new Keyring(bad), /must be 32 bytes, got/);
			assert.throws(() => new Keyring(keyA, [bad]), /must be 32 bytes, got/);
		}
		throwsIntegrity(() => new Keyring(keyA).key(masterKeyId(keyB)), /master key [0-9a-f]{16}, which is not configured/, { keyId: masterKeyId(keyB) });
	});

	it("reads with an old master key, and fails a header naming the wrong configured key", async () => {
		const plaintext = randomBytes(CHUNK_SIZE + 1);
		const stored = await seal(plaintext, new Keyring(keyA));
		const rotated = new Keyring(keyB, [keyA]);
		assert.ok((await open(stored, undefined, rotated)).plaintext.equals(plaintext));
		// The same header claiming to be wrapped by keyB, which rotated also holds.
		const renamed = Buffer.from(stored.subarray(0, HEADER_SIZE));
		Buffer.from(masterKeyId(keyB), "hex").copy(renamed, 5);
		throwsIntegrity(() => openEnvelope(renamed, rotated, BLOB_KEY), /header failed authentication/, { keyId: masterKeyId(keyB) });
	});

	it("re-wraps a header under the current master key, leaving the chunks valid", async () => {
		const plaintext = randomBytes(2 * CHUNK_SIZE + 3);
		const stored = await seal(plaintext, new Keyring(keyA));
		const oldHeader = stored.subarray(0, HEADER_SIZE);
		const newHeader = rewrapHeader(oldHeader, new Keyring(keyB, [keyA]), BLOB_KEY);
		assert.equal(newHeader.length, HEADER_SIZE);
		assert.deepEqual(parseHeader(newHeader), { version: 2, keyId: masterKeyId(keyB), chunkSize: CHUNK_SIZE, plaintextSize: plaintext.length });
		assert.deepEqual(openEnvelope(newHeader, new Keyring(keyB), BLOB_KEY).dataKey, openEnvelope(oldHeader, new Keyring(keyA), BLOB_KEY).dataKey);

		const rewrapped = Buffer.concat([newHeader, stored.subarray(HEADER_SIZE)]);
		assert.ok((await open(rewrapped, undefined, new Keyring(keyB))).plaintext.equals(plaintext));
		throwsIntegrity(() => openEnvelope(oldHeader, new Keyring(keyB), BLOB_KEY), /not configured/);
		throwsIntegrity(() => rewrapHeader(flipped(oldHeader, 40), new Keyring(keyB, [keyA]), BLOB_KEY), /header failed authentication/);
	});

	it("binds a header to its blob: copied over another blob, it does not open", async () => {
		const header = (await seal(randomBytes(100))).subarray(0, HEADER_SIZE);
		const keyring = new Keyring(keyA);
		assert.equal(openEnvelope(header, keyring, BLOB_KEY).plaintextSize, 100);
		throwsIntegrity(() => openEnvelope(header, keyring, OTHER_BLOB_KEY), /header failed authentication/, { keyId: masterKeyId(keyA) });
		assert.equal(needsRewrap(header, keyring), false);
		assert.equal(needsRewrap(header, new Keyring(keyB, [keyA])), true, "wrapped by an older master key");
	});

	it("still opens a version 1 header (not bound to its blob) and binds it when re-wrapping", async () => {
		const keyring = new Keyring(keyA);
		const plaintext = randomBytes(1000);
		const stored = await seal(plaintext, keyring);
		const legacy = versionOneHeader(stored.subarray(0, HEADER_SIZE), openEnvelope(stored.subarray(0, HEADER_SIZE), keyring, BLOB_KEY).dataKey);
		assert.equal(parseHeader(legacy).version, 1);
		assert.equal(openEnvelope(legacy, keyring, OTHER_BLOB_KEY).plaintextSize, 1000, "unbound: any key opens it");
		assert.equal(needsRewrap(legacy, keyring), true, "rotation upgrades it even under the current master key");
		const upgraded = rewrapHeader(legacy, keyring, BLOB_KEY);
		assert.equal(parseHeader(upgraded).version, 2);
		assert.equal(needsRewrap(upgraded, keyring), false);
		throwsIntegrity(() => openEnvelope(upgraded, keyring, OTHER_BLOB_KEY), /header failed authentication/);
		assert.ok((await open(Buffer.concat([upgraded, stored.subarray(HEADER_SIZE)]))).plaintext.equals(plaintext));
	});
});

/** The header imgmesh wrote before envelopes were bound to their blob: version 1, the key wrap's AAD its first 25 bytes. */
function versionOneHeader(current: Buffer, dataKey: Buffer): Buffer {
	const authenticated = Buffer.from(current.subarray(0, 25));
	authenticated[4] = 1;
	const iv = randomBytes(12);
	const cipher = createCipheriv("aes-256-gcm", keyA, iv).setAAD(authenticated);
	const wrapped = Buffer.concat([cipher.update(dataKey), cipher.final()]);
	return Buffer.concat([authenticated, iv, wrapped, cipher.getAuthTag()]);
}

describe("sealed secrets", () => {
	it("open for their context only, under the current or an older master key", () => {
		const sealed = sealSecret("AIza-some-api-key", "job-1", new Keyring(keyA));
		assert.equal(sealed.includes("AIza"), false);
		assert.notEqual(sealSecret("AIza-some-api-key", "job-1", new Keyring(keyA)), sealed, "a fresh IV each time");
		assert.equal(openSecret(sealed, "job-1", new Keyring(keyA)), "AIza-some-api-key");
		assert.equal(openSecret(sealed, "job-1", new Keyring(keyB, [keyA])), "AIza-some-api-key", "after a rotation");
		assert.throws(() => openSecret(sealed, "job-2", new Keyring(keyA)), IntegrityError, "moved to another job");
		assert.throws(() => openSecret(sealed, "job-1", new Keyring(keyB)), /not configured/);
		const bytes = Buffer.from(sealed, "base64url");
		bytes[bytes.length - 20]! ^= 1;
		assert.throws(() => openSecret(bytes.toString("base64url"), "job-1", new Keyring(keyA)), IntegrityError);
		assert.throws(() => openSecret("c2hvcnQ", "job-1", new Keyring(keyA)), IntegrityError);
	});
});
