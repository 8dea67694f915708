/** The garbage collector of bytes on GridFS and MongoDB (FerretDB) (storage-gc.suite.ts). */
import { redisSkipReason } from "../helpers/cluster.ts";
import { ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { storageGcSuite } from "./storage-gc.suite.ts";

storageGcSuite("gridfs", redisSkipReason() || ferretDbSkipReason() || undefined, async () => {
	const mongo = await startFerretDb();
	return { env: { MONGO_URL: mongo.databaseUrl(), STORAGE: "gridfs" }, stop: () => mongo.stop() };
});
