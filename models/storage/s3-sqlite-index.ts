/**
 * The S3 store's index in a SQLite file (embedded mode: one node owns the bucket prefix). Each
 * reference change is one IMMEDIATE transaction, so it is atomic even between processes sharing
 * the file.
 */
import type { DatabaseSync } from "node:sqlite";
import type { BlobRef, ListRefsOptions, RefPage } from "./blob-store.ts";
import type { Attached, Detached, IndexedBlob, S3BlobIndex } from "./s3-blob-index.ts";
import { blobIdOf } from "./blob-support.ts";
import { listSqliteRefs } from "./sqlite-ref-list.ts";
import { closeDatabase, migrate, openDatabase, transaction } from "../db/sqlite.ts";

/** Schema versions, in order (see migrate). Append; never edit a released step. */
const MIGRATIONS = [
	`CREATE TABLE s3_blobs (
		key TEXT PRIMARY KEY,
		sha256 TEXT NOT NULL,
		size INTEGER NOT NULL,
		encrypted INTEGER NOT NULL,
		object TEXT NOT NULL UNIQUE,
		header BLOB,
		corrupt_at TEXT
	) STRICT;
	CREATE TABLE s3_refs (
		key TEXT NOT NULL REFERENCES s3_blobs (key) ON DELETE CASCADE,
		ref TEXT NOT NULL,
		PRIMARY KEY (key, ref)
	) STRICT, WITHOUT ROWID;`,
	// When each reference was last added (ms since the epoch), where the garbage collector's grace
	// period starts. References older than this step count from the step: later, never earlier.
	`ALTER TABLE s3_refs ADD COLUMN added_at INTEGER NOT NULL DEFAULT 0;
	UPDATE s3_refs SET added_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;`
];

/** Later than any reference's time: a detach without a cutoff drops the reference whenever it was added. */
const ANY_TIME = new Date(8.64e15);

interface BlobRow {
	key: string;
	sha256: string;
	size: number;
	encrypted: number;
	object: string;
	header: Uint8Array | null;
	corrupt_at: string | null;
	refs: number;
}

export class SqliteS3BlobIndex implements S3BlobIndex {
	readonly #db: DatabaseSync;

	constructor(file: string) {
		this.#db = openDatabase(file);
		// A lost commit of a reference could let a release delete bytes another image still uses.
		this.#db.exec("PRAGMA synchronous = FULL");
		migrate(this.#db, "s3_blobs", MIGRATIONS);
	}

	async find(key: string): Promise<IndexedBlob | null> {
		if (blobIdOf(key) === null) return null;
		const row = this.#db
			.prepare("SELECT *, (SELECT count(*) FROM s3_refs WHERE s3_refs.key = s3_blobs.key) AS refs FROM s3_blobs WHERE key = ?")
			.get(key) as BlobRow | undefined;
		if (!row) return null;
		return {
			key,
			sha256: row.sha256,
			size: row.size,
			encrypted: row.encrypted === 1,
			object: row.object,
			header: row.header ? Buffer.from(row.header) : null,
			corruptAt: row.corrupt_at,
			refs: row.refs
		};
	}

	async attach(blob: BlobRef, object: string, header: Buffer | null, ref: string, addedAt = new Date()): Promise<Attached> {
		return transaction(this.#db, () => {
			const stored = this.#db.prepare("SELECT object, corrupt_at FROM s3_blobs WHERE key = ?").get(blob.key) as
				| { object: string; corrupt_at: string | null }
				| undefined;
			let attached: Attached = { kept: false };
			if (!stored) {
				this.#db
					.prepare("INSERT INTO s3_blobs (key, sha256, size, encrypted, object, header) VALUES (?, ?, ?, ?, ?, ?)")
					.run(blob.key, blob.sha256, blob.size, blob.encrypted ? 1 : 0, object, header);
				attached = { kept: true };
			} else if (stored.corrupt_at) {
				this.#db.prepare("UPDATE s3_blobs SET object = ?, corrupt_at = NULL WHERE key = ?").run(object, blob.key);
				attached = { kept: true, replaced: stored.object };
			}
			// Added again: the reference is in use now, its grace period starts over.
			this.#db
				.prepare("INSERT INTO s3_refs (key, ref, added_at) VALUES (?, ?, ?) ON CONFLICT (key, ref) DO UPDATE SET added_at = excluded.added_at")
				.run(blob.key, ref, addedAt.getTime());
			return attached;
		});
	}

	async detach(key: string, ref: string, addedBefore = ANY_TIME): Promise<Detached> {
		return transaction(this.#db, () => {
			const { changes } = this.#db.prepare("DELETE FROM s3_refs WHERE key = ? AND ref = ? AND added_at < ?").run(key, ref, addedBefore.getTime());
			const released = Number(changes) > 0;
			const { remaining } = this.#db.prepare("SELECT count(*) AS remaining FROM s3_refs WHERE key = ?").get(key) as { remaining: number };
			if (remaining > 0) return { released, gone: false };
			const removed = this.#db.prepare("DELETE FROM s3_blobs WHERE key = ? RETURNING object").get(key) as { object: string } | undefined;
			return removed ? { released, gone: true, object: removed.object } : { released, gone: true };
		});
	}

	async listRefs(options: ListRefsOptions): Promise<RefPage> {
		return listSqliteRefs(this.#db, { refs: "s3_refs", blobs: "s3_blobs" }, options);
	}

	async markCorrupt(key: string, object: string): Promise<void> {
		this.#db
			.prepare("UPDATE s3_blobs SET corrupt_at = ? WHERE key = ? AND object = ? AND corrupt_at IS NULL")
			.run(new Date().toISOString(), key, object);
	}

	async replaceHeader(key: string, previous: Buffer, header: Buffer): Promise<void> {
		this.#db.prepare("UPDATE s3_blobs SET header = ? WHERE key = ? AND header = ?").run(header, key, previous);
	}

	async encryptedKeys(): Promise<string[]> {
		return (this.#db.prepare("SELECT key FROM s3_blobs WHERE encrypted = 1 ORDER BY key").all() as { key: string }[]).map(row => row.key);
	}

	async keysAfter(after: string, limit: number): Promise<string[]> {
		const rows = this.#db.prepare("SELECT key FROM s3_blobs WHERE key > ? ORDER BY key LIMIT ?").all(after, limit) as { key: string }[];
		return rows.map(row => row.key);
	}

	async objectsInUse(objects: string[]): Promise<Set<string>> {
		const inUse = this.#db.prepare("SELECT 1 FROM s3_blobs WHERE object = ?");
		return new Set(objects.filter(object => inUse.get(object) !== undefined));
	}

	async ping(): Promise<boolean> {
		try {
			this.#db.prepare("SELECT 1").get();
			return true;
		} catch {
			return false;
		}
	}

	async close(): Promise<void> {
		if (this.#db.isOpen) closeDatabase(this.#db);
	}
}
