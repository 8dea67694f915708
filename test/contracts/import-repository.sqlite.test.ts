import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteImportRepository } from "../../models/imports/sqlite-repository.ts";
import { importRepositoryContract } from "./import-repository.contract.ts";

importRepositoryContract("SQLite", async () => {
	const dir = await mkdtemp(join(tmpdir(), "imgmesh-imports-"));
	return { repo: new SqliteImportRepository(join(dir, "imports.db")), cleanup: () => rm(dir, { recursive: true, force: true }) };
});
