/**
 * The blob stores side by side (`npm run bench:blob-stores`): files, GridFS on FerretDB, and S3 on
 * SeaweedFS with its index in SQLite and in MongoDB (FerretDB), both servers started here, with
 * the same blob workloads as bench:backends in the same run. The figures are per store call, in
 * process, without HTTP or the transporter, every server on this machine: they compare what each
 * store costs, not what a remote bucket's network would add.
 *
 * Prints a table and writes bench/results/blob-stores-<timestamp>.json and blob-stores-latest.json.
 *
 * Environment (defaults in brackets):
 *   BENCH_SECONDS [3]        measured duration of each workload
 *   BENCH_CONCURRENCY [8]    calls in flight
 *   BENCH_BLOB_KIB [1024]    size of each blob
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BlobStore } from "../models/storage/blob-store.ts";
import { Keyring } from "../models/storage/envelope-crypto.ts";
import { FsBlobStore } from "../models/storage/fs-blob-store.ts";
import { GridFsBlobStore } from "../models/storage/gridfs-blob-store.ts";
import { S3BlobStore } from "../models/storage/s3-blob-store.ts";
import { MongoS3BlobIndex } from "../models/storage/s3-mongo-index.ts";
import { SqliteS3BlobIndex } from "../models/storage/s3-sqlite-index.ts";
import { startFerretDb } from "../test/helpers/ferretdb.ts";
import { startS3 } from "../test/helpers/s3.ts";
import { blobWorkloads, envInt, machineInfo, type Measured, measureCalls, printTable, saveResults } from "./lib.ts";

const params = {
	seconds: envInt("BENCH_SECONDS", 3, 1),
	concurrency: envInt("BENCH_CONCURRENCY", 8, 1),
	blobKiB: envInt("BENCH_BLOB_KIB", 1024, 1)
};

async function run(name: string, store: BlobStore): Promise<Record<string, Measured>> {
	const results: Record<string, Measured> = {};
	await blobWorkloads(
		store,
		params.blobKiB,
		(op, bytes) => measureCalls(op, params, bytes),
		async (workload, work) => {
			results[workload] = await work();
			console.log(`  ${name}: ${workload} ${results[workload]!.opsPerS} ops/s`);
		}
	);
	await store.close();
	return results;
}

async function main(): Promise<void> {
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-bench-blob-stores-"));
	const [mongo, s3] = await Promise.all([startFerretDb(), startS3()]);
	const keyring = new Keyring(randomBytes(32));
	const stores: Record<string, () => BlobStore> = {
		files: () => new FsBlobStore({ root: join(dir, "blobs"), keyring }),
		"GridFS (FerretDB)": () => new GridFsBlobStore({ url: mongo.databaseUrl(), timeoutMs: 5000, keyring }),
		"S3 (SeaweedFS), SQLite index": () => new S3BlobStore({ ...s3.location(), keyring, index: new SqliteS3BlobIndex(join(dir, "s3-index.db")) }),
		"S3 (SeaweedFS), MongoDB index": () =>
			new S3BlobStore({ ...s3.location(), keyring, index: new MongoS3BlobIndex({ url: mongo.databaseUrl(), timeoutMs: 5000 }) })
	};
	const results: Record<string, Record<string, Measured>> = {};
	try {
		for (const [name, open] of Object.entries(stores)) {
			console.log(`Running ${name} ...`);
			results[name] = await run(name, open());
		}
	} finally {
		await Promise.all([mongo.stop(), s3.stop()]);
		rmSync(dir, { recursive: true, force: true });
	}
	const names = Object.keys(results);
	const cell = (m: Measured) => `${m.opsPerS}/s, ${m.mbPerS} MB/s, p99 ${m.latencyMs.p99} ms`;
	printTable(
		`Blob stores, ${params.concurrency} calls in flight, ${params.seconds} s each`,
		["operation", ...names],
		Object.keys(results[names[0]!]!).map(op => [op, ...names.map(name => cell(results[name]![op]!))])
	);
	const path = saveResults("blob-stores", { params, machine: machineInfo(), results });
	console.log(`\nSaved ${path}`);
}

await main();
