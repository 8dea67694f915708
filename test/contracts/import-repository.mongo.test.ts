/** The ImportRepository contract against MongoDB (FerretDB): one server for the file, a fresh database per test. */
import { MongoImportRepository } from "../../models/imports/mongo-repository.ts";
import { describeOnFerretDb, dropDatabase } from "../helpers/ferretdb.ts";
import { importRepositoryContract } from "./import-repository.contract.ts";

describeOnFerretDb("MongoDB import repository (FerretDB)", server => {
	importRepositoryContract("MongoDB", async () => {
		const url = server().databaseUrl();
		return { repo: new MongoImportRepository({ url, timeoutMs: 2000 }), cleanup: () => dropDatabase(url) };
	});
});
