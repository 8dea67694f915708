/** The ImportRepository contract against MongoDB (FerretDB): one server for the file, a fresh database per test. */
import { after, before, describe } from "node:test";
import { MongoImportRepository } from "../../models/imports/mongo-repository.ts";
import { dropDatabase, type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { importRepositoryContract } from "./import-repository.contract.ts";

describe("MongoDB import repository (FerretDB)", { skip: ferretDbSkipReason() }, () => {
	let server: FerretDb;
	before(async () => {
		server = await startFerretDb();
	});
	after(() => server.stop());

	importRepositoryContract("MongoDB", async () => {
		const url = server.databaseUrl();
		const repo = new MongoImportRepository({ url, timeoutMs: 2000 });
		return {
			repo,
			async cleanup() {
				await repo.close();
				await dropDatabase(url);
			}
		};
	});
});
