import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteAlbumRepository } from "../../models/albums/sqlite-repository.ts";
import { albumRepositoryContract } from "./album-repository.contract.ts";

albumRepositoryContract("SQLite", async () => {
	const dir = await mkdtemp(join(tmpdir(), "imgmesh-albums-"));
	return { repo: new SqliteAlbumRepository(join(dir, "images.db")), cleanup: () => rm(dir, { recursive: true, force: true }) };
});
