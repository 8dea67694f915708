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
 *
 * A hit writes nothing: its use waits in memory and goes to the table in one transaction a
 * second later, or before anything reads the order of use (eviction, the collector's questions)
 * or closes the index. A crash loses at most that second of recency, which only makes the LRU
 * a little less exact.
 */
import { randomBytes } from "node:crypto";
import type { DatabaseSync, StatementSync } from "node:sqlite";
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

/** How long uses wait in memory before they are written together. */
const USE_FLUSH_MS = 1000;

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
	/** Uses not written yet: key → its last use. */
	readonly #uses = new Map<string, number>();
	#flushTimer: NodeJS.Timeout | undefined;
	#getStatement: StatementSync | undefined;

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

	/** The entry, marked as just used (in memory, written in the next batch); null on a miss. */
	get(key: string): CachedVariant | null {
		// Prepared once: every cached download asks, and preparing costs more than the look-up.
		this.#getStatement ??= this.#db.prepare(`SELECT ${COLUMNS} FROM variants WHERE key = ?`);
		const row = this.#getStatement.get(key);
		if (!row) return null;
		this.#uses.set(key, this.#tick());
		this.#flushTimer ??= setTimeout(() => this.#flushUses(), USE_FLUSH_MS).unref();
		// node:sqlite rows have no prototype; callers get a plain object.
		return { ...(row as unknown as CachedVariant) };
	}

	/** Writes the uses waiting in memory, in one transaction. */
	#flushUses(): void {
		clearTimeout(this.#flushTimer);
		this.#flushTimer = undefined;
		if (this.#uses.size === 0) return;
		// max(): a put since the hit may have recorded a later use already.
		const update = this.#db.prepare("UPDATE variants SET used = max(used, ?) WHERE key = ?");
		transaction(this.#db, () => {
			for (const [key, used] of this.#uses) update.run(used, key);
		});
		this.#uses.clear();
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
		this.#uses.delete(key);
		this.#db.prepare("DELETE FROM variants WHERE key = ?").run(key);
	}

	/** Up to `limit` entries with a known source, last used before `usedBefore` (ms), in key order after `after`. */
	idleEntries(usedBefore: number, after: string, limit: number): IdleVariant[] {
		this.#flushUses();
		const rows = this.#db
			.prepare("SELECT key, blob, size, source_sha256 FROM variants WHERE key > ? AND used < ? AND source_sha256 IS NOT NULL ORDER BY key LIMIT ?")
			.all(after, usedBefore, limit) as { key: string; blob: string; size: number; source_sha256: string }[];
		return rows.map(row => ({ key: row.key, blob: row.blob, size: row.size, sourceSha256: row.source_sha256 }));
	}

	/** Removes the entry unless it was used since `usedBefore` (ms): a request that just hit it keeps it. */
	removeIfIdle(key: string, usedBefore: number): boolean {
		this.#flushUses();
		return Number(this.#db.prepare("DELETE FROM variants WHERE key = ? AND used < ?").run(key, usedBefore).changes) > 0;
	}

	/**
	 * Drops least recently used entries until the total is within `maxBytes`, or only `keep` is
	 * left over it (the entry just made, which its requests are about to read); returns them.
	 */
	evictBeyond(maxBytes: number, keep?: string): CachedVariant[] {
		this.#flushUses();
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
		this.#flushUses();
		closeDatabase(this.#db);
	}
}
