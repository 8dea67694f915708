/**
 * The index of the transform cache: which variant key is held by which storage blob, how big it
 * is and when it was last served. The bytes themselves live on the storage backend (fs or
 * GridFS, plain or encrypted like their original); this index is what makes the cache an LRU
 * bounded in bytes. node:sqlite in DATA_DIR, one per transform node.
 *
 * Each index holds its blobs under its own storage reference (`variant-<index id>-<key>`), so
 * transform nodes that do not share a DATA_DIR never release a blob another node still indexes.
 * It also records each entry's source (the original's SHA-256), so the garbage collector can drop
 * the variants of originals no image has any more before the LRU would.
 */
import { randomBytes } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import { closeDatabase, migrate, openDatabase, transaction } from "../db/sqlite.ts";
import type { VariantInfo } from "./spec.ts";

export interface CachedVariant extends VariantInfo {
	key: string;
	/** Storage key of the bytes. */
	blob: string;
}

const MIGRATIONS = [
	`CREATE TABLE variant_index (id TEXT NOT NULL) STRICT;
	CREATE TABLE variants (
		key TEXT PRIMARY KEY,
		blob TEXT NOT NULL,
		size INTEGER NOT NULL,
		format TEXT NOT NULL,
		width INTEGER NOT NULL,
		height INTEGER NOT NULL,
		used INTEGER NOT NULL
	) STRICT;
	CREATE INDEX variants_used ON variants (used);`,
	// The SHA-256 of the original a variant was made from; NULL for entries cached before it was
	// recorded, which only the LRU drops.
	`ALTER TABLE variants ADD COLUMN source_sha256 TEXT;`,
	// The bytes held, kept by triggers: evictBeyond runs after every render, and summing the
	// sizes there scanned the whole index each time (45 ms at 100,000 entries).
	`CREATE TABLE variant_bytes (total INTEGER NOT NULL) STRICT;
	INSERT INTO variant_bytes (total) SELECT coalesce(sum(size), 0) FROM variants;
	CREATE TRIGGER variants_added AFTER INSERT ON variants BEGIN UPDATE variant_bytes SET total = total + new.size; END;
	CREATE TRIGGER variants_removed AFTER DELETE ON variants BEGIN UPDATE variant_bytes SET total = total - old.size; END;
	CREATE TRIGGER variants_resized AFTER UPDATE OF size ON variants BEGIN UPDATE variant_bytes SET total = total + new.size - old.size; END;`
];

/** A cached variant as the garbage collector sees it. */
export interface IdleVariant {
	key: string;
	blob: string;
	size: number;
	sourceSha256: string;
}

const COLUMNS = "key, blob, size, format, width, height";

const REF_PREFIX = "variant-";

/** Whether a storage reference is a variant cache's (refOf), not an image's. */
export function isVariantRef(ref: string): boolean {
	return ref.startsWith(REF_PREFIX);
}

export class VariantIndex {
	readonly #db: DatabaseSync;
	readonly #id: string;
	/** Monotonic use counter: clock steps or equal timestamps cannot reorder the LRU. */
	#clock: number;

	constructor(file: string) {
		this.#db = openDatabase(file);
		migrate(this.#db, "variants", MIGRATIONS);
		this.#id = transaction(this.#db, () => {
			const row = this.#db.prepare("SELECT id FROM variant_index").get() as { id: string } | undefined;
			if (row) return row.id;
			const id = randomBytes(8).toString("hex");
			this.#db.prepare("INSERT INTO variant_index (id) VALUES (?)").run(id);
			return id;
		});
		const row = this.#db.prepare("SELECT max(used) AS used FROM variants").get() as { used: number | null };
		this.#clock = Math.max(Date.now(), row.used ?? 0);
	}

	/** The storage reference this index holds a variant's blob under. */
	refOf(key: string): string {
		return `${REF_PREFIX}${this.#id}-${key}`;
	}

	#tick(): number {
		this.#clock = Math.max(this.#clock + 1, Date.now());
		return this.#clock;
	}

	/** The entry, marked as just used; null on a miss. */
	get(key: string): CachedVariant | null {
		const row = this.#db.prepare(`UPDATE variants SET used = ? WHERE key = ? RETURNING ${COLUMNS}`).get(this.#tick(), key);
		// node:sqlite rows have no prototype; callers get a plain object.
		return row ? { ...(row as unknown as CachedVariant) } : null;
	}

	/** An upsert, not INSERT OR REPLACE: a replace deletes without firing the delete trigger, and the byte total would drift. */
	put(entry: CachedVariant, sourceSha256: string): void {
		this.#db
			.prepare(
				`INSERT INTO variants (${COLUMNS}, used, source_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET ` +
					"blob = excluded.blob, size = excluded.size, format = excluded.format, width = excluded.width, height = excluded.height, used = excluded.used, source_sha256 = excluded.source_sha256"
			)
			.run(entry.key, entry.blob, entry.size, entry.format, entry.width, entry.height, this.#tick(), sourceSha256);
	}

	remove(key: string): void {
		this.#db.prepare("DELETE FROM variants WHERE key = ?").run(key);
	}

	/** Up to `limit` entries with a known source, last used before `usedBefore` (ms), in key order after `after`. */
	idleEntries(usedBefore: number, after: string, limit: number): IdleVariant[] {
		const rows = this.#db
			.prepare("SELECT key, blob, size, source_sha256 FROM variants WHERE key > ? AND used < ? AND source_sha256 IS NOT NULL ORDER BY key LIMIT ?")
			.all(after, usedBefore, limit) as { key: string; blob: string; size: number; source_sha256: string }[];
		return rows.map(row => ({ key: row.key, blob: row.blob, size: row.size, sourceSha256: row.source_sha256 }));
	}

	/** Removes the entry unless it was used since `usedBefore` (ms): a request that just hit it keeps it. */
	removeIfIdle(key: string, usedBefore: number): boolean {
		return Number(this.#db.prepare("DELETE FROM variants WHERE key = ? AND used < ?").run(key, usedBefore).changes) > 0;
	}

	/**
	 * Drops least recently used entries until the total is within `maxBytes`, or only `keep` is
	 * left over it (the entry just made, which its requests are about to read); returns them.
	 */
	evictBeyond(maxBytes: number, keep?: string): CachedVariant[] {
		return transaction(this.#db, () => {
			const { total } = this.#db.prepare("SELECT total FROM variant_bytes").get() as { total: number };
			const evicted: CachedVariant[] = [];
			let excess = total - maxBytes;
			if (excess <= 0) return evicted;
			for (const row of this.#db.prepare(`SELECT ${COLUMNS} FROM variants ORDER BY used`).iterate() as Iterable<CachedVariant>) {
				if (excess <= 0) break;
				if (row.key === keep) continue;
				evicted.push({ ...row });
				excess -= row.size;
			}
			const remove = this.#db.prepare("DELETE FROM variants WHERE key = ?");
			for (const entry of evicted) remove.run(entry.key);
			return evicted;
		});
	}

	totals(): { entries: number; bytes: number } {
		const row = this.#db.prepare("SELECT count(*) AS entries, coalesce(sum(size), 0) AS bytes FROM variants").get() as { entries: number; bytes: number };
		return { entries: row.entries, bytes: row.bytes };
	}

	async ping(): Promise<boolean> {
		this.#db.prepare("SELECT 1").get();
		return true;
	}

	async close(): Promise<void> {
		closeDatabase(this.#db);
	}
}
