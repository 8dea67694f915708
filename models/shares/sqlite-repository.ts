/** ShareRepository on node:sqlite (embedded mode), in the images database under its own schema. */
import type { DatabaseSync } from "node:sqlite";
import { closeDatabase, migrate, openDatabase, transaction, uniqueViolationOf } from "../db/sqlite.ts";
import { ConflictError } from "../shared/errors.ts";
import { definedFields } from "../shared/fields.ts";
import { nowIso } from "../shared/ids.ts";
import { decodeShareCursor, sharePageOf, type ShareDoc, type SharePage, type SharePatch, type ShareRepository, type ShareTarget } from "./share.ts";

/** Schema steps, applied in order once each (see migrate); append, never edit. */
const MIGRATIONS = [
	`CREATE TABLE shares (
		id TEXT PRIMARY KEY,
		owner TEXT NOT NULL,
		image_id TEXT,
		album_id TEXT,
		token_hash TEXT NOT NULL UNIQUE,
		password_hash TEXT,
		expires_at TEXT,
		allow_download INTEGER NOT NULL,
		show_metadata INTEGER NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);
	-- An owner's list, newest first, as a range scan; the sweeps of a deleted image or album.
	CREATE INDEX shares_owner ON shares (owner, created_at, id);
	CREATE INDEX shares_image ON shares (image_id) WHERE image_id IS NOT NULL;
	CREATE INDEX shares_album ON shares (album_id) WHERE album_id IS NOT NULL;`
];

interface ShareRow {
	id: string;
	owner: string;
	image_id: string | null;
	album_id: string | null;
	token_hash: string;
	password_hash: string | null;
	expires_at: string | null;
	allow_download: number;
	show_metadata: number;
	created_at: string;
	updated_at: string;
}

const COLUMNS = "id, owner, image_id, album_id, token_hash, password_hash, expires_at, allow_download, show_metadata, created_at, updated_at";

function fromRow(row: ShareRow): ShareDoc {
	return {
		id: row.id,
		owner: row.owner,
		imageId: row.image_id,
		albumId: row.album_id,
		tokenHash: row.token_hash,
		passwordHash: row.password_hash,
		expiresAt: row.expires_at,
		allowDownload: row.allow_download === 1,
		showMetadata: row.show_metadata === 1,
		createdAt: row.created_at,
		updatedAt: row.updated_at
	};
}

function toRow(share: ShareDoc): ShareRow {
	return {
		id: share.id,
		owner: share.owner,
		image_id: share.imageId,
		album_id: share.albumId,
		token_hash: share.tokenHash,
		password_hash: share.passwordHash,
		expires_at: share.expiresAt,
		allow_download: share.allowDownload ? 1 : 0,
		show_metadata: share.showMetadata ? 1 : 0,
		created_at: share.createdAt,
		updated_at: share.updatedAt
	};
}

export class SqliteShareRepository implements ShareRepository {
	private readonly db: DatabaseSync;

	constructor(file: string) {
		this.db = openDatabase(file);
		migrate(this.db, "shares", MIGRATIONS);
	}

	async insert(share: ShareDoc): Promise<void> {
		try {
			this.db.prepare(`INSERT INTO shares (${COLUMNS}) VALUES (${COLUMNS.split(", ").map(column => `:${column}`).join(", ")})`).run({ ...toRow(share) });
		} catch (err) {
			const column = uniqueViolationOf(err);
			if (column === "shares.id" || column === "shares.token_hash") throw new ConflictError("The share link exists already", "SHARE_EXISTS", { id: share.id });
			throw err;
		}
	}

	async get(id: string): Promise<ShareDoc | null> {
		return this.find("id", id);
	}

	async findByTokenHash(tokenHash: string): Promise<ShareDoc | null> {
		return this.find("token_hash", tokenHash);
	}

	async listByOwner(owner: string, limit: number, cursor?: string): Promise<SharePage> {
		const after = cursor ? decodeShareCursor(cursor) : null;
		const rows = after
			? this.db
					.prepare(`SELECT ${COLUMNS} FROM shares WHERE owner = ? AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?`)
					.all(owner, after.createdAt, after.id, limit + 1)
			: this.db.prepare(`SELECT ${COLUMNS} FROM shares WHERE owner = ? ORDER BY created_at DESC, id DESC LIMIT ?`).all(owner, limit + 1);
		return sharePageOf((rows as unknown as ShareRow[]).map(fromRow), limit);
	}

	async update(id: string, patch: SharePatch): Promise<ShareDoc | null> {
		return transaction(this.db, () => {
			const current = this.find("id", id);
			if (!current) return null;
			const next: ShareDoc = { ...current, ...definedFields(patch), updatedAt: nowIso() };
			const row = toRow(next);
			this.db
				.prepare(
					`UPDATE shares SET password_hash = :password_hash, expires_at = :expires_at, allow_download = :allow_download,
					 show_metadata = :show_metadata, updated_at = :updated_at WHERE id = :id`
				)
				.run({ id: row.id, password_hash: row.password_hash, expires_at: row.expires_at, allow_download: row.allow_download, show_metadata: row.show_metadata, updated_at: row.updated_at });
			return next;
		});
	}

	async remove(id: string): Promise<boolean> {
		return Number(this.db.prepare("DELETE FROM shares WHERE id = ?").run(id).changes) > 0;
	}

	async removeByTarget(target: ShareTarget): Promise<number> {
		const [column, value] = "imageId" in target ? ["image_id", target.imageId] : ["album_id", target.albumId];
		return Number(this.db.prepare(`DELETE FROM shares WHERE ${column} = ?`).run(value).changes);
	}

	async removeByOwner(owner: string): Promise<number> {
		return Number(this.db.prepare("DELETE FROM shares WHERE owner = ?").run(owner).changes);
	}

	async ping(): Promise<boolean> {
		return this.db.prepare("SELECT 1 AS ok").get() !== undefined;
	}

	async close(): Promise<void> {
		closeDatabase(this.db);
	}

	/** `column` is one of this file's fixed names, never input. */
	private find(column: "id" | "token_hash", value: string): ShareDoc | null {
		const row = this.db.prepare(`SELECT ${COLUMNS} FROM shares WHERE ${column} = ?`).get(value);
		return row ? fromRow(row as unknown as ShareRow) : null;
	}
}
