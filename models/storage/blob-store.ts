/**
 * The blob store contract. One adapter per backend (`fs` now, GridFS for distributed mode); the
 * storage service is the only writer (nodes without it only `open` and read, through
 * mixins/blob-reader.mixin.ts), and one contract test suite covers every adapter.
 *
 * Plain blobs are content-addressed (key `sha256-<hex>`): identical bytes are stored once.
 * Encrypted blobs get a random key (`enc-<id>`) and are never deduplicated. Every blob keeps
 * the set of references (image ids) that use it, so put and release are idempotent per
 * reference and a blob is deleted when its last reference goes.
 *
 * Every reference carries the time it was last added (a put with the same ref again refreshes it):
 * the garbage collector (services/storage.service.ts) lists references older than its grace period,
 * asks their owners which are still used, and drops the others with `releaseStale`, which keeps a
 * reference re-added since it was listed. Work in flight between a put and the record that uses it
 * is therefore never collected.
 *
 * Integrity: an encrypted blob authenticates every chunk it serves. A plain blob's key is the
 * SHA-256 of its bytes, so a full read verifies that hash as it streams and holds back its last
 * piece until the hash matched: bytes changed on storage cut the stream short with IntegrityError,
 * never a complete wrong body. The blob is then marked corrupt in the store's index and refused at
 * once on every later read (ranges included: a range alone cannot check the hash), until a put of
 * the same bytes replaces it. `scrub` checks every blob without waiting for a reader.
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
	/**
	 * Who references the blob (an image id). Putting again with the same ref changes nothing, except
	 * that the same bytes put again replace a plain blob marked corrupt (its repair).
	 */
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
	/** Set (ISO time) once a full read or a scrub found a plain blob's bytes changed; absent while sound. */
	corruptAt?: string;
}

export interface ScrubOptions {
	/** Continue after this key (blobs are checked in key order); from the first when absent. */
	after?: string;
	/** Check at most this many blobs in this call. */
	limit: number;
	/** Awaited after every piece read with its length in bytes: how the caller limits the rate. */
	pace(bytes: number): Promise<void>;
}

export interface ScrubReport {
	checked: number;
	/** Plaintext bytes read and verified. */
	bytes: number;
	/** Blobs that failed, with the reason. */
	corrupt: { key: string; error: string }[];
	/** The last key checked, to pass as `after` to continue; null once the last blob was checked. */
	next: string | null;
}

export interface RewrapReport {
	rewrapped: number;
	/** Blobs left as they were, with the reason. */
	failed: { key: string; error: string }[];
}

/** A reference as listed for the garbage collector. */
export interface RefEntry {
	key: string;
	ref: string;
	/** When the reference was last added. */
	addedAt: Date;
	/** Plaintext size of the blob, in bytes. */
	size: number;
}

/** Where a listing of references stands: references are listed in (key, ref) order. */
export interface RefCursor {
	key: string;
	ref: string;
}

export interface ListRefsOptions {
	/** Continue after this reference; from the first when absent. */
	after?: RefCursor;
	/** Only references last added before this time. */
	olderThan: Date;
	limit: number;
}

export interface RefPage {
	refs: RefEntry[];
	/** Pass as `after` to continue; null once the last reference was listed. */
	next: RefCursor | null;
}

export interface StaleRelease {
	/** The reference was dropped: it had not been added again since `addedBefore`. */
	released: boolean;
	/** The blob's last reference went with it, and the blob with it. */
	deleted: boolean;
}

/** A blob of another store as a migration carries it over (BlobStore.importBlob). */
export interface ImportedBlob {
	encrypted: boolean;
	/** Plaintext size in bytes. */
	size: number;
	/** Every reference, with when it was last added: the garbage collector's grace periods carry over. */
	refs: { ref: string; addedAt: Date }[];
}

export interface ImportResult {
	/** False: the blob was here already, sound, and only its references were added. */
	copied: boolean;
	/** SHA-256 of the plaintext as read back from this store after the copy (absent when not copied). */
	sha256?: string;
}

/** The headers the bucket should answer a presigned GET with (they are signed into the URL). */
export interface PresignedResponse {
	contentType: string;
	contentDisposition: string;
	cacheControl: string;
}

export interface BlobStore {
	/**
	 * Streams `source` into the store. Nothing is visible until the bytes are complete and
	 * durable; on any error (source error, size limit) nothing is left behind.
	 */
	put(source: Readable, options: PutOptions): Promise<BlobRef>;
	/**
	 * Streams the plaintext (or the range of it). For encrypted blobs a tampered chunk makes the
	 * stream fail with IntegrityError before any byte of that chunk is emitted; a full read of a plain
	 * blob whose hash does not match fails with IntegrityError before its last piece and marks the
	 * blob corrupt. A blob marked corrupt fails at once with IntegrityError.
	 */
	open(key: string, range?: ByteRange): Promise<Readable>;
	stat(key: string): Promise<BlobInfo | null>;
	/** Drops one reference; deletes the blob when none remain. Returns true if the blob is gone. */
	release(key: string, ref: string): Promise<boolean>;
	/** Up to `limit` references last added before `olderThan`, in (key, ref) order after `after`. */
	listRefs(options: ListRefsOptions): Promise<RefPage>;
	/**
	 * Drops the reference as `release` does, but only if it was last added before `addedBefore`: a
	 * put that re-held it since the garbage collector listed it keeps it.
	 */
	releaseStale(key: string, ref: string, addedBefore: Date): Promise<StaleRelease>;
	/**
	 * Deletes what unfinished uploads left behind (temp files, chunks of no blob) begun before
	 * `olderThan`, so an upload still under way is never touched; returns how many it deleted.
	 */
	sweepUnfinished(olderThan: Date): Promise<number>;
	/**
	 * Re-wraps the data key of every encrypted blob not yet under the current master key (after a
	 * rotation, with the old key among the keyring's old keys); running it again is harmless. A
	 * blob that fails (corrupt, or under a key the keyring lacks) is listed and skipped, so one bad
	 * blob cannot keep the old master key in service forever.
	 */
	rewrapAll(): Promise<RewrapReport>;
	/**
	 * Verifies up to `limit` blobs after `after` by reading each whole (plain: its SHA-256, marking it
	 * corrupt on a mismatch; encrypted: every chunk decrypted, which authenticates it).
	 */
	scrub(options: ScrubOptions): Promise<ScrubReport>;
	/**
	 * Only stores whose bytes a client can fetch itself (S3): a short-lived URL that GETs a plain
	 * blob's bytes straight from the backend, answered with `response`'s headers. Null for a blob
	 * that is missing, encrypted (its bytes there are ciphertext) or marked corrupt.
	 */
	presignedUrl?(key: string, response: PresignedResponse): Promise<string | null>;
	/**
	 * What a migration between backends calls on its target: stores another store's blob under the SAME
	 * key, so that images and variant indexes need no change. `open` gives the plaintext; it is only
	 * called when the blob is not here yet: a blob already here and sound (not corrupt, same size) is
	 * not copied again, so a migration run twice or resumed after a crash copies each blob once. A
	 * copy is checked before it becomes visible: its size, the SHA-256 a plain key names, and the
	 * bytes read back from the backend against the hash of what was sent; a mismatch stores nothing
	 * (IntegrityError). An encrypted blob is sealed afresh (a new data key) under this store's
	 * keyring, its envelope bound to the same key. The references are added either way, with their times.
	 */
	importBlob(key: string, open: () => Promise<Readable>, blob: ImportedBlob): Promise<ImportResult>;
	ping(): Promise<boolean>;
	close(): Promise<void>;
}

/** What a node without the storage service does with a store it opened itself: read (mixins/blob-reader.mixin.ts). */
export type BlobReader = Pick<BlobStore, "open" | "stat" | "ping" | "close">;
