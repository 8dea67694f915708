/**
 * Storage benchmark (`npm run bench:storage`): every blob backend, embedded and as a 3-node
 * cluster, on the same workload in one run, each figure also as a ratio to embedded on files (the
 * anchor). It answers "what does each backend cost" (docs/storage.md, choosing a backend) and "what
 * do direct reads buy a cluster" (docs/distributed.md, direct reads).
 *
 * Part `http`, per backend, per setup:
 *  - embedded: one process;
 *  - cluster: 3 nodes over Redis (a redis-server each), reading the backend directly: gateway
 *    (api, health, images, categories, users: metadata and token checks stay on the gateway, so
 *    only the bytes' path differs), worker node (transform, worker), data node (storage, so an
 *    upload's bytes cross Redis to it);
 *  - through-storage (only when BENCH_SETUPS names it): the cluster with BLOB_READS=storage, every
 *    read pulled from the data node through Redis, as before direct reads.
 * Backends: files (SQLite metadata; the cluster's nodes share one DATA_DIR, BLOB_READS=direct);
 * S3 on SeaweedFS with SQLite metadata and index (likewise one shared DATA_DIR); GridFS with
 * MongoDB metadata; S3 with its index and the metadata in MongoDB, as a cluster across machines
 * runs it. MongoDB is FerretDB (a fresh database per setup), S3 is SeaweedFS (a fresh prefix per
 * setup), both started here; a backend whose server is not built is skipped with the reason.
 * Workload, as the images' owner (no view counting): 8 JPEGs uploaded untimed (warm-up), N distinct
 * JPEGs uploaded 4 at a time (photos/s, MB/s) and B large noise PNGs one at a time (MB/s), all
 * processed; then
 *  a. GET /api/images/:id/content at K keep-alive connections for S seconds;
 *  b. uncached transforms: every request a variant not made before (`?w=` differs), C at once;
 *  c. cached transforms: the same URLs again at K connections for S seconds.
 * Reported: req/s and p99, CPU ms per request summed over the node processes, and the backend
 * servers' (FerretDB, SeaweedFS) apart.
 *
 * Part `stores`: the BlobStore calls alone, in process (no HTTP, no transporter): puts, whole and
 * 64 KiB range reads of 1 MiB blobs, plain then encrypted, on files, GridFS, and S3 with its index
 * in SQLite and in MongoDB.
 *
 * Writes bench/results/storage-latest.json. Environment (defaults in brackets):
 *   BENCH_PARTS [http,stores]        parts to run
 *   BENCH_SETUPS [embedded,cluster]  setups of part http (add through-storage for the third)
 *   BENCH_UPLOADS [40]               distinct JPEGs per setup
 *   BENCH_BIG_UPLOADS [2]            large PNGs per setup, uploaded one at a time
 *   BENCH_BIG_SIDE [2000]            their side in pixels (about 3 bytes per pixel: 12 MB)
 *   BENCH_SECONDS [5]                measured duration of each GET and cached run (after a 1 s warm-up)
 *   BENCH_CONNECTIONS [16]           keep-alive connections of those runs
 *   BENCH_VARIANTS [3]               uncached variants per image (N × this requests)
 *   BENCH_CONCURRENCY [4]            concurrent uncached requests
 *   BENCH_STORE_SECONDS [2]          duration of each in-process store workload
 *   BENCH_STORE_CONCURRENCY [8]      store calls in flight
 *   BENCH_MAX_MINUTES [25]           hard limit on the whole run
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BlobStore } from "../models/storage/blob-store.ts";
import { Keyring } from "../models/storage/envelope-crypto.ts";
import { FsBlobStore } from "../models/storage/fs-blob-store.ts";
import { GridFsBlobStore } from "../models/storage/gridfs-blob-store.ts";
import { S3BlobStore } from "../models/storage/s3-blob-store.ts";
import { MongoS3BlobIndex } from "../models/storage/s3-mongo-index.ts";
import { SqliteS3BlobIndex } from "../models/storage/s3-sqlite-index.ts";
import { Client } from "../test/helpers/client.ts";
import { clusterEnv, startNode, startRedis, waitForRoutes, type RedisServer } from "../test/helpers/cluster.ts";
import { ferretDbSkipReason, startFerretDb, type FerretDb } from "../test/helpers/ferretdb.ts";
import { s3SkipReason, startS3, type TestS3 } from "../test/helpers/s3.ts";
import { startServer, type RunningServer } from "../test/helpers/server.ts";
import {
	blobWorkloads,
	cpuSeconds,
	envInt,
	machineInfo,
	makeBigPng,
	makeJpegs,
	type Measured,
	measureCalls,
	printTable,
	round,
	runGetLoad,
	runUploads,
	saveResults,
	waitForIdle,
	type BenchImage,
	type GetTarget,
	type MultipartFile
} from "./lib.ts";

const list = (name: string, fallback: string) => (process.env[name] || fallback).split(",").map(item => item.trim());
const params = {
	parts: list("BENCH_PARTS", "http,stores"),
	setups: list("BENCH_SETUPS", "embedded,cluster"),
	uploads: envInt("BENCH_UPLOADS", 40, 1),
	bigUploads: envInt("BENCH_BIG_UPLOADS", 2, 0),
	bigSide: envInt("BENCH_BIG_SIDE", 2000, 64),
	seconds: envInt("BENCH_SECONDS", 5, 1),
	connections: envInt("BENCH_CONNECTIONS", 16, 1),
	variants: envInt("BENCH_VARIANTS", 3, 1),
	concurrency: envInt("BENCH_CONCURRENCY", 4, 1),
	storeSeconds: envInt("BENCH_STORE_SECONDS", 2, 1),
	storeConcurrency: envInt("BENCH_STORE_CONCURRENCY", 8, 1),
	maxMinutes: envInt("BENCH_MAX_MINUTES", 25, 1)
};

const NODE_ENV = { LOG_LEVEL: "error" };
const SETUPS = ["embedded", "cluster", "through-storage"] as const;
type SetupName = (typeof SETUPS)[number];

/** A backend's environment, made afresh for each setup (a new database, a new bucket prefix). */
interface Backend {
	key: string;
	name: string;
	env(): Record<string, string>;
	/** BLOB_READS of the cluster's nodes for direct reads. */
	directReads: string;
	/** Files and SQLite: the cluster's nodes share one DATA_DIR. */
	sharedDataDir: boolean;
	/** The backend servers' processes (FerretDB, SeaweedFS), whose CPU is reported apart. */
	serverPids: number[];
}

interface Setup {
	url: string;
	/** Every node process, for CPU and idleness. */
	pids: number[];
	stop(): Promise<void>;
}

/** The servers this run needs, each started once; undefined with the reason when not built. */
interface Servers {
	mongo: FerretDb | undefined;
	s3: TestS3 | undefined;
	skipped: { mongo: string | false; s3: string | false };
}

async function startServers(): Promise<Servers> {
	const skipped = { mongo: ferretDbSkipReason(), s3: s3SkipReason() };
	const [mongo, s3] = await Promise.all([skipped.mongo ? undefined : startFerretDb(), skipped.s3 ? undefined : startS3()]);
	return { mongo, s3, skipped };
}

function backends({ mongo, s3, skipped }: Servers): (Backend | { key: string; name: string; skipped: string })[] {
	const ferretPids = [mongo?.pid()].filter(pid => pid !== undefined);
	const s3Pids = [s3?.pid()].filter(pid => pid !== undefined);
	const s3Env = () => s3!.nodeEnv(s3!.location());
	return [
		{ key: "fs", name: "files, SQLite", env: () => ({}), directReads: "direct", sharedDataDir: true, serverPids: [] },
		s3
			? { key: "s3", name: "S3 (SeaweedFS), SQLite", env: s3Env, directReads: "direct", sharedDataDir: true, serverPids: s3Pids }
			: { key: "s3", name: "S3 (SeaweedFS), SQLite", skipped: skipped.s3 as string },
		mongo
			? { key: "gridfs", name: "GridFS, MongoDB (FerretDB)", env: () => ({ MONGO_URL: mongo.databaseUrl(), STORAGE: "gridfs" }), directReads: "auto", sharedDataDir: false, serverPids: ferretPids }
			: { key: "gridfs", name: "GridFS, MongoDB (FerretDB)", skipped: skipped.mongo as string },
		mongo && s3
			? { key: "s3-mongo", name: "S3 (SeaweedFS), MongoDB (FerretDB)", env: () => ({ ...s3Env(), MONGO_URL: mongo.databaseUrl() }), directReads: "auto", sharedDataDir: false, serverPids: [...ferretPids, ...s3Pids] }
			: { key: "s3-mongo", name: "S3 (SeaweedFS), MongoDB (FerretDB)", skipped: (skipped.mongo || skipped.s3) as string }
	];
}

// ---------------------------------------------------------------------------------------------
// Part http
// ---------------------------------------------------------------------------------------------

async function startEmbedded(backend: Backend): Promise<Setup> {
	const node = await startServer({ ...NODE_ENV, ...backend.env() });
	return { url: node.url, pids: [node.process.pid!], stop: () => node.stop() };
}

async function startCluster(backend: Backend, blobReads: string, dir: string): Promise<Setup> {
	const redis: RedisServer = await startRedis();
	const env = { ...clusterEnv(redis), ...NODE_ENV, ...backend.env(), BLOB_READS: blobReads };
	// A shared DATA_DIR outlives each node's stop and goes with the bench's directory.
	const dataDir = join(dir, `data-${redis.url.split(":").at(-1)}`);
	mkdirSync(dataDir);
	const options = (nodeId: string) => (backend.sharedDataDir ? { nodeId, dataDir } : { nodeId });
	const data = await startNode(env, ["storage"], options("bench-data"));
	const worker = await startNode(env, ["transform", "worker"], options("bench-worker"));
	const gateway = await startNode(env, ["api", "health", "images", "categories", "users"], options("bench-gateway"));
	await waitForRoutes(gateway.url);
	const nodes: RunningServer[] = [gateway, worker, data];
	return {
		url: gateway.url,
		pids: nodes.map(node => node.process.pid!),
		async stop() {
			await Promise.all(nodes.map(node => node.stop({ keepData: true })));
			await redis.stop();
		}
	};
}

function startSetup(name: SetupName, backend: Backend, dir: string): Promise<Setup> {
	if (name === "embedded") return startEmbedded(backend);
	return startCluster(backend, name === "cluster" ? backend.directReads : "storage", dir);
}

/** Waits until every node is idle (the pipeline done), within limits. */
async function settle(setup: Setup): Promise<void> {
	for (const pid of setup.pids) await waitForIdle(pid, 30_000);
}

function cpuOf(pids: number[]): number {
	return pids.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
}

/** Runs `work` and returns the CPU ms the nodes and the backend servers spent on each of `count()` requests. */
async function withCpu<T>(setup: Setup, backend: Backend, work: () => Promise<T>, count: (result: T) => number) {
	const before = { nodes: cpuOf(setup.pids), servers: cpuOf(backend.serverPids) };
	const result = await work();
	const perRequest = (seconds: number) => round((seconds * 1000) / Math.max(1, count(result)), 2);
	return {
		result,
		cpuMsPerRequest: perRequest(cpuOf(setup.pids) - before.nodes),
		serverCpuMsPerRequest: backend.serverPids.length ? perRequest(cpuOf(backend.serverPids) - before.servers) : null
	};
}

/** A GET load with the CPU spent on it per successful request (warm-up included: its CPU is in the difference). */
async function load(setup: Setup, backend: Backend, token: string, targets: GetTarget[], options: { connections: number; seconds: number; warmup: boolean; maxRequests: number }) {
	const { result, ...cpu } = await withCpu(
		setup,
		backend,
		() =>
			runGetLoad({
				base: setup.url,
				targets,
				headers: { authorization: `Bearer ${token}` },
				connections: options.connections,
				durationMs: options.seconds * 1000,
				warmupMs: options.warmup ? 1000 : 0,
				maxRequests: options.maxRequests,
				timeoutMs: 60_000
			}),
		load => load.ok + load.warmupOk
	);
	const { errorSamples, reqPerS, latencyMs, errors } = result;
	return { reqPerS, p99Ms: latencyMs.p99, p50Ms: latencyMs.p50, errors, errorSamples, ...cpu };
}

/** Uploads `files`, `concurrency` at a time, and what each stored image's id is. */
async function upload(setup: Setup, backend: Backend, token: string, files: MultipartFile[], concurrency: number) {
	const { result, ...cpu } = await withCpu(
		setup,
		backend,
		() => runUploads({ url: `${setup.url}/api/images`, token, fields: {}, files, concurrency, maxMs: 10 * 60_000, timeoutMs: 120_000 }),
		run => run.ok
	);
	const ids = files.map((_, i) => (result.responses[i] as { images?: { id: string }[] } | undefined)?.images?.[0]?.id);
	const { imagesPerS, mbPerS, errors, errorSamples, latencyMs } = result;
	return { ids, figures: { imagesPerS, mbPerS, p99Ms: latencyMs.p99, errors, errorSamples, ...cpu } };
}

async function measure(setup: Setup, backend: Backend, warmUp: BenchImage[], photos: BenchImage[], big: MultipartFile[]) {
	const owner = await new Client(setup.url).register("bench-owner");
	// Not timed: the first uploads of a fresh node load sharp and compile the upload path.
	await upload(setup, backend, owner.token!, warmUp, 4);
	await settle(setup);
	const uploaded = await upload(setup, backend, owner.token!, photos, 4);
	await settle(setup);
	const bigUpload = big.length ? (await upload(setup, backend, owner.token!, big, 1)).figures : null;
	await settle(setup);
	const stored = photos.flatMap((photo, i) => (uploaded.ids[i] ? [{ id: uploaded.ids[i], bytes: photo.bytes }] : []));
	const originals = stored.map(({ id, bytes }) => ({ path: `/api/images/${id}/content`, bytes }));
	const get = await load(setup, backend, owner.token!, originals, { connections: params.connections, seconds: params.seconds, warmup: true, maxRequests: 2_000_000 });
	// Widths no rendition uses, each asked once: every request renders.
	const variants = stored.flatMap(({ id }) => Array.from({ length: params.variants }, (_, v) => ({ path: `/api/images/${id}/content?w=${101 + v}` })));
	await settle(setup);
	const uncached = await load(setup, backend, owner.token!, variants, { connections: params.concurrency, seconds: 600, warmup: false, maxRequests: variants.length });
	await settle(setup);
	const cached = await load(setup, backend, owner.token!, variants, { connections: params.connections, seconds: params.seconds, warmup: true, maxRequests: 2_000_000 });
	return { upload: uploaded.figures, bigUpload, get, uncached, cached };
}

type Run = Awaited<ReturnType<typeof measure>>;

/** Distinct JPEGs uploaded first to each setup, untimed. */
const WARM_UP_UPLOADS = 8;
const splitAt = <T>(items: T[], index: number): [T[], T[]] => [items.slice(0, index), items.slice(index)];

/** The table's columns: a figure of a run, higher is better. */
const COLUMNS: [string, (run: Run) => number | undefined][] = [
	["GET original req/s", run => run.get.reqPerS],
	["transform uncached req/s", run => run.uncached.reqPerS],
	["transform cached req/s", run => run.cached.reqPerS],
	["upload photos MB/s", run => run.upload.mbPerS],
	["upload large MB/s", run => run.bigUpload?.mbPerS]
];

async function partHttp(servers: Servers, dir: string): Promise<Record<string, unknown>> {
	const [photos, warmUp] = splitAt(await makeJpegs(dir, params.uploads + WARM_UP_UPLOADS), params.uploads);
	const big: MultipartFile[] = [];
	for (let i = 0; i < params.bigUploads; i++) {
		const path = join(dir, `noise-${i}.png`);
		await makeBigPng(path, params.bigSide);
		big.push({ filename: `noise-${i}.png`, contentType: "image/png", source: { path, size: statSync(path).size } });
	}
	const setups = SETUPS.filter(name => params.setups.includes(name));
	const results: Record<string, Record<string, unknown>> = {};
	const rows: { label: string; run: Run }[] = [];
	for (const backend of backends(servers)) {
		if ("skipped" in backend) {
			results[backend.key] = { name: backend.name, skipped: backend.skipped };
			console.log(`${backend.name}: skipped, ${backend.skipped}`);
			continue;
		}
		results[backend.key] = { name: backend.name };
		for (const name of setups) {
			const label = `${backend.name}, ${name}`;
			console.log(`${label} ...`);
			const setup = await startSetup(name, backend, dir);
			try {
				const run = await measure(setup, backend, warmUp, photos, big);
				results[backend.key]![name] = run;
				rows.push({ label, run });
			} finally {
				await setup.stop();
			}
		}
	}
	const anchor = rows.find(({ label }) => label === "files, SQLite, embedded")?.run;
	const ratio = (value: number | undefined, base: number | undefined) => (value !== undefined && base ? round(value / base, 2) : "n/a");
	printTable(
		`${params.uploads} JPEGs and ${params.bigUploads} ${params.bigSide}² PNGs; GET and cached at ${params.connections} connections for ${params.seconds} s, uncached ${params.concurrency} at once. (× embedded files)`,
		["backend, setup", ...COLUMNS.map(([name]) => name)],
		rows.map(({ label, run }) => [label, ...COLUMNS.map(([, pick]) => `${pick(run) ?? "n/a"} (${ratio(pick(run), anchor && pick(anchor))})`)])
	);
	printTable(
		"CPU ms per request: the nodes / the backend servers",
		["backend, setup", "GET original", "transform uncached", "transform cached", "upload photo"],
		rows.map(({ label, run }) => [label, ...[run.get, run.uncached, run.cached, run.upload].map(f => `${f.cpuMsPerRequest} / ${f.serverCpuMsPerRequest ?? "-"}`)])
	);
	return results;
}

// ---------------------------------------------------------------------------------------------
// Part stores
// ---------------------------------------------------------------------------------------------

async function runStore(name: string, store: BlobStore): Promise<Record<string, Measured>> {
	const results: Record<string, Measured> = {};
	await blobWorkloads(
		store,
		1024,
		(op, bytes) => measureCalls(op, { seconds: params.storeSeconds, concurrency: params.storeConcurrency }, bytes),
		async (workload, work) => {
			results[workload] = await work();
			console.log(`  ${name}: ${workload} ${results[workload]!.mbPerS} MB/s`);
		}
	);
	await store.close();
	return results;
}

async function partStores({ mongo, s3 }: Servers, dir: string): Promise<Record<string, Record<string, Measured>>> {
	const keyring = new Keyring(randomBytes(32));
	const stores: Record<string, () => BlobStore> = { files: () => new FsBlobStore({ root: join(dir, "store-blobs"), keyring }) };
	if (mongo) stores["GridFS (FerretDB)"] = () => new GridFsBlobStore({ url: mongo.databaseUrl(), timeoutMs: 5000, keyring });
	if (s3) stores["S3 (SeaweedFS), SQLite index"] = () => new S3BlobStore({ ...s3.location(), keyring, index: new SqliteS3BlobIndex(join(dir, "s3-index.db")) });
	if (s3 && mongo) {
		stores["S3 (SeaweedFS), MongoDB index"] = () => new S3BlobStore({ ...s3.location(), keyring, index: new MongoS3BlobIndex({ url: mongo.databaseUrl(), timeoutMs: 5000 }) });
	}
	const results: Record<string, Record<string, Measured>> = {};
	for (const [name, open] of Object.entries(stores)) {
		console.log(`Store ${name} ...`);
		results[name] = await runStore(name, open());
	}
	const names = Object.keys(results);
	printTable(
		`Blob stores in process, 1 MiB blobs, ${params.storeConcurrency} calls in flight, ${params.storeSeconds} s each (MB/s)`,
		["operation", ...names],
		Object.keys(results.files!).map(op => [op, ...names.map(name => results[name]![op]!.mbPerS ?? "n/a")])
	);
	return results;
}

async function main(): Promise<number> {
	const watchdog = setTimeout(() => {
		console.error(`bench:storage exceeded BENCH_MAX_MINUTES=${params.maxMinutes}`);
		process.exit(1);
	}, params.maxMinutes * 60_000);
	watchdog.unref();
	const startedAt = new Date();
	const results: Record<string, any> = { benchmark: "storage", startedAt: startedAt.toISOString(), machine: machineInfo(), parameters: params };
	console.log(`imgmesh bench:storage on ${results.machine.cpus} x ${results.machine.cpuModel}, node ${process.version}`);
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-bench-storage-"));
	const servers = await startServers();
	try {
		if (params.parts.includes("http")) results.http = await partHttp(servers, dir);
		if (params.parts.includes("stores")) results.stores = await partStores(servers, dir);
	} finally {
		await Promise.all([servers.mongo?.stop(), servers.s3?.stop()]);
		rmSync(dir, { recursive: true, force: true });
		clearTimeout(watchdog);
	}
	results.durationS = round((Date.now() - startedAt.getTime()) / 1000, 1);
	const path = saveResults("storage", results);
	console.log(`\nResults: ${path}, ${results.durationS} s`);
	return 0;
}

process.exitCode = await main();
