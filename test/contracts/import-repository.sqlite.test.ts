import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteImportRepository } from "../../models/imports/sqlite-repository.ts";
import { importRepositoryContract } from "./import-repository.contract.ts";

importRepositoryContract("SQLite", async () => {
	const dir = await mkdtemp(join(tmpdir(), "imgmesh-imports-"));
	const repo = new SqliteImportRepository(join(dir, "imports.db"));
	return {
		repo,
		async cleanup() {
			await repo.close();
			await rm(dir, { recursive: true, force: true });
		}
	};
});
