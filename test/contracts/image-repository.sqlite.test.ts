import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { closeDatabase, migrate, openDatabase } from "../../models/db/sqlite.ts";
import { SqliteCategoryRepository } from "../../models/categories/sqlite-repository.ts";
import { IMAGE_MIGRATIONS, SqliteImageRepository } from "../../models/images/sqlite-repository.ts";
import { imageRepositoryContract } from "./image-repository.contract.ts";
import { parseSearchQuery } from "../../models/images/search-query.ts";

async function tempDatabaseFile(): Promise<{ file: string; removeDir(): Promise<void> }> {
	const dir = await mkdtemp(join(tmpdir(), "imgmesh-images-"));
	return { file: join(dir, "imgmesh.db"), removeDir: () => rm(dir, { recursive: true, force: true }) };
}

// Both repositories on one file, as the services run them.
imageRepositoryContract("SQLite", async () => {
	const { file, removeDir } = await tempDatabaseFile();
	return { images: new SqliteImageRepository(file), categories: new SqliteCategoryRepository(file), cleanup: removeDir };
});

it("SQLite: keeps data across reopening and migrates once, beside other schemas in the file", async () => {
	const { file, removeDir } = await tempDatabaseFile();
	try {
		const first = new SqliteCategoryRepository(file);
		await first.insert({ id: "kept", name: "Kept", description: "", createdAt: "2024-01-01T00:00:00.000Z", updatedAt: "2024-01-01T00:00:00.000Z" });
		await first.close();

		// Another repository's schema in the same file, migrated in two releases.
		const db = openDatabase(file);
		migrate(db, "other", ["CREATE TABLE other_things (x TEXT)"]);
		migrate(db, "other", ["CREATE TABLE other_things (x TEXT)", "ALTER TABLE other_things ADD COLUMN y TEXT"]);
		db.prepare("INSERT INTO other_things (x, y) VALUES (?, ?)").run("a", "b");
		const versions = db.prepare("SELECT schema, version FROM schema_versions ORDER BY schema").all();
		assert.deepEqual(versions.map(row => ({ ...row })), [
			{ schema: "images", version: 5 },
			{ schema: "other", version: 2 }
		]);
		assert.deepEqual({ ...db.prepare("PRAGMA journal_mode").get() }, { journal_mode: "wal" });
		closeDatabase(db);

		const reopened = new SqliteCategoryRepository(file);
		assert.deepEqual((await reopened.list()).map(category => category.id), ["kept"]);
		await reopened.close();
	} finally {
		await removeDir();
	}
});

it("SQLite: migration 3 indexes the phrases of the images stored before it", async () => {
	const { file, removeDir } = await tempDatabaseFile();
	try {
		const createdAt = "2024-01-01T00:00:00.000Z";
		const before = new SqliteImageRepository(file);
		await before.insert({
			id: "old", owner: "u-alice", ownerName: "alice", name: "Lighthouse at dawn", description: "", filename: "a.png",
			contentType: "image/png", format: "png", size: 1, width: 1, height: 1, sha256: "0".repeat(64), encrypted: false,
			visibility: "public", showMetadata: false, category: null, tags: [], views: 0, status: "ready", statusReason: null, metadata: null,
			renditions: [], blob: "b", createdAt, updatedAt: createdAt, trashedAt: null
		});
		await before.close();

		// Back to the file as version 2 left it: no trigram index, the version-2 indexes, no later columns.
		const db = openDatabase(file);
		db.exec(`DROP TRIGGER image_text_insert; DROP TRIGGER image_text_delete; DROP TRIGGER image_text_update; DROP TABLE image_text;
			DROP INDEX images_visibility_views; DROP INDEX images_visibility_name; DROP INDEX images_unlisted_created;
			DROP INDEX images_unlisted_views; DROP INDEX images_unlisted_name; DROP INDEX images_category;
			CREATE INDEX images_category ON images (category);
			DROP INDEX images_trashed; ALTER TABLE images DROP COLUMN trashed_at;
			ALTER TABLE images DROP COLUMN show_metadata;
			UPDATE schema_versions SET version = 2 WHERE schema = 'images';`);
		closeDatabase(db);

		const after = new SqliteImageRepository(file);
		const page = await after.search({ viewer: null, query: parseSearchQuery('"ighthous"'), sort: "-createdAt", limit: 10 });
		assert.deepEqual(page.items.map(doc => doc.id), ["old"]);
		await after.close();
	} finally {
		await removeDir();
	}
});

it("SQLite: migration 4 keeps the images stored before it out of the trash", async () => {
	const { file, removeDir } = await tempDatabaseFile();
	try {
		const createdAt = "2024-01-01T00:00:00.000Z";
		const before = new SqliteImageRepository(file);
		await before.insert({
			id: "old", owner: "u-alice", ownerName: "alice", name: "Kept", description: "", filename: "a.png",
			contentType: "image/png", format: "png", size: 1, width: 1, height: 1, sha256: "0".repeat(64), encrypted: false,
			visibility: "public", showMetadata: false, category: null, tags: [], views: 0, status: "ready", statusReason: null, metadata: null,
			renditions: [], blob: "b", createdAt, updatedAt: createdAt, trashedAt: null
		});
		await before.close();

		// Back to the file as version 3 left it: no trash column (nor the later showMetadata).
		const db = openDatabase(file);
		db.exec("DROP INDEX images_trashed; ALTER TABLE images DROP COLUMN trashed_at; ALTER TABLE images DROP COLUMN show_metadata; UPDATE schema_versions SET version = 3 WHERE schema = 'images';");
		closeDatabase(db);

		const after = new SqliteImageRepository(file);
		assert.equal((await after.get("old"))?.trashedAt, null);
		const page = await after.search({ viewer: null, sort: "-createdAt", limit: 10 });
		assert.deepEqual(page.items.map(doc => doc.id), ["old"]);
		await after.trash("old", "2025-01-01T00:00:00.000Z");
		assert.deepEqual((await after.search({ viewer: null, sort: "-createdAt", limit: 10 })).items, []);
		await after.close();
	} finally {
		await removeDir();
	}
});

it("SQLite: migration 5 gives the images stored before it showMetadata false", async () => {
	const { file, removeDir } = await tempDatabaseFile();
	try {
		const db = openDatabase(file);
		migrate(db, "images", IMAGE_MIGRATIONS.slice(0, 4));
		db.prepare(
			`INSERT INTO images (id, owner, owner_name, name, description, filename, content_type, format, size, width, height, sha256,
				encrypted, visibility, category, tags, views, status, blob, created_at, updated_at, search_text)
			 VALUES ('old', 'u-alice', 'alice', 'Old', '', 'a.png', 'image/png', 'png', 1, 1, 1, ?, 0, 'public', NULL, '[]', 0, 'ready', 'b', ?, ?, 'old')`
		).run("0".repeat(64), "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z");
		closeDatabase(db);

		const after = new SqliteImageRepository(file);
		assert.equal((await after.get("old"))?.showMetadata, false);
		await after.close();
	} finally {
		await removeDir();
	}
});
