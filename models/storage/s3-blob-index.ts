/**
 * The index of an S3BlobStore: which bucket object holds each blob, its references, its envelope
 * header and whether it was found corrupt. S3 has no transactions and no way to change a set of
 * references atomically, so this bookkeeping lives in the node's metadata database (SQLite in
 * embedded mode, MongoDB when MONGO_URL is set), where one reference change is one atomic write;
 * the bucket holds only immutable objects, each written once under a fresh name.
 */
import type { BlobRef, ListRefsOptions, RefPage } from "./blob-store.ts";

/** One blob as the index records it. */
export interface IndexedBlob {
	key: string;
	sha256: string;
	size: number;
	encrypted: boolean;
	/** The bucket object holding the bytes (its name under the store's prefix). */
	object: string;
	/** The envelope header of an encrypted blob; null for a plain one. */
	header: Buffer | null;
	/** ISO time a full read or a scrub found the bytes of `object` changed; null while sound. */
	corruptAt: string | null;
	refs: number;
}

export interface Attached {
	/** Whether the new object is now the blob's (else the same bytes were stored already). */
	kept: boolean;
	/** The corrupt object it replaced, to delete. */
	replaced?: string;
}

export interface Detached {
	/** Whether this call dropped the reference (it was there, and old enough). */
	released: boolean;
	/** Whether the blob is gone (it had no other reference, or was never there). */
	gone: boolean;
	/** The object of a blob that went with this call, to delete. */
	object?: string;
}

export interface S3BlobIndex {
	find(key: string): Promise<IndexedBlob | null>;
	/**
	 * Records `ref` on the blob, creating it (held by `object`) when the key is new, or pointing it
	 * at `object` when it was found corrupt: for a plain blob the same key means the same bytes, so
	 * the new upload is its repair. The reference's time (for the garbage collector) becomes
	 * `addedAt` (now, unless a migration carries the time over), whether it is new or added again.
	 * Atomic per key, across processes.
	 */
	attach(blob: BlobRef, object: string, header: Buffer | null, ref: string, addedAt?: Date): Promise<Attached>;
	/**
	 * Drops `ref` (only if last added before `addedBefore`, when given); removes the blob when no
	 * reference remains. Atomic per key, across processes.
	 */
	detach(key: string, ref: string, addedBefore?: Date): Promise<Detached>;
	/** BlobStore.listRefs. */
	listRefs(options: ListRefsOptions): Promise<RefPage>;
	/** Marks the blob corrupt, only while `object` is still its object (a put may have repaired it). */
	markCorrupt(key: string, object: string): Promise<void>;
	/** Replaces an encrypted blob's header, only while it is still `previous` (another node may rotate too). */
	replaceHeader(key: string, previous: Buffer, header: Buffer): Promise<void>;
	encryptedKeys(): Promise<string[]>;
	/** Up to `limit` keys after `after`, in key order. */
	keysAfter(after: string, limit: number): Promise<string[]>;
	/** Which of `objects` a blob points at (the orphan sweep keeps those). */
	objectsInUse(objects: string[]): Promise<Set<string>>;
	ping(): Promise<boolean>;
	close(): Promise<void>;
}
