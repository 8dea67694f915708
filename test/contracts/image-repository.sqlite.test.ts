import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { closeDatabase, migrate, openDatabase } from "../../models/db/sqlite.ts";
import { SqliteCategoryRepository } from "../../models/categories/sqlite-repository.ts";
import { SqliteImageRepository } from "../../models/images/sqlite-repository.ts";
import { imageRepositoryContract } from "./image-repository.contract.ts";

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
			{ schema: "images", version: 3 },
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
