/**
 * The garbage collector of bytes on S3 (SeaweedFS) with the index in MongoDB (FerretDB), as a
 * cluster's storage nodes share it (storage-gc.suite.ts).
 */
import { redisSkipReason } from "../helpers/cluster.ts";
import { ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { s3SkipReason, startS3 } from "../helpers/s3.ts";
import { storageGcSuite } from "./storage-gc.suite.ts";

storageGcSuite("s3", redisSkipReason() || s3SkipReason() || ferretDbSkipReason() || undefined, async () => {
	const [s3, mongo] = await Promise.all([startS3(), startFerretDb()]);
	return {
		env: { ...s3.nodeEnv(s3.location()), MONGO_URL: mongo.databaseUrl() },
		stop: async () => {
			await Promise.all([s3.stop(), mongo.stop()]);
		}
	};
});
