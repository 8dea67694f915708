import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { it } from "node:test";
import { closeDatabase, migrate, openDatabase } from "../../models/db/sqlite.ts";
import { SqliteCategoryRepository } from "../../models/categories/sqlite-repository.ts";
import { IMAGE_MIGRATIONS, SqliteImageRepository } from "../../models/images/sqlite-repository.ts";
import { imageRepositoryContract } from "./image-repository.contract.ts";
import { parseSearchQuery } from "../../models/images/search-query.ts";

/** An image row with only the columns every schema version has. */
function insertOldRow(db: DatabaseSync, name = "Old"): void {
	db.prepare(
		`INSERT INTO images (id, owner, owner_name, name, description, filename, content_type, format, size, width, height, sha256,
			encrypted, visibility, category, tags, views, status, blob, created_at, updated_at, search_text)
		 VALUES ('old', 'u-alice', 'alice', ?, '', 'a.png', 'image/png', 'png', 1, 1, 1, ?, 0, 'public', NULL, '[]', 0, 'ready', 'b', ?, ?, ?)`
	).run(name, "0".repeat(64), "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z", name.toLowerCase());
}

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
			{ schema: "images", version: 6 },
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
		// The file as version 2 left it: no trigram index, the version-2 indexes, no later columns.
		const db = openDatabase(file);
		migrate(db, "images", IMAGE_MIGRATIONS.slice(0, 2));
		insertOldRow(db, "Lighthouse at dawn");
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
		// The file as version 3 left it: no trash column (nor the later showMetadata).
		const db = openDatabase(file);
		migrate(db, "images", IMAGE_MIGRATIONS.slice(0, 3));
		insertOldRow(db);
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
		insertOldRow(db);
		closeDatabase(db);

		const after = new SqliteImageRepository(file);
		assert.equal((await after.get("old"))?.showMetadata, false);
		await after.close();
	} finally {
		await removeDir();
	}
});

/** The plans of the count statements `searches` prepares, on a repository over `file`. */
async function countPlans(file: string, searches: (repo: SqliteImageRepository) => Promise<void>): Promise<{ sql: string; reads: string[] }[]> {
	const prepared: string[] = [];
	const prepare = DatabaseSync.prototype.prepare;
	const repo = new SqliteImageRepository(file);
	try {
		DatabaseSync.prototype.prepare = function (this: DatabaseSync, sql: string) {
			prepared.push(sql);
			return prepare.call(this, sql);
		} as typeof prepare;
		await searches(repo);
	} finally {
		DatabaseSync.prototype.prepare = prepare;
		await repo.close();
	}
	const db = new DatabaseSync(file, { readOnly: true });
	try {
		return prepared
			.filter(sql => /^\s*(WITH .*)?SELECT COUNT\(\*\) AS n FROM \(SELECT 1 FROM images/s.test(sql))
			.map(sql => ({ sql, reads: (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map(row => row.detail).filter(detail => /^(SEARCH|SCAN) i\b/.test(detail)) }));
	} finally {
		db.close();
	}
}

it("SQLite: a user's or a category's capped total is counted from indexes alone, the trash filter included", async () => {
	// Up to 1,001 matches are counted for every page: a table row read per match made a plain
	// user's list page 40x slower at 1M images once the trash filter needed trashed_at.
	const { file, removeDir } = await tempDatabaseFile();
	try {
		const viewer = { id: "u-alice", role: "user" as const };
		const counts = await countPlans(file, async repo => {
			await repo.search({ viewer, sort: "-createdAt", limit: 10 });
			await repo.search({ viewer, sort: "-createdAt", limit: 10, query: parseSearchQuery("category:c1") });
			await repo.search({ viewer: null, sort: "-createdAt", limit: 10 });
		});
		assert.equal(counts.length, 3, counts.map(count => count.sql).join("\n"));
		for (const { sql, reads } of counts) assert.ok(reads.length > 0 && reads.every(detail => detail.includes("COVERING INDEX")), `${sql}\n${reads.join("\n")}`);
	} finally {
		await removeDir();
	}
});
