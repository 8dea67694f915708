/**
 * AlbumRepository on node:sqlite (embedded mode), in the images database file with a schema of its
 * own ("albums"). Entries and memberships go with their album (ON DELETE CASCADE); nothing here
 * references the images table, so an album never holds an image back from deletion. Lists of ids
 * reach SQL as one JSON parameter (json_each): no statement grows with the size of a request.
 */
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { closeDatabase, migrate, openDatabase, transaction, uniqueViolationOf } from "../db/sqlite.ts";
import { ConflictError } from "../shared/errors.ts";
import { definedFields } from "../shared/fields.ts";
import { nowIso } from "../shared/ids.ts";
import type { Album, AlbumEntry, AlbumMember, AlbumPageRequest, AlbumRepository, AlbumRole, AlbumSummary, MemberRole } from "./album.ts";
import { albumPageOf, albumPageRequest, type AlbumSortSpec } from "./paging.ts";

/** Schema versions, in order (see migrate). Append; never edit a released step. */
const MIGRATIONS = [
	`CREATE TABLE albums (
		id TEXT PRIMARY KEY,
		owner TEXT NOT NULL,
		owner_name TEXT NOT NULL,
		name TEXT NOT NULL,
		description TEXT NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);
	CREATE INDEX albums_owner ON albums (owner, created_at, id);

	CREATE TABLE album_members (
		album_id TEXT NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
		user_id TEXT NOT NULL,
		username TEXT NOT NULL,
		role TEXT NOT NULL,
		added_at TEXT NOT NULL,
		PRIMARY KEY (album_id, user_id)
	) WITHOUT ROWID;
	CREATE INDEX album_members_user ON album_members (user_id);

	CREATE TABLE album_images (
		album_id TEXT NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
		image_id TEXT NOT NULL,
		image_owner TEXT NOT NULL,
		added_by TEXT NOT NULL,
		added_at TEXT NOT NULL,
		taken_at TEXT NOT NULL,
		PRIMARY KEY (album_id, image_id)
	) WITHOUT ROWID;
	-- Pages in either order are index range scans; the image index serves grants and clean-ups.
	CREATE INDEX album_images_added ON album_images (album_id, added_at, image_id);
	CREATE INDEX album_images_taken ON album_images (album_id, taken_at, image_id);
	CREATE INDEX album_images_image ON album_images (image_id);`,
	// 1 while the image is in the trash: the entry keeps its place but is left out of every read.
	`ALTER TABLE album_images ADD COLUMN trashed INTEGER NOT NULL DEFAULT 0;`
];

interface AlbumRow {
	id: string;
	owner: string;
	owner_name: string;
	name: string;
	description: string;
	created_at: string;
	updated_at: string;
}

interface EntryRow {
	image_id: string;
	image_owner: string;
	added_by: string;
	added_at: string;
	taken_at: string;
}

const ALBUM_COLUMNS = "a.id, a.owner, a.owner_name, a.name, a.description, a.created_at, a.updated_at";
const ENTRY_COLUMNS = "image_id, image_owner, added_by, added_at, taken_at";
/** The column of each sort field: fixed names, never input. */
const SORT_COLUMNS: Record<AlbumSortSpec["field"], string> = { addedAt: "added_at", takenAt: "taken_at" };

function albumFromRow(row: AlbumRow): Album {
	return {
		id: row.id,
		owner: row.owner,
		ownerName: row.owner_name,
		name: row.name,
		description: row.description,
		createdAt: row.created_at,
		updatedAt: row.updated_at
	};
}

function entryFromRow(row: EntryRow): AlbumEntry {
	return { imageId: row.image_id, imageOwner: row.image_owner, addedBy: row.added_by, addedAt: row.added_at, takenAt: row.taken_at };
}

export class SqliteAlbumRepository implements AlbumRepository {
	private readonly db: DatabaseSync;

	constructor(file: string) {
		this.db = openDatabase(file);
		migrate(this.db, "albums", MIGRATIONS);
	}

	async insert(album: Album): Promise<void> {
		try {
			this.db
				.prepare("INSERT INTO albums (id, owner, owner_name, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
				.run(album.id, album.owner, album.ownerName, album.name, album.description, album.createdAt, album.updatedAt);
		} catch (err) {
			if (uniqueViolationOf(err) === "albums.id") throw new ConflictError(`Album ${album.id} already exists`, "ALBUM_EXISTS");
			throw err;
		}
	}

	async get(id: string): Promise<Album | null> {
		return this.find(id);
	}

	async update(id: string, patch: Partial<Pick<Album, "name" | "description">>): Promise<Album | null> {
		return transaction(this.db, () => {
			const current = this.find(id);
			if (!current) return null;
			const next: Album = { ...current, ...definedFields(patch), updatedAt: nowIso() };
			this.db.prepare("UPDATE albums SET name = ?, description = ?, updated_at = ? WHERE id = ?").run(next.name, next.description, next.updatedAt, id);
			return next;
		});
	}

	async remove(id: string): Promise<boolean> {
		return Number(this.db.prepare("DELETE FROM albums WHERE id = ?").run(id).changes) > 0;
	}

	async listFor(userId: string): Promise<AlbumSummary[]> {
		const rows = this.db
			.prepare(
				`SELECT ${ALBUM_COLUMNS}, CASE WHEN a.owner = :user THEN 'owner' ELSE m.role END AS role,
					(SELECT COUNT(*) FROM album_images e WHERE e.album_id = a.id AND e.trashed = 0) AS image_count,
					(SELECT COUNT(*) FROM album_members o WHERE o.album_id = a.id) AS member_count,
					(SELECT e.image_id FROM album_images e WHERE e.album_id = a.id AND e.trashed = 0 ORDER BY e.added_at DESC, e.image_id DESC LIMIT 1) AS cover
				 FROM albums a LEFT JOIN album_members m ON m.album_id = a.id AND m.user_id = :user
				 WHERE a.owner = :user OR m.user_id IS NOT NULL
				 ORDER BY a.created_at DESC, a.id DESC`
			)
			.all({ user: userId }) as unknown as (AlbumRow & { role: AlbumRole; image_count: number; member_count: number; cover: string | null })[];
		return rows.map(row => ({ ...albumFromRow(row), role: row.role, imageCount: row.image_count, memberCount: row.member_count, cover: row.cover }));
	}

	async memberRole(albumId: string, userId: string): Promise<MemberRole | null> {
		const row = this.db.prepare("SELECT role FROM album_members WHERE album_id = ? AND user_id = ?").get(albumId, userId) as { role: MemberRole } | undefined;
		return row?.role ?? null;
	}

	async members(albumId: string): Promise<AlbumMember[]> {
		const rows = this.db
			.prepare("SELECT user_id, username, role, added_at FROM album_members WHERE album_id = ? ORDER BY added_at, user_id")
			.all(albumId) as unknown as { user_id: string; username: string; role: MemberRole; added_at: string }[];
		return rows.map(row => ({ userId: row.user_id, username: row.username, role: row.role, addedAt: row.added_at }));
	}

	async setMember(albumId: string, member: AlbumMember): Promise<void> {
		// A member whose role changes keeps their place (added_at) in the list.
		this.db
			.prepare(
				`INSERT INTO album_members (album_id, user_id, username, role, added_at) VALUES (?, ?, ?, ?, ?)
				 ON CONFLICT (album_id, user_id) DO UPDATE SET role = excluded.role`
			)
			.run(albumId, member.userId, member.username, member.role, member.addedAt);
	}

	async removeMember(albumId: string, userId: string): Promise<boolean> {
		return Number(this.db.prepare("DELETE FROM album_members WHERE album_id = ? AND user_id = ?").run(albumId, userId).changes) > 0;
	}

	async addImages(albumId: string, entries: AlbumEntry[]): Promise<number> {
		return transaction(this.db, () => {
			const insert = this.db.prepare(
				"INSERT OR IGNORE INTO album_images (album_id, image_id, image_owner, added_by, added_at, taken_at) VALUES (?, ?, ?, ?, ?, ?)"
			);
			let added = 0;
			for (const entry of entries) added += Number(insert.run(albumId, entry.imageId, entry.imageOwner, entry.addedBy, entry.addedAt, entry.takenAt).changes);
			return added;
		});
	}

	async removeImages(albumId: string, imageIds: string[]): Promise<number> {
		const sql = "DELETE FROM album_images WHERE album_id = ? AND image_id IN (SELECT value FROM json_each(?))";
		return Number(this.db.prepare(sql).run(albumId, JSON.stringify(imageIds)).changes);
	}

	async entries(albumId: string, imageIds: string[]): Promise<AlbumEntry[]> {
		return this.allEntries(
			`SELECT ${ENTRY_COLUMNS} FROM album_images WHERE album_id = ? AND image_id IN (SELECT value FROM json_each(?)) ORDER BY added_at, image_id`,
			[albumId, JSON.stringify(imageIds)]
		);
	}

	async imagePage(albumId: string, request: AlbumPageRequest): Promise<{ items: AlbumEntry[]; nextCursor: string | null }> {
		const { spec, after } = albumPageRequest(request);
		const column = SORT_COLUMNS[spec.field];
		const direction = spec.descending ? "DESC" : "ASC";
		const afterSql = after ? `AND (${column}, image_id) ${spec.descending ? "<" : ">"} (?, ?)` : "";
		const params: SQLInputValue[] = after ? [albumId, after.value, after.imageId, request.limit + 1] : [albumId, request.limit + 1];
		const matches = this.allEntries(
			`SELECT ${ENTRY_COLUMNS} FROM album_images WHERE album_id = ? AND trashed = 0 ${afterSql} ORDER BY ${column} ${direction}, image_id ${direction} LIMIT ?`,
			params
		);
		return albumPageOf(matches, request, spec);
	}

	async imageIds(albumId: string): Promise<string[]> {
		const rows = this.db.prepare("SELECT image_id FROM album_images WHERE album_id = ? AND trashed = 0 ORDER BY added_at DESC, image_id DESC").all(albumId);
		return (rows as unknown as { image_id: string }[]).map(row => row.image_id);
	}

	async grantsView(imageId: string, userId: string): Promise<boolean> {
		const row = this.db
			.prepare(
				`SELECT 1 FROM album_images e JOIN albums a ON a.id = e.album_id
				 WHERE e.image_id = :image AND (a.owner = :user OR EXISTS (SELECT 1 FROM album_members m WHERE m.album_id = a.id AND m.user_id = :user))
				 LIMIT 1`
			)
			.get({ image: imageId, user: userId });
		return row !== undefined;
	}

	async setTakenAt(imageId: string, takenAt: string): Promise<number> {
		return Number(this.db.prepare("UPDATE album_images SET taken_at = ? WHERE image_id = ? AND taken_at <> ?").run(takenAt, imageId, takenAt).changes);
	}

	async setTrashed(imageId: string, trashed: boolean): Promise<number> {
		const flag = trashed ? 1 : 0;
		return Number(this.db.prepare("UPDATE album_images SET trashed = ? WHERE image_id = ? AND trashed <> ?").run(flag, imageId, flag).changes);
	}

	async removeImageEverywhere(imageId: string): Promise<number> {
		return Number(this.db.prepare("DELETE FROM album_images WHERE image_id = ?").run(imageId).changes);
	}

	async removeUser(userId: string): Promise<number> {
		return transaction(this.db, () => {
			this.db.prepare("DELETE FROM album_members WHERE user_id = ?").run(userId);
			return Number(this.db.prepare("DELETE FROM albums WHERE owner = ?").run(userId).changes);
		});
	}

	async ping(): Promise<boolean> {
		return this.db.prepare("SELECT 1 AS ok").get() !== undefined;
	}

	async close(): Promise<void> {
		closeDatabase(this.db);
	}

	private find(id: string): Album | null {
		const row = this.db.prepare(`SELECT ${ALBUM_COLUMNS} FROM albums a WHERE a.id = ?`).get(id);
		return row ? albumFromRow(row as unknown as AlbumRow) : null;
	}

	private allEntries(sql: string, params: SQLInputValue[]): AlbumEntry[] {
		return (this.db.prepare(sql).all(...params) as unknown as EntryRow[]).map(entryFromRow);
	}
}
