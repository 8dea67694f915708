/** STORAGE=s3 and its S3_* variables as loadConfig reads them. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadConfig } from "../../../config/index.ts";
import { readsBlobsDirectly } from "../../../models/backends.ts";

describe("storage configuration", () => {
	const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-config-"));
	after(() => rmSync(dataDir, { recursive: true, force: true }));
	const load = (env: Record<string, string>) => loadConfig({ DATA_DIR: dataDir, ...env });

	it("reads the blob store directly by default only where every node shares its index: GridFS, S3 with MONGO_URL", () => {
		const mongo = { MONGO_URL: "mongodb://127.0.0.1/x" };
		const s3 = { STORAGE: "s3", S3_ENDPOINT: "http://127.0.0.1:8333", S3_BUCKET: "b" };
		assert.equal(readsBlobsDirectly(load({})), false, "files: only where the operator says the disk is shared");
		assert.equal(readsBlobsDirectly(load({ BLOB_READS: "direct" })), true);
		assert.equal(readsBlobsDirectly(load({ STORAGE: "gridfs", ...mongo })), true);
		assert.equal(readsBlobsDirectly(load({ ...s3, ...mongo })), true);
		// A SQLite index is the storage node's own: another node's would be empty, every object an orphan.
		assert.equal(readsBlobsDirectly(load(s3)), false);
		assert.equal(readsBlobsDirectly(load({ STORAGE: "gridfs", ...mongo, BLOB_READS: "storage" })), false);
	});

	it("reads no S3 settings for the other backends", () => {
		assert.equal(load({}).s3, undefined);
		assert.equal(load({ STORAGE: "gridfs", MONGO_URL: "mongodb://127.0.0.1/x", S3_BUCKET: "b" }).s3, undefined);
	});

	it("reads the S3_* bucket as the migration target whatever STORAGE is, and none without S3_BUCKET", () => {
		const config = load({ STORAGE: "gridfs", MONGO_URL: "mongodb://127.0.0.1/x", S3_ENDPOINT: "http://127.0.0.1:8333", S3_BUCKET: "b", S3_PREFIX: "p" });
		assert.equal(config.s3, undefined, "the blobs stay on GridFS");
		assert.equal(config.s3MigrationTarget?.bucket, "b");
		assert.equal(config.s3MigrationTarget?.prefix, "p/");
		assert.equal(config.s3MigrationTarget?.forcePathStyle, true);
		assert.equal(load({}).s3MigrationTarget, undefined);
	});

	it("reads a bucket on an S3-compatible server, path-style, its prefix as a folder", () => {
		const config = load({ STORAGE: "s3", S3_ENDPOINT: "http://127.0.0.1:8333", S3_BUCKET: "photos", S3_PREFIX: "imgmesh", S3_ACCESS_KEY_ID: "id", S3_SECRET_ACCESS_KEY: "secret" });
		assert.equal(config.storage, "s3");
		assert.deepEqual(config.s3, {
			endpoint: "http://127.0.0.1:8333",
			region: "us-east-1",
			bucket: "photos",
			prefix: "imgmesh/",
			credentials: { accessKeyId: "id", secretAccessKey: "secret" },
			forcePathStyle: true,
			presignedRedirect: false,
			presignedTtlSeconds: 300
		});
	});

	it("leaves AWS itself to the SDK's credential chain and virtual-hosted buckets", () => {
		const { s3 } = load({ STORAGE: "S3", S3_BUCKET: "photos", S3_REGION: "eu-west-1", S3_PREFIX: "a/b/" });
		assert.deepEqual(s3, {
			endpoint: undefined,
			region: "eu-west-1",
			bucket: "photos",
			prefix: "a/b/",
			credentials: undefined,
			forcePathStyle: false,
			presignedRedirect: false,
			presignedTtlSeconds: 300
		});
	});

	it("reads presigned redirects and their lifetime, within SigV4's seven days", () => {
		const { s3 } = load({ STORAGE: "s3", S3_BUCKET: "photos", S3_PRESIGNED_REDIRECT: "true", S3_PRESIGNED_TTL_SECONDS: "60" });
		assert.equal(s3?.presignedRedirect, true);
		assert.equal(s3?.presignedTtlSeconds, 60);
		assert.throws(() => load({ STORAGE: "s3", S3_BUCKET: "b", S3_PRESIGNED_TTL_SECONDS: "0" }), /S3_PRESIGNED_TTL_SECONDS must be an integer >= 1/);
		assert.throws(() => load({ STORAGE: "s3", S3_BUCKET: "b", S3_PRESIGNED_TTL_SECONDS: String(8 * 24 * 3600) }), /S3_PRESIGNED_TTL_SECONDS must be at most 604800/);
	});

	it("refuses a missing bucket, half a key pair and an unknown backend", () => {
		assert.throws(() => load({ STORAGE: "s3" }), /S3_BUCKET/);
		assert.throws(() => load({ STORAGE: "s3", S3_BUCKET: "b", S3_ACCESS_KEY_ID: "id" }), /S3_SECRET_ACCESS_KEY/);
		assert.throws(() => load({ STORAGE: "ftp" }), /STORAGE must be one of fs, gridfs, s3/);
	});
});
