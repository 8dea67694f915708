/** The trash on MongoDB and GridFS (FerretDB), like test/service/mongo-node.test.ts runs a node (test/service/trash.suite.ts). */
import { createHash } from "node:crypto";
import { after, before } from "node:test";
import { MongoClient } from "mongodb";
import { type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { trashSuite } from "./trash.suite.ts";

const skip = ferretDbSkipReason();
let mongo: FerretDb | undefined;
let mongoUrl = "";

before(async () => {
	if (skip) return;
	mongo = await startFerretDb();
	mongoUrl = mongo.databaseUrl();
});
after(() => mongo?.stop());

trashSuite(
	"MongoDB + GridFS",
	{
		env: () => ({ MONGO_URL: mongoUrl, STORAGE: "gridfs" }),
		// One blob document per stored plain original, named by its SHA-256.
		async copiesOf(_server, bytes) {
			const client = new MongoClient(mongoUrl);
			try {
				return await client.db().collection("blobs").countDocuments({ sha256: createHash("sha256").update(bytes).digest("hex") });
			} finally {
				await client.close();
			}
		}
	},
	{ skip }
);
