import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteUserRepository } from "../../models/users/sqlite-repository.ts";
import { userRepositoryContract } from "./user-repository.contract.ts";

userRepositoryContract("SQLite", async () => {
	const dir = await mkdtemp(join(tmpdir(), "imgmesh-users-"));
	return { users: new SqliteUserRepository(join(dir, "users.db")), cleanup: () => rm(dir, { recursive: true, force: true }) };
});
