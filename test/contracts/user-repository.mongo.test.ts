/** The UserRepository contract against MongoDB (FerretDB): one server for the file, a fresh database per test. */
import { after, before, describe } from "node:test";
import { MongoUserRepository } from "../../models/users/mongo-repository.ts";
import { dropDatabase, type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { userRepositoryContract } from "./user-repository.contract.ts";

describe("MongoDB user repository (FerretDB)", { skip: ferretDbSkipReason() }, () => {
	let server: FerretDb;
	before(async () => {
		server = await startFerretDb();
	});
	after(() => server.stop());

	userRepositoryContract("MongoDB", async () => {
		const url = server.databaseUrl();
		const users = new MongoUserRepository({ url, timeoutMs: 2000 });
		return {
			users,
			async cleanup() {
				await users.close();
				await dropDatabase(url);
			}
		};
	});
});
