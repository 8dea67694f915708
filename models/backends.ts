/**
 * Which backend stores what, decided by the configuration: SQLite files under DATA_DIR (embedded
 * mode), or MongoDB when MONGO_URL is set, so that any number of nodes share the metadata; blobs
 * in files under DATA_DIR, or in GridFS with STORAGE=gridfs, so that nodes need no shared disk.
 * The services' repositoryMixin open functions call these and nothing else.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Config } from "../config/index.ts";
import type { BlobStore } from "./blob-store.ts";
import { Keyring } from "./envelope-crypto.ts";
import { FsBlobStore } from "./fs-blob-store.ts";
import type { CategoryRepository, ImageRepository } from "./image.ts";
import type { ImportRepository } from "./import-job.ts";
import type { MongoOptions } from "./mongo.ts";
import { SqliteCategoryRepository, SqliteImageRepository } from "./sqlite-image-repository.ts";
import { SqliteImportRepository } from "./sqlite-import-repository.ts";
import { SqliteUserRepository } from "./sqlite-user-repository.ts";
import type { UserRepository } from "./user.ts";

// The MongoDB modules load only when MONGO_URL is set: the driver costs an embedded node ~12 MiB
// of RSS, and embedded mode is held to a memory budget (README, Benchmarks).
const load = createRequire(import.meta.url);
const mongoImages = () => load("./mongo-image-repository.ts") as typeof import("./mongo-image-repository.ts");
const mongoUsers = () => load("./mongo-user-repository.ts") as typeof import("./mongo-user-repository.ts");
const mongoImports = () => load("./mongo-import-repository.ts") as typeof import("./mongo-import-repository.ts");
const gridFs = () => load("./gridfs-blob-store.ts") as typeof import("./gridfs-blob-store.ts");

function mongoOptions(config: Config): MongoOptions | null {
	return config.mongoUrl ? { url: config.mongoUrl, timeoutMs: config.mongoTimeoutMs } : null;
}

export function openImageRepository(config: Config): ImageRepository {
	const mongo = mongoOptions(config);
	return mongo ? new (mongoImages().MongoImageRepository)(mongo) : new SqliteImageRepository(join(config.dataDir, "images.db"));
}

export function openCategoryRepository(config: Config): CategoryRepository {
	const mongo = mongoOptions(config);
	return mongo ? new (mongoImages().MongoCategoryRepository)(mongo) : new SqliteCategoryRepository(join(config.dataDir, "images.db"));
}

export function openUserRepository(config: Config): UserRepository {
	const mongo = mongoOptions(config);
	return mongo ? new (mongoUsers().MongoUserRepository)(mongo) : new SqliteUserRepository(join(config.dataDir, "users.db"));
}

export function openImportRepository(config: Config): ImportRepository {
	const mongo = mongoOptions(config);
	return mongo ? new (mongoImports().MongoImportRepository)(mongo) : new SqliteImportRepository(join(config.dataDir, "imports.db"));
}

export function openBlobStore(config: Config): BlobStore {
	const keyring = new Keyring(config.storageMasterKey, config.storageOldMasterKeys);
	const mongo = config.storage === "gridfs" ? mongoOptions(config) : null;
	return mongo ? new (gridFs().GridFsBlobStore)({ ...mongo, keyring }) : new FsBlobStore({ root: join(config.dataDir, "blobs"), keyring });
}
