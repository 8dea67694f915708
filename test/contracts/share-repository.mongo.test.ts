/** The ShareRepository contract against MongoDB (FerretDB): one server for the file, a fresh database per test. */
import { MongoShareRepository } from "../../models/shares/mongo-repository.ts";
import { describeOnFerretDb, dropDatabase } from "../helpers/ferretdb.ts";
import { shareRepositoryContract } from "./share-repository.contract.ts";

describeOnFerretDb("MongoDB share repository (FerretDB)", server => {
	shareRepositoryContract("MongoDB", async () => {
		const url = server().databaseUrl();
		return { repo: new MongoShareRepository({ url, timeoutMs: 2000 }), cleanup: () => dropDatabase(url) };
	});
});
