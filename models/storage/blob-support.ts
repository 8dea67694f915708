/**
 * What every BlobStore adapter shares: the key format, the metering of uploads and the range
 * rules, so that keys, limits and ranges mean the same whatever holds the bytes.
 */
import { createHash, randomBytes } from "node:crypto";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { ByteRange, RewrapReport, ScrubOptions, ScrubReport } from "./blob-store.ts";
import { IntegrityError, NotFoundError, PayloadTooLargeError, RangeNotSatisfiableError } from "../shared/errors.ts";

// Encrypted ids are hex, not base64url, so that two keys never differ only by letter case
// (file names would collide on a case-insensitive file system).
const ENCRYPTED_PREFIX = "enc-";
const KEY_PATTERN = /^(?:sha256-(?<sha256>[0-9a-f]{64})|enc-(?<enc>[0-9a-f]{32}))$/;

/** The key of plain bytes: their hash, so identical bytes share one blob. */
export function plainKey(sha256: string): string {
	return `sha256-${sha256}`;
}

/** A fresh random key: encrypted blobs are never shared. */
export function newEncryptedKey(): string {
	return `${ENCRYPTED_PREFIX}${randomBytes(16).toString("hex")}`;
}

export function isEncryptedKey(key: string): boolean {
	return key.startsWith(ENCRYPTED_PREFIX);
}

/** The hex id inside a well-formed key; null for anything else. */
export function blobIdOf(key: string): string | null {
	const groups = KEY_PATTERN.exec(key)?.groups;
	return groups ? (groups.sha256 ?? groups.enc!) : null;
}

/** Counts and hashes the plaintext on its way to storage, and stops it past the size limit. */
export class PlaintextMeter extends Transform {
	readonly #hash = createHash("sha256");
	readonly #maxBytes: number;
	#size = 0;

	constructor(maxBytes: number) {
		super();
		this.#maxBytes = maxBytes;
	}

	/** Size and SHA-256 of everything that went through; call once, after the end. */
	result(): { size: number; sha256: string } {
		return { size: this.#size, sha256: this.#hash.digest("hex") };
	}

	override _transform(data: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
		this.#size += data.length;
		if (this.#size > this.#maxBytes) return callback(new PayloadTooLargeError(this.#maxBytes));
		this.#hash.update(data);
		callback(null, data);
	}
}

/**
 * The whole plaintext of a plain blob from `source`, verified against the size and SHA-256 it was
 * stored with. The last piece is held back until the hash matched, so a reader of changed bytes
 * (an HTTP client above all) gets a stream that fails short of its end, never a complete wrong
 * body. On any IntegrityError (a mismatch here, or a damaged chunk the backend found) `onCorrupt`
 * runs before the stream fails, so the blob is marked before anyone can ask for it again.
 */
export function verifiedPlaintext(
	source: Readable,
	expected: { sha256: string; size: number },
	onCorrupt: () => Promise<void>
): Readable {
	return Readable.from(
		(async function* () {
			const hash = createHash("sha256");
			let size = 0;
			let held: Buffer | null = null;
			try {
				for await (const piece of source as AsyncIterable<Buffer>) {
					size += piece.length;
					if (size > expected.size) throw new IntegrityError("A stored blob is longer than its recorded size", { size: expected.size });
					hash.update(piece);
					if (held) yield held;
					held = piece;
				}
				if (size !== expected.size) throw new IntegrityError("A stored blob is shorter than its recorded size", { size: expected.size, read: size });
				const actual = hash.digest("hex");
				if (actual !== expected.sha256) throw new IntegrityError("A stored blob does not match its SHA-256", { sha256: expected.sha256, actual });
			} catch (err) {
				// Marking is best effort: the reader gets the IntegrityError whatever happens to the mark.
				if (err instanceof IntegrityError) await onCorrupt().catch(() => {});
				throw err;
			}
			if (held) yield held;
		})(),
		{ objectMode: false }
	);
}

/** SHA-256 (hex) of everything `stream` gives. */
export async function sha256Of(stream: Readable): Promise<string> {
	const hash = createHash("sha256");
	for await (const piece of stream as AsyncIterable<Buffer>) hash.update(piece);
	return hash.digest("hex");
}

/**
 * BlobStore.importBlob's first check, on the plaintext as it arrived: the size its source
 * recorded, and for a plain key the SHA-256 it names.
 */
export function importedPlaintextCheck(key: string, blob: { size: number; encrypted: boolean }, received: { size: number; sha256: string }): void {
	if (received.size !== blob.size || (!blob.encrypted && plainKey(received.sha256) !== key)) {
		throw new IntegrityError(`The plaintext of blob ${key} read for the copy is not what its source recorded`, { key, size: blob.size, read: received.size });
	}
}

/**
 * Checks up to `options.limit` of `keys` (the store's keys after `options.after`, in order, at
 * most limit + 1 of them, so that the last call knows it is the last) by reading each whole
 * through `open`, which verifies what it streams (and fails with IntegrityError for a blob whose
 * bytes are gone). A key not found was released since it was listed.
 */
export async function scrubKeys(
	keys: string[],
	options: ScrubOptions,
	open: (key: string) => Promise<Readable>
): Promise<ScrubReport> {
	const report: ScrubReport = { checked: 0, bytes: 0, corrupt: [], next: null };
	const batch = keys.slice(0, options.limit);
	for (const key of batch) {
		try {
			for await (const piece of (await open(key)) as AsyncIterable<Buffer>) {
				report.bytes += piece.length;
				await options.pace(piece.length);
			}
		} catch (err) {
			if (err instanceof IntegrityError) report.corrupt.push({ key, error: err.message });
			else if (!(err instanceof NotFoundError)) throw err;
		}
		report.checked++;
	}
	report.next = keys.length > batch.length ? batch.at(-1)! : null;
	return report;
}

/**
 * A pace function (ScrubOptions.pace) that keeps a reader under `bytesPerSecond` on average,
 * sleeping whenever it got ahead: a scrub must leave the disk to the readers it serves.
 */
export function pacer(bytesPerSecond: number): (bytes: number) => Promise<void> {
	const start = performance.now();
	let total = 0;
	return async bytes => {
		total += bytes;
		const ahead = (total / bytesPerSecond) * 1000 - (performance.now() - start);
		if (ahead > 0) await sleep(ahead);
	};
}

/**
 * The range to send of a blob of `size` bytes (undefined: all of it). As in HTTP, an end past
 * the last byte means "to the end"; a start past it cannot be satisfied.
 */
export function satisfiableRange(range: ByteRange | undefined, size: number): ByteRange | undefined {
	if (!range) return undefined;
	if (range.start >= size || range.end < range.start) throw new RangeNotSatisfiableError(size);
	return { start: range.start, end: Math.min(range.end, size - 1) };
}

/**
 * A stored blob read whole into one buffer of its known size. Collecting the chunks and then
 * concatenating them (stream/consumers' buffer()) holds the bytes twice at the end: 400 MB of
 * memory for the 200 MB original a worker decodes.
 */
export async function readWhole(stream: Readable, size: number): Promise<Buffer> {
	const bytes = Buffer.allocUnsafe(size);
	let filled = 0;
	for await (const chunk of stream as AsyncIterable<Buffer>) {
		if (filled + chunk.length > size) {
			stream.destroy();
			throw new IntegrityError("A stored blob is longer than its recorded size", { size });
		}
		chunk.copy(bytes, filled);
		filled += chunk.length;
	}
	if (filled !== size) throw new IntegrityError("A stored blob is shorter than its recorded size", { size, read: filled });
	return bytes;
}

/**
 * Re-wraps the data key of every encrypted blob in `keys` with `rewrap` (true when it changed a
 * header). A blob whose header no known key opens is reported, not fatal: the rest still rotate.
 */
export async function rewrapEach(keys: string[], rewrap: (key: string) => Promise<boolean>): Promise<RewrapReport> {
	const report: RewrapReport = { rewrapped: 0, failed: [] };
	for (const key of keys) {
		try {
			if (await rewrap(key)) report.rewrapped++;
		} catch (err) {
			if (!(err instanceof IntegrityError)) throw err;
			report.failed.push({ key, error: err.message });
		}
	}
	return report;
}
