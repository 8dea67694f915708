/**
 * Direct reads benchmark (`npm run bench:direct`): what reading the blob backend on every node
 * (mixins/blob-reader.mixin.ts) buys a cluster, against embedded mode on the same backend, in one
 * run, each cluster on a redis-server of its own. Per backend, three setups:
 *
 *  - embedded: one process;
 *  - 3 nodes reading directly: gateway (api, health, images, categories, users: the metadata and
 *    the token checks stay on the gateway, so only the bytes' path differs), worker node
 *    (transform, worker), data node (storage);
 *  - the same 3 nodes with BLOB_READS=storage: every read pulled from the data node through Redis,
 *    as before direct reads.
 *
 * Backends: MongoDB + GridFS (FerretDB, a fresh database per setup; skipped when FerretDB is not
 * built), and files with SQLite on one DATA_DIR that the three nodes share (BLOB_READS=direct), as
 * on one machine or a shared volume.
 *
 * Each setup: N distinct JPEGs uploaded (and processed), then, as their owner (no view counting):
 *  a. GET /api/images/:id/content at K keep-alive connections for S seconds;
 *  b. uncached transforms: every request a variant not made before (`?w=` differs), C at once;
 *  c. cached transforms: the same URLs again at K connections for S seconds.
 * Reported: req/s, p99, and CPU ms per request summed over every node process, and FerretDB's.
 * Uploads and views by their owner, so no view is counted: the figures are the bytes' path.
 * Writes bench/results/direct-reads-<timestamp>.json and direct-reads-latest.json.
 *   BENCH_UPLOADS [60]          distinct JPEGs per setup
 *   BENCH_SECONDS [8]           measured duration of each GET and cached run (after a 1 s warm-up)
 *   BENCH_CONNECTIONS [32]      keep-alive connections of those runs
 *   BENCH_VARIANTS [4]          uncached variants per image (N × this requests)
 *   BENCH_CONCURRENCY [4]       concurrent uncached requests
 *   BENCH_MAX_MINUTES [20]      hard limit on the whole run
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "../test/helpers/client.ts";
import { clusterEnv, startNode, startRedis, waitForRoutes, type RedisServer } from "../test/helpers/cluster.ts";
import { ferretDbSkipReason, startFerretDb, type FerretDb } from "../test/helpers/ferretdb.ts";
import { startServer, type RunningServer } from "../test/helpers/server.ts";
import { cpuSeconds, envInt, machineInfo, makeJpegs, printTable, round, runGetLoad, runUploads, saveResults, waitForIdle, type BenchImage, type GetTarget } from "./lib.ts";

const params = {
	uploads: envInt("BENCH_UPLOADS", 60, 1),
	seconds: envInt("BENCH_SECONDS", 8, 1),
	connections: envInt("BENCH_CONNECTIONS", 32, 1),
	variants: envInt("BENCH_VARIANTS", 4, 1),
	concurrency: envInt("BENCH_CONCURRENCY", 4, 1),
	maxMinutes: envInt("BENCH_MAX_MINUTES", 20, 1)
};

const NODE_ENV = { LOG_LEVEL: "error" };

interface Setup {
	label: string;
	url: string;
	/** Every node process, for CPU and idleness. */
	pids: number[];
	/** FerretDB's process, whose CPU is reported apart; none on fs. */
	dbPid: number | undefined;
	stop(): Promise<void>;
}

/** A backend's environment, made afresh for each setup. */
interface Backend {
	name: string;
	env(): Record<string, string>;
	/** What the cluster's nodes set to read directly. */
	directReads: string;
	/** On fs every node shares one DATA_DIR. */
	sharedDataDir: boolean;
	dbPid: number | undefined;
}

async function startEmbedded(backend: Backend): Promise<Setup> {
	const node = await startServer({ ...NODE_ENV, ...backend.env() });
	return { label: `embedded (1 process), ${backend.name}`, url: node.url, pids: [node.process.pid!], dbPid: backend.dbPid, stop: () => node.stop() };
}

async function startCluster(backend: Backend, blobReads: string, dir: string): Promise<Setup> {
	const redis: RedisServer = await startRedis();
	const env = { ...clusterEnv(redis), ...NODE_ENV, ...backend.env(), BLOB_READS: blobReads };
	// On fs every node shares one DATA_DIR; kept at each node's stop, removed with the bench's directory.
	const dataDir = join(dir, `data-${redis.url.split(":").at(-1)}`);
	mkdirSync(dataDir);
	const options = (nodeId: string) => (backend.sharedDataDir ? { nodeId, dataDir } : { nodeId });
	const data = await startNode(env, ["storage"], options("bench-data"));
	const worker = await startNode(env, ["transform", "worker"], options("bench-worker"));
	const gateway = await startNode(env, ["api", "health", "images", "categories", "users"], options("bench-gateway"));
	await waitForRoutes(gateway.url);
	const nodes: RunningServer[] = [gateway, worker, data];
	return {
		label: `3 nodes, ${backend.name}, BLOB_READS=${blobReads}`,
		url: gateway.url,
		pids: nodes.map(node => node.process.pid!),
		dbPid: backend.dbPid,
		async stop() {
			await Promise.all(nodes.map(node => node.stop({ keepData: true })));
			await redis.stop();
		}
	};
}

/** Waits until every node is idle (the pipeline done), within limits. */
async function settle(setup: Setup): Promise<void> {
	for (const pid of setup.pids) await waitForIdle(pid, 30_000);
}

function cpuOf(pids: number[]): number {
	return pids.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
}

/** A GET load with the CPU every node spent on it, per successful request. */
async function load(setup: Setup, token: string, targets: GetTarget[], options: { connections: number; seconds: number; warmup: boolean; maxRequests: number }) {
	const dbPids = setup.dbPid ? [setup.dbPid] : [];
	const before = { nodes: cpuOf(setup.pids), db: cpuOf(dbPids) };
	const result = await runGetLoad({
		base: setup.url,
		targets,
		headers: { authorization: `Bearer ${token}` },
		connections: options.connections,
		durationMs: options.seconds * 1000,
		warmupMs: options.warmup ? 1000 : 0,
		maxRequests: options.maxRequests,
		timeoutMs: 60_000
	});
	// The warm-up's CPU is in the difference too: counted per request of both phases.
	const perRequest = (seconds: number) => round((seconds * 1000) / Math.max(1, result.ok + result.warmupOk), 2);
	const cpuMsPerRequest = perRequest(cpuOf(setup.pids) - before.nodes);
	const dbCpuMsPerRequest = setup.dbPid ? perRequest(cpuOf(dbPids) - before.db) : null;
	const { errorSamples, reqPerS, latencyMs, ok, errors } = result;
	return { reqPerS, p99Ms: latencyMs.p99, p50Ms: latencyMs.p50, ok, errors, errorSamples, cpuMsPerRequest, dbCpuMsPerRequest };
}

async function measure(setup: Setup, images: BenchImage[]) {
	const owner = await new Client(setup.url).register("bench-owner");
	await settle(setup);
	const upload = await runUploads({ url: `${setup.url}/api/images`, token: owner.token!, fields: {}, files: images, concurrency: 4, maxMs: 10 * 60_000 });
	const stored = images.flatMap((image, i) => {
		const doc = (upload.responses[i] as { images?: { id: string }[] } | undefined)?.images?.[0];
		return doc ? [{ id: doc.id, bytes: image.bytes }] : [];
	});
	const ids = stored.map(({ id }) => id);
	await settle(setup);
	const originals = stored.map(({ id, bytes }) => ({ path: `/api/images/${id}/content`, bytes }));
	const get = await load(setup, owner.token!, originals, { connections: params.connections, seconds: params.seconds, warmup: true, maxRequests: 2_000_000 });
	// Widths no rendition uses, each asked once: every request renders.
	const variants = ids.flatMap(id => Array.from({ length: params.variants }, (_, v) => ({ path: `/api/images/${id}/content?w=${101 + v}` })));
	await settle(setup);
	const uncached = await load(setup, owner.token!, variants, { connections: params.concurrency, seconds: 600, warmup: false, maxRequests: variants.length });
	await settle(setup);
	const cached = await load(setup, owner.token!, variants, { connections: params.connections, seconds: params.seconds, warmup: true, maxRequests: 2_000_000 });
	return { uploaded: ids.length, get, uncached, cached };
}

const WORKLOADS = { get: "GET original", uncached: "transform, uncached", cached: "transform, cached" } as const;

/** The three setups on one backend, one after the other, with the table of their figures. */
async function runBackend(backend: Backend, images: BenchImage[], dir: string) {
	const starts: [string, () => Promise<Setup>][] = [
		["embedded", () => startEmbedded(backend)],
		["direct", () => startCluster(backend, backend.directReads, dir)],
		["throughStorage", () => startCluster(backend, "storage", dir)]
	];
	const runs: Record<string, Awaited<ReturnType<typeof measure>> & { label: string }> = {};
	for (const [name, start] of starts) {
		const setup = await start();
		console.log(`${setup.label} ...`);
		try {
			runs[name] = { label: setup.label, ...(await measure(setup, images)) };
		} finally {
			await setup.stop();
		}
	}
	const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 2) : "n/a");
	const rows = Object.values(runs).flatMap(run =>
		(Object.keys(WORKLOADS) as (keyof typeof WORKLOADS)[]).map(kind => [
			run.label,
			WORKLOADS[kind],
			run[kind].reqPerS,
			run[kind].p99Ms,
			run[kind].cpuMsPerRequest,
			run[kind].dbCpuMsPerRequest ?? "",
			run[kind].errors,
			ratio(run[kind].reqPerS, runs.embedded![kind].reqPerS)
		])
	);
	printTable(
		`${params.uploads} JPEGs on ${backend.name}; GET and cached at ${params.connections} connections for ${params.seconds} s, uncached ${params.concurrency} at once`,
		["setup", "workload", "req/s", "p99 ms", "CPU ms/req (nodes)", "FerretDB CPU ms/req", "errors", "vs embedded"],
		rows
	);
	return runs;
}

async function main(): Promise<number> {
	const watchdog = setTimeout(() => {
		console.error(`bench:direct exceeded BENCH_MAX_MINUTES=${params.maxMinutes}`);
		process.exit(1);
	}, params.maxMinutes * 60_000);
	watchdog.unref();
	const startedAt = new Date();
	const results: Record<string, any> = { benchmark: "direct-reads", startedAt: startedAt.toISOString(), machine: machineInfo(), parameters: params, backends: {} };
	console.log(`imgmesh bench:direct on ${results.machine.cpus} x ${results.machine.cpuModel}, node ${process.version}`);
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-bench-direct-"));
	const skipped = ferretDbSkipReason();
	const mongo: FerretDb | undefined = skipped ? undefined : await startFerretDb();
	try {
		const images = await makeJpegs(dir, params.uploads);
		const fs: Backend = { name: "fs, one shared DATA_DIR", env: () => ({}), directReads: "direct", sharedDataDir: true, dbPid: undefined };
		results.backends.fs = await runBackend(fs, images, dir);
		if (mongo) {
			const gridfs: Backend = { name: "MongoDB + GridFS (FerretDB)", env: () => ({ MONGO_URL: mongo.databaseUrl(), STORAGE: "gridfs" }), directReads: "auto", sharedDataDir: false, dbPid: mongo.pid() };
			results.backends.gridfs = await runBackend(gridfs, images, dir);
		} else {
			results.backends.gridfs = { skipped };
			console.log(`\nGridFS skipped: ${skipped}`);
		}
	} finally {
		await mongo?.stop();
		rmSync(dir, { recursive: true, force: true });
		clearTimeout(watchdog);
	}
	results.durationS = round((Date.now() - startedAt.getTime()) / 1000, 1);
	const path = saveResults("direct-reads", results);
	console.log(`\nResults: ${path} (and bench/results/direct-reads-latest.json), ${results.durationS} s`);
	return 0;
}

process.exitCode = await main();
