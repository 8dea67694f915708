/**
 * Storage backends side by side (`npm run bench:backends`): the embedded backends (SQLite
 * repositories, file blob store) as the baseline, and the distributed ones (MongoDB repositories,
 * GridFS blob store) on FerretDB started here (on PostgreSQL where it answers, else SQLite:
 * test/helpers/ferretdb.ts; FERRETDB_HANDLER=sqlite forces it), with the same operations in the
 * same run. The figures are per backend call, in process, without HTTP or the transporter;
 * FerretDB v1 is not MongoDB, so the MongoDB column is what the tests' server does, not production.
 *
 * Prints a table and writes bench/results/backends-<timestamp>.json and backends-latest.json.
 *
 * Environment (defaults in brackets):
 *   BENCH_SECONDS [3]        measured duration of each workload
 *   BENCH_CONCURRENCY [8]    calls in flight
 *   BENCH_DOCS [2000]        images inserted before the read workloads
 *   BENCH_BLOB_KIB [1024]    size of each blob in the blob workloads
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BlobStore } from "../models/storage/blob-store.ts";
import { Keyring } from "../models/storage/envelope-crypto.ts";
import { FsBlobStore } from "../models/storage/fs-blob-store.ts";
import { GridFsBlobStore } from "../models/storage/gridfs-blob-store.ts";
import type { ImageDoc, ImageRepository } from "../models/images/image.ts";
import { MongoImageRepository } from "../models/images/mongo-repository.ts";
import { parseSearchQuery } from "../models/images/search-query.ts";
import { SqliteImageRepository } from "../models/images/sqlite-repository.ts";
import { startFerretDb } from "../test/helpers/ferretdb.ts";
import { blobWorkloads, envInt, machineInfo, type Measured, measureCalls, printTable, round, saveResults } from "./lib.ts";

const params = {
	seconds: envInt("BENCH_SECONDS", 3, 1),
	concurrency: envInt("BENCH_CONCURRENCY", 8, 1),
	docs: envInt("BENCH_DOCS", 2000, 1),
	blobKiB: envInt("BENCH_BLOB_KIB", 1024, 1)
};

interface Backend {
	name: string;
	images: ImageRepository;
	blobs: BlobStore;
	close(): Promise<void>;
}

/** Calls `op(i)` with BENCH_CONCURRENCY in flight for BENCH_SECONDS; `bytes` per call gives MB/s. */
const measure = (op: (i: number) => Promise<unknown>, bytes = 0) => measureCalls(op, params, bytes);

const WORDS = ["harbour", "sunset", "forest", "city", "night", "river", "mountain", "street"];

function image(prefix: string, i: number): ImageDoc {
	const createdAt = new Date(Date.UTC(2024, 0, 1) + i * 1000).toISOString();
	return {
		id: `${prefix}-${String(i).padStart(8, "0")}`,
		owner: `u-${i % 10}`,
		ownerName: `user${i % 10}`,
		name: `${WORDS[i % WORDS.length]} ${WORDS[(i * 7) % WORDS.length]} ${i}`,
		description: "",
		filename: "photo.jpg",
		contentType: "image/jpeg",
		format: "jpeg",
		size: 50_000 + i,
		width: 1000,
		height: 800,
		sha256: "0".repeat(64),
		encrypted: false,
		visibility: i % 3 === 0 ? "private" : "public",
		showMetadata: false,
		category: null,
		tags: [{ label: WORDS[i % 5]!, source: "user" }],
		views: 0,
		status: "ready",
		statusReason: null,
		metadata: null,
		renditions: [],
		blob: `blob-${i}`,
		createdAt,
		updatedAt: createdAt,
		trashedAt: null
	};
}

/** The workloads, in order; each returns its measurement. */
async function run(backend: Backend): Promise<Record<string, Measured>> {
	const results: Record<string, Measured> = {};
	const step = async (name: string, work: () => Promise<Measured>) => {
		results[name] = await work();
		console.log(`  ${backend.name}: ${name} ${results[name]!.opsPerS} ops/s`);
	};
	const inserted: string[] = [];
	await step("insert image", () =>
		measure(async i => {
			const doc = image("ins", i);
			await backend.images.insert(doc);
			inserted.push(doc.id);
		})
	);
	// The read workloads then see the same BENCH_DOCS images on both backends.
	for (const id of inserted) await backend.images.remove(id);
	for (let i = 0; i < params.docs; i++) await backend.images.insert(image("doc", i));
	const ids = Array.from({ length: params.docs }, (_, i) => image("doc", i).id);
	await step("get image", () => measure(i => backend.images.get(ids[i % ids.length]!)));
	await step("increment views", () => measure(i => backend.images.incrementViews(ids[i % ids.length]!)));
	const query = parseSearchQuery("harbour sun");
	await step("search: 2 words, page of 20 + total", () => measure(() => backend.images.search({ viewer: null, query, sort: "-createdAt", limit: 20 })));
	await step("list newest: page of 20 + total", () => measure(() => backend.images.search({ viewer: null, sort: "-createdAt", limit: 20 })));

	await blobWorkloads(backend.blobs, params.blobKiB, measure, step);
	return results;
}

async function main(): Promise<void> {
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-bench-backends-"));
	const mongo = await startFerretDb();
	const keyring = new Keyring(randomBytes(32));
	const embedded: Backend = {
		name: "SQLite + files",
		images: new SqliteImageRepository(join(dir, "images.db")),
		blobs: new FsBlobStore({ root: join(dir, "blobs"), keyring }),
		async close() {
			await this.images.close();
			await this.blobs.close();
		}
	};
	const url = mongo.databaseUrl();
	const distributed: Backend = {
		name: `MongoDB (FerretDB on ${mongo.handler}) + GridFS`,
		images: new MongoImageRepository({ url, timeoutMs: 5000 }),
		blobs: new GridFsBlobStore({ url, timeoutMs: 5000, keyring }),
		async close() {
			await this.images.close();
			await this.blobs.close();
		}
	};
	const results: Record<string, Record<string, Measured>> = {};
	try {
		for (const backend of [embedded, distributed]) {
			console.log(`Running ${backend.name} ...`);
			results[backend.name] = await run(backend);
			await backend.close();
		}
	} finally {
		await mongo.stop();
		rmSync(dir, { recursive: true, force: true });
	}
	const base = results[embedded.name]!;
	const other = results[distributed.name]!;
	const cell = (m: Measured) => (m.mbPerS === null ? `${m.opsPerS}/s` : `${m.opsPerS}/s, ${m.mbPerS} MB/s`);
	printTable(
		`Backends, ${params.concurrency} calls in flight, ${params.seconds} s each (ratio = MongoDB / SQLite ops/s)`,
		["operation", embedded.name, "p99 ms", distributed.name, "p99 ms", "ratio"],
		Object.keys(base).map(op => [op, cell(base[op]!), base[op]!.latencyMs.p99, cell(other[op]!), other[op]!.latencyMs.p99, round(other[op]!.opsPerS / base[op]!.opsPerS, 3)])
	);
	const path = saveResults("backends", { params: { ...params, ferretDbHandler: mongo.handler }, machine: machineInfo(), results });
	console.log(`\nSaved ${path}`);
}

await main();
