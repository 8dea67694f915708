import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteShareRepository } from "../../models/shares/sqlite-repository.ts";
import { shareRepositoryContract } from "./share-repository.contract.ts";

shareRepositoryContract("SQLite", async () => {
	const dir = await mkdtemp(join(tmpdir(), "imgmesh-shares-"));
	return { repo: new SqliteShareRepository(join(dir, "images.db")), cleanup: () => rm(dir, { recursive: true, force: true }) };
});
