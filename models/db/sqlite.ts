/**
 * node:sqlite plumbing shared by every SQLite repository: one way to open a database file, run
 * schema migrations and wrap writes in a transaction.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";

/** How long a connection waits for another connection's write lock before failing (ms). */
const BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating if needed) a database file. Several repositories, and in distributed mode
 * several processes, share one file: WAL lets readers run beside the single writer, and the busy
 * timeout makes a writer wait for the lock instead of failing at once. synchronous=NORMAL is
 * durable in WAL mode except for the last commits before a power loss, which is fine here.
 */
export function openDatabase(file: string): DatabaseSync {
	const db = new DatabaseSync(file);
	db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
	db.exec("PRAGMA journal_mode = WAL");
	db.exec("PRAGMA synchronous = NORMAL");
	db.exec("PRAGMA foreign_keys = ON");
	// Gathers the table statistics the query planner needs to pick good indexes (SQLite's advice
	// for long-lived connections); a no-op when they are fresh.
	db.exec("PRAGMA optimize = 0x10002");
	return db;
}

/** How many prepared statements a StatementCache keeps: every fixed query, and the recent dynamic ones. */
const STATEMENT_CACHE_SIZE = 200;

/**
 * A connection's statements prepared once per SQL text: preparing costs more than running a
 * short query (51 of the 55 µs of an image look-up, measured), and hot paths run the same SQL
 * for every request. Least recently used statements go first, so searches built with varying
 * numbers of placeholders cannot grow it without bound.
 */
export class StatementCache {
	readonly #db: DatabaseSync;
	readonly #statements = new Map<string, StatementSync>();

	constructor(db: DatabaseSync) {
		this.#db = db;
	}

	get(sql: string): StatementSync {
		const statement = this.#statements.get(sql) ?? this.#db.prepare(sql);
		// Re-inserting moves it to the end: the Map's order is the recency order.
		this.#statements.delete(sql);
		this.#statements.set(sql, statement);
		if (this.#statements.size > STATEMENT_CACHE_SIZE) this.#statements.delete(this.#statements.keys().next().value!);
		return statement;
	}
}

/** Closes a connection opened by openDatabase, refreshing planner statistics that went stale. */
export function closeDatabase(db: DatabaseSync): void {
	db.exec("PRAGMA optimize");
	db.close();
}

/**
 * Runs `work` in a write transaction and commits, or rolls back when it throws. IMMEDIATE takes
 * the write lock up front, so a read-modify-write inside cannot interleave with another
 * connection's write. Not reentrant: call it from public repository methods only.
 */
export function transaction<T>(db: DatabaseSync, work: () => T): T {
	db.exec("BEGIN IMMEDIATE");
	try {
		const result = work();
		db.exec("COMMIT");
		return result;
	} catch (err) {
		// SQLite has already rolled back after some errors (SQLITE_FULL on a full disk, I/O
		// errors): a second ROLLBACK would throw "no transaction is active" and hide the cause.
		if (db.isTransaction) db.exec("ROLLBACK");
		throw err;
	}
}

/**
 * Brings one named schema up to date: `migrations[i]` is the SQL script taking it from version i
 * to i + 1. Append new steps, never edit old ones. Versions live in a table keyed by schema name,
 * not in PRAGMA user_version, because repositories with separate schemas share one database file
 * and a single per-file number cannot track them independently. Connections racing to migrate the
 * same file are serialized by the transaction; the loser finds the version already current.
 */
export function migrate(db: DatabaseSync, schema: string, migrations: readonly string[]): void {
	transaction(db, () => {
		db.exec("CREATE TABLE IF NOT EXISTS schema_versions (schema TEXT PRIMARY KEY, version INTEGER NOT NULL)");
		const row = db.prepare("SELECT version FROM schema_versions WHERE schema = ?").get(schema) as { version: number } | undefined;
		const current = row?.version ?? 0;
		if (current >= migrations.length) return;
		for (const script of migrations.slice(current)) db.exec(script);
		db.prepare("INSERT OR REPLACE INTO schema_versions (schema, version) VALUES (?, ?)").run(schema, migrations.length);
	});
}

/**
 * For a UNIQUE or PRIMARY KEY violation, the constrained column(s) as SQLite names them
 * (e.g. "categories.name_key"); otherwise null.
 */
export function uniqueViolationOf(err: unknown): string | null {
	const prefix = "UNIQUE constraint failed: ";
	if (!(err instanceof Error) || !err.message.startsWith(prefix)) return null;
	return err.message.slice(prefix.length);
}
