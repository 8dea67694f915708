/** Share links on MongoDB and GridFS (FerretDB) (shares.suite.ts). */
import { ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { sharesSuite } from "./shares.suite.ts";

sharesSuite("MongoDB", ferretDbSkipReason() || undefined, async () => {
	const mongo = await startFerretDb();
	return { env: { MONGO_URL: mongo.databaseUrl(), STORAGE: "gridfs" }, stop: () => mongo.stop() };
});
