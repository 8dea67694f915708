/** The UserRepository contract against MongoDB (FerretDB): one server for the file, a fresh database per test. */
import { MongoUserRepository } from "../../models/users/mongo-repository.ts";
import { describeOnFerretDb, dropDatabase } from "../helpers/ferretdb.ts";
import { userRepositoryContract } from "./user-repository.contract.ts";

describeOnFerretDb("MongoDB user repository (FerretDB)", server => {
	userRepositoryContract("MongoDB", async () => {
		const url = server().databaseUrl();
		return { users: new MongoUserRepository({ url, timeoutMs: 2000 }), cleanup: () => dropDatabase(url) };
	});
});
