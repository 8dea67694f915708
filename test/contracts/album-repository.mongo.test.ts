/** The AlbumRepository contract against MongoDB (FerretDB): one server for the file, a fresh database per test. */
import { MongoAlbumRepository } from "../../models/albums/mongo-repository.ts";
import { describeOnFerretDb, dropDatabase } from "../helpers/ferretdb.ts";
import { albumRepositoryContract } from "./album-repository.contract.ts";

describeOnFerretDb("MongoDB album repository (FerretDB)", server => {
	albumRepositoryContract("MongoDB", async () => {
		const url = server().databaseUrl();
		return { repo: new MongoAlbumRepository({ url, timeoutMs: 2000 }), cleanup: () => dropDatabase(url) };
	});
});
