/** UserRepository on node:sqlite (embedded mode). */
import type { DatabaseSync } from "node:sqlite";
import { roleOf } from "../shared/access.ts";
import { ConflictError } from "../shared/errors.ts";
import { closeDatabase, migrate, openDatabase, transaction, uniqueViolationOf } from "../db/sqlite.ts";
import type { UserPatch, UserRecord, UserRepository } from "./user.ts";

/** Schema steps, applied in order once each (see migrate); append, never edit. */
const MIGRATIONS = [
	`CREATE TABLE users (
	id TEXT PRIMARY KEY,
	username TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL,
	role TEXT NOT NULL,
	disabled INTEGER NOT NULL DEFAULT 0,
	password_hash TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
)`,
	"ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0"
];

interface UserRow {
	id: string;
	username: string;
	name: string;
	role: string;
	disabled: number;
	password_hash: string;
	token_version: number;
	created_at: string;
	updated_at: string;
}

function fromRow(row: UserRow): UserRecord {
	return {
		id: row.id,
		username: row.username,
		name: row.name,
		role: roleOf(row.role),
		disabled: row.disabled === 1,
		passwordHash: row.password_hash,
		tokenVersion: Number(row.token_version),
		createdAt: row.created_at,
		updatedAt: row.updated_at
	};
}

export class SqliteUserRepository implements UserRepository {
	private readonly db: DatabaseSync;

	constructor(file: string) {
		this.db = openDatabase(file);
		migrate(this.db, "users", MIGRATIONS);
	}

	async insert(user: UserRecord): Promise<void> {
		try {
			this.db
				.prepare(
					`INSERT INTO users (id, username, name, role, disabled, password_hash, token_version, created_at, updated_at)
					 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
				)
				.run(user.id, user.username, user.name, user.role, user.disabled ? 1 : 0, user.passwordHash, user.tokenVersion, user.createdAt, user.updatedAt);
		} catch (err) {
			if (uniqueViolationOf(err)) throw new ConflictError("Username is already taken", "USERNAME_TAKEN");
			throw err;
		}
	}

	async get(id: string): Promise<UserRecord | null> {
		const row = this.db.prepare("SELECT * FROM users WHERE id = ?").get(id) as UserRow | undefined;
		return row ? fromRow(row) : null;
	}

	async findByUsername(username: string): Promise<UserRecord | null> {
		const row = this.db.prepare("SELECT * FROM users WHERE username = ?").get(username) as UserRow | undefined;
		return row ? fromRow(row) : null;
	}

	async update(id: string, patch: UserPatch, options: { revokeTokens?: boolean } = {}): Promise<UserRecord | null> {
		// One transaction: a concurrent revocation is never lost to this read-modify-write.
		return transaction(this.db, () => {
			const row = this.db.prepare("SELECT * FROM users WHERE id = ?").get(id) as UserRow | undefined;
			if (!row) return null;
			const current = fromRow(row);
			// Absent and undefined fields both mean "unchanged".
			const given = Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined));
			const tokenVersion = current.tokenVersion + (options.revokeTokens ? 1 : 0);
			const next: UserRecord = { ...current, ...given, tokenVersion, updatedAt: new Date().toISOString() };
			this.db
				.prepare("UPDATE users SET name = ?, role = ?, disabled = ?, password_hash = ?, token_version = ?, updated_at = ? WHERE id = ?")
				.run(next.name, next.role, next.disabled ? 1 : 0, next.passwordHash, next.tokenVersion, next.updatedAt, id);
			return next;
		});
	}

	async remove(id: string): Promise<boolean> {
		return Number(this.db.prepare("DELETE FROM users WHERE id = ?").run(id).changes) > 0;
	}

	async list(): Promise<UserRecord[]> {
		return (this.db.prepare("SELECT * FROM users ORDER BY username").all() as unknown as UserRow[]).map(fromRow);
	}

	async count(): Promise<number> {
		return Number((this.db.prepare("SELECT COUNT(*) AS n FROM users").get() as { n: number }).n);
	}

	async ping(): Promise<boolean> {
		return this.db.prepare("SELECT 1 AS ok").get() !== undefined;
	}

	async close(): Promise<void> {
		closeDatabase(this.db);
	}
}
