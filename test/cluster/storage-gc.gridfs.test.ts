/** The garbage collector of bytes on GridFS and MongoDB (FerretDB) (storage-gc.suite.ts). */
import { redisSkipReason } from "../helpers/cluster.ts";
import { ferretDbSkipReason } from "../helpers/ferretdb.ts";
import { storageGcSuite } from "./storage-gc.suite.ts";

storageGcSuite("gridfs", redisSkipReason() || ferretDbSkipReason() || undefined);
