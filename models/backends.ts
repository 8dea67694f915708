/**
 * Which backend stores what, decided by the configuration: SQLite files under DATA_DIR (embedded
 * mode), or MongoDB when MONGO_URL is set, so that any number of nodes share the metadata; blobs
 * in files under DATA_DIR, or in GridFS with STORAGE=gridfs, so that nodes need no shared disk.
 * The services' repositoryMixin open functions call these and nothing else.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Config } from "../config/index.ts";
import type { BlobReader, BlobStore } from "./storage/blob-store.ts";
import { BadRequestError } from "./shared/errors.ts";
import { Keyring } from "./storage/envelope-crypto.ts";
import { FsBlobStore } from "./storage/fs-blob-store.ts";
import type { S3BlobIndex } from "./storage/s3-blob-index.ts";
import { SqliteS3BlobIndex } from "./storage/s3-sqlite-index.ts";
import type { AlbumRepository } from "./albums/album.ts";
import { SqliteAlbumRepository } from "./albums/sqlite-repository.ts";
import type { CategoryRepository } from "./categories/category.ts";
import { SqliteCategoryRepository } from "./categories/sqlite-repository.ts";
import type { ImageRepository } from "./images/image.ts";
import type { ImportRepository } from "./imports/import-job.ts";
import type { ShareRepository } from "./shares/share.ts";
import { SqliteShareRepository } from "./shares/sqlite-repository.ts";
import type { MongoOptions } from "./db/mongo.ts";
import { SqliteImageRepository } from "./images/sqlite-repository.ts";
import { SqliteImportRepository } from "./imports/sqlite-repository.ts";
import { SqliteUserRepository } from "./users/sqlite-repository.ts";
import type { UserRepository } from "./users/user.ts";

// The MongoDB modules load only when MONGO_URL is set: the driver costs an embedded node ~12 MiB
// of RSS, and embedded mode is held to a memory budget (docs/benchmarks.md).
const load = createRequire(import.meta.url);
const mongoImages = () => load("./images/mongo-repository.ts") as typeof import("./images/mongo-repository.ts");
const mongoAlbums = () => load("./albums/mongo-repository.ts") as typeof import("./albums/mongo-repository.ts");
const mongoCategories = () => load("./categories/mongo-repository.ts") as typeof import("./categories/mongo-repository.ts");
const mongoUsers = () => load("./users/mongo-repository.ts") as typeof import("./users/mongo-repository.ts");
const mongoShares = () => load("./shares/mongo-repository.ts") as typeof import("./shares/mongo-repository.ts");
const mongoImports = () => load("./imports/mongo-repository.ts") as typeof import("./imports/mongo-repository.ts");
const gridFs = () => load("./storage/gridfs-blob-store.ts") as typeof import("./storage/gridfs-blob-store.ts");
// Likewise the AWS SDK, only with STORAGE=s3.
const s3 = () => load("./storage/s3-blob-store.ts") as typeof import("./storage/s3-blob-store.ts");
const s3MongoIndex = () => load("./storage/s3-mongo-index.ts") as typeof import("./storage/s3-mongo-index.ts");

function mongoOptions(config: Config): MongoOptions | null {
	return config.mongoUrl ? { url: config.mongoUrl, timeoutMs: config.mongoTimeoutMs } : null;
}

export function openImageRepository(config: Config): ImageRepository {
	const mongo = mongoOptions(config);
	return mongo ? new (mongoImages().MongoImageRepository)(mongo) : new SqliteImageRepository(join(config.dataDir, "images.db"));
}

export function openCategoryRepository(config: Config): CategoryRepository {
	const mongo = mongoOptions(config);
	return mongo ? new (mongoCategories().MongoCategoryRepository)(mongo) : new SqliteCategoryRepository(join(config.dataDir, "images.db"));
}

/** Albums live beside the images they list: the images database file, or the MongoDB database. */
export function openAlbumRepository(config: Config): AlbumRepository {
	const mongo = mongoOptions(config);
	return mongo ? new (mongoAlbums().MongoAlbumRepository)(mongo) : new SqliteAlbumRepository(join(config.dataDir, "images.db"));
}

export function openUserRepository(config: Config): UserRepository {
	const mongo = mongoOptions(config);
	return mongo ? new (mongoUsers().MongoUserRepository)(mongo) : new SqliteUserRepository(join(config.dataDir, "users.db"));
}

export function openImportRepository(config: Config): ImportRepository {
	const mongo = mongoOptions(config);
	return mongo ? new (mongoImports().MongoImportRepository)(mongo) : new SqliteImportRepository(join(config.dataDir, "imports.db"));
}

/** Share links live beside the images they open: in the images database, or MongoDB. */
export function openShareRepository(config: Config): ShareRepository {
	const mongo = mongoOptions(config);
	return mongo ? new (mongoShares().MongoShareRepository)(mongo) : new SqliteShareRepository(join(config.dataDir, "images.db"));
}

/** The configured master keys: the current one seals, older ones still open (rotation). */
export function masterKeyring(config: Config): Keyring {
	return new Keyring(config.storageMasterKey, config.storageOldMasterKeys);
}

/** The S3 store's index lives where the node's other metadata does: MongoDB or a SQLite file. */
function openS3BlobIndex(config: Config): S3BlobIndex {
	const mongo = mongoOptions(config);
	return mongo ? new (s3MongoIndex().MongoS3BlobIndex)(mongo) : new SqliteS3BlobIndex(join(config.dataDir, "s3-index.db"));
}

export function openBlobStore(config: Config): BlobStore {
	return openBlobBackend(config, false);
}

/** The backends `storage migrate --to` can copy into: every one. */
export const MIGRATION_TARGETS = ["fs", "gridfs", "s3"] as const;
export type MigrationTarget = (typeof MIGRATION_TARGETS)[number];

/**
 * The store a migration copies into, as a node restarted with STORAGE=<to> opens it: files under
 * DATA_DIR/blobs, GridFS in the MONGO_URL database, or the S3_* bucket with its index where that
 * node will look for it (MongoDB, or DATA_DIR/s3-index.db).
 */
export function openMigrationTarget(config: Config, to: MigrationTarget): BlobStore {
	if (config.storage === to) throw new BadRequestError(`The blobs are on ${to} already`, "SAME_BACKEND");
	if (to === "gridfs" && !config.mongoUrl) throw new BadRequestError("Set MONGO_URL on the storage node to migrate to GridFS", "NO_MIGRATION_TARGET");
	if (to === "s3" && !config.s3MigrationTarget) throw new BadRequestError("Set S3_BUCKET and the other S3_* variables on the storage node to migrate to S3", "NO_MIGRATION_TARGET");
	return openBlobBackend({ ...config, storage: to, s3: to === "s3" ? config.s3MigrationTarget : undefined }, false);
}

/** The same store opened to read only: its temp files, indexes and sweeps stay the storage service's. */
export function openBlobReader(config: Config): BlobReader {
	return openBlobBackend(config, true);
}

function openBlobBackend(config: Config, readOnly: boolean): BlobStore {
	const keyring = masterKeyring(config);
	if (config.s3) return new (s3().S3BlobStore)({ ...config.s3, keyring, index: openS3BlobIndex(config), readOnly });
	const mongo = config.storage === "gridfs" ? mongoOptions(config) : null;
	return mongo ? new (gridFs().GridFsBlobStore)({ ...mongo, keyring, readOnly }) : new FsBlobStore({ root: fsBlobRoot(config), keyring, readOnly });
}

/**
 * Whether a node that does not host the storage service opens the blob store itself to read
 * (mixins/blob-reader.mixin.ts) rather than pulling the bytes from a storage node through the
 * transporter. GridFS is reachable from every node that reaches MongoDB, and so is an S3 bucket
 * whose index is in MongoDB (a SQLite index is the storage node's own); files under DATA_DIR only
 * when the operator says the disk is shared (BLOB_READS=direct).
 */
export function readsBlobsDirectly(config: Config): boolean {
	if (config.blobReads !== "auto") return config.blobReads === "direct";
	return config.storage === "gridfs" || (config.storage === "s3" && config.mongoUrl !== undefined);
}

function fsBlobRoot(config: Config): string {
	return join(config.dataDir, "blobs");
}

/**
 * The local directories a node's stores write into, named as the configuration names them (not
 * by path, which is the server's business): readiness watches the free space of each. The blob
 * files may sit on a volume of their own.
 */
export function localStorageDirs(config: Config): { name: string; path: string }[] {
	const dataDir = { name: "DATA_DIR", path: config.dataDir };
	return config.storage === "fs" ? [dataDir, { name: "DATA_DIR/blobs", path: fsBlobRoot(config) }] : [dataDir];
}
