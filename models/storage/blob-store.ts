/**
 * The blob store contract. One adapter per backend (`fs` now, GridFS for distributed mode);
 * the storage service is the only caller, and one contract test suite covers every adapter.
 *
 * Plain blobs are content-addressed (key `sha256-<hex>`): identical bytes are stored once.
 * Encrypted blobs get a random key (`enc-<id>`) and are never deduplicated. Every blob keeps
 * the set of references (image ids) that use it, so put and release are idempotent per
 * reference and a blob is deleted when its last reference goes.
 */
import type { Readable } from "node:stream";

export interface BlobRef {
	key: string;
	/** SHA-256 of the plaintext, hex. */
	sha256: string;
	/** Plaintext size in bytes. */
	size: number;
	encrypted: boolean;
}

export interface PutOptions {
	encrypt: boolean;
	/** Who references the blob (an image id). Putting again with the same ref changes nothing. */
	ref: string;
	/** Abort with PayloadTooLargeError past this many plaintext bytes. */
	maxBytes: number;
}

/** Inclusive byte range of the plaintext, as in HTTP Range. */
export interface ByteRange {
	start: number;
	end: number;
}

export interface BlobInfo {
	key: string;
	size: number;
	encrypted: boolean;
	refs: number;
}

export interface RewrapReport {
	rewrapped: number;
	/** Blobs left as they were, with the reason. */
	failed: { key: string; error: string }[];
}

export interface BlobStore {
	/**
	 * Streams `source` into the store. Nothing is visible until the bytes are complete and
	 * durable; on any error (source error, size limit) nothing is left behind.
	 */
	put(source: Readable, options: PutOptions): Promise<BlobRef>;
	/**
	 * Streams the plaintext (or the range of it). For encrypted blobs a tampered chunk makes the
	 * stream fail with IntegrityError before any byte of that chunk is emitted.
	 */
	open(key: string, range?: ByteRange): Promise<Readable>;
	stat(key: string): Promise<BlobInfo | null>;
	/** Drops one reference; deletes the blob when none remain. Returns true if the blob is gone. */
	release(key: string, ref: string): Promise<boolean>;
	/**
	 * Re-wraps the data key of every encrypted blob not yet under the current master key (after a
	 * rotation, with the old key among the keyring's old keys); running it again is harmless. A
	 * blob that fails (corrupt, or under a key the keyring lacks) is listed and skipped, so one bad
	 * blob cannot keep the old master key in service forever.
	 */
	rewrapAll(): Promise<RewrapReport>;
	ping(): Promise<boolean>;
	close(): Promise<void>;
}
