/**
 * Bulk import benchmark (`node bench/import.ts [N]`): N distinct ~200 KB 1600x1067 JPEGs served
 * by a local HTTP server with 20 ms added latency per request, imported end to end (download,
 * sniffing, storage, metadata, then the processing pipeline's renditions and tags) until every
 * image is `ready`:
 *
 *  a. embedded mode: one imgmesh node;
 *  b. distributed mode: a gateway node and 2 worker processes (imports + processing) over Redis
 *     (127.0.0.1:6379, a namespace of its own), all on this machine.
 *
 * Next to each figure: the original system's published 50-100 images/minute (3 replicas), and
 * this machine's raw compute bound for the same per-image work, measured in the same run: the
 * SHA-256, the header read, models/pipeline/renditions.ts's renderImage (metadata + 240/720 WebP) and the
 * classifier's decode + inference (the same model, in a ClassifierPool session as the service
 * runs it) on the same bytes in this process, as many images at once as there are cores, no I/O,
 * no queue. It is measured before the imports and again after them, and the ratios use the mean
 * of the two: on a shared machine the load moves during a run of several minutes.
 *
 * Images are made before timing: the shared photos cropped to 1600x1067, each at the JPEG quality
 * that lands nearest 200 KB; each URL gets a distinct JPEG comment, so every download has unique
 * bytes (imports deduplicate) but the pixel work is that of a real photo.
 *
 * Environment: BENCH_MODES [embedded,distributed]; BENCH_COMPUTE_SAMPLE [200] images timed for
 * the compute bound; BENCH_CLASSIFIER_MODEL [config/models/squeezenet-fp16.json] ("none": no
 * tagging, here and in the nodes); BENCH_MAX_MINUTES [30]. Each node's RSS is sampled every 2 s
 * across the run: memory must stay flat however many images go through (its value at each
 * quarter of the run is printed). Writes bench/results/import-latest.json.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import http from "node:http";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { DatabaseSync } from "node:sqlite";
import sharp from "sharp";
import { loadConfig } from "../config/index.ts";
import { decodeForModel } from "../models/classifier/input.ts";
import { loadManifest } from "../models/classifier/manifest.ts";
import { ClassifierPool } from "../models/classifier/pool.ts";
import { renderImage } from "../models/pipeline/renditions.ts";
import { Client } from "../test/helpers/client.ts";
import { deleteNamespace } from "../test/helpers/redis.ts";
import { startNode, type Node } from "../test/helpers/jobs.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../test/helpers/server.ts";
import { cpuSeconds, envInt, machineInfo, printTable, round, saveResults, sleep, startRssSampler, type RssReport } from "./lib.ts";

const N = Number(process.argv[2] ?? 1000);
if (!Number.isSafeInteger(N) || N < 1) throw new Error(`N must be a positive integer, got ${process.argv[2]}`);
const MODES = (process.env.BENCH_MODES ?? "embedded,distributed").split(",");
const COMPUTE_SAMPLE = Math.min(N, envInt("BENCH_COMPUTE_SAMPLE", 200, 1));
const DEADLINE = Date.now() + envInt("BENCH_MAX_MINUTES", 30, 1) * 60_000;
const LATENCY_MS = 20;
const WIDTH = 1600;
const HEIGHT = 1067;
const TARGET_BYTES = 200_000;
const ORIGINAL = { low: 50, high: 100 };
const MAX_PIXELS = 100_000_000;
const MODEL = process.env.BENCH_CLASSIFIER_MODEL ?? "config/models/squeezenet-fp16.json";
const CLASSIFIER_ENV: Record<string, string> = MODEL === "none" ? {} : { CLASSIFIER_MODEL: MODEL };

/** A photo cropped to 1600x1067 at the quality whose size is nearest 200 KB. */
async function basePhoto(path: string): Promise<Buffer> {
	const pixels = sharp(path).resize(WIDTH, HEIGHT, { fit: "cover" });
	let best: Buffer | undefined;
	for (let quality = 30; quality <= 95; quality += 5) {
		const jpeg = await pixels.clone().jpeg({ quality }).toBuffer();
		if (!best || Math.abs(jpeg.length - TARGET_BYTES) < Math.abs(best.length - TARGET_BYTES)) best = jpeg;
	}
	return best!;
}

/** Base photo i % bases with a comment segment naming i: unique bytes, same pixels. */
function variant(bases: Buffer[], i: number): Buffer {
	const base = bases[i % bases.length]!;
	const text = Buffer.from(`imgmesh bench ${i}`);
	const segment = Buffer.alloc(4);
	segment.writeUInt16BE(0xfffe, 0);
	segment.writeUInt16BE(text.length + 2, 2);
	return Buffer.concat([base.subarray(0, 2), segment, text, base.subarray(2)]);
}

async function startSource(bases: Buffer[]): Promise<{ url: string; close(): void }> {
	const server = http.createServer((req, res) => {
		const i = Number(/^\/img\/(\d+)\.jpg$/.exec(req.url ?? "")?.[1] ?? NaN);
		setTimeout(() => {
			if (!Number.isSafeInteger(i)) return void res.writeHead(404).end();
			const body = variant(bases, i);
			res.writeHead(200, { "content-type": "image/jpeg", "content-length": body.length });
			res.end(body);
		}, LATENCY_MS);
	});
	server.listen(0, "127.0.0.1");
	await once(server, "listening");
	return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, close: () => server.close() };
}

/** The per-image work of the pipeline, raw, with as many images in flight as there are cores. */
async function computeBound(bases: Buffer[]): Promise<{ images: number; seconds: number; perMinute: number }> {
	const inputs = Array.from({ length: COMPUTE_SAMPLE }, (_, i) => variant(bases, i));
	const manifest = MODEL === "none" ? null : loadManifest(MODEL);
	// The classifier service's own settings (config/index.ts): onnxruntime's default of one thread
	// per core (threads: 0) makes inference fight the decoding beside it, and the bound was then no bound.
	const settings = loadConfig({ ...process.env, DATA_DIR: mkdtempSync(join(tmpdir(), "imgmesh-bench-config-")) });
	rmSync(settings.dataDir, { recursive: true, force: true });
	const options = { sessions: settings.classifierSessions, threads: settings.classifierThreads, maxBatch: settings.classifierMaxBatch, batchWindowMs: settings.classifierBatchWindowMs };
	const pool = manifest ? await ClassifierPool.open(MODEL, manifest, options) : null;
	let next = 0;
	const started = performance.now();
	const worker = async () => {
		while (next < inputs.length) {
			const input = inputs[next++]!;
			createHash("sha256").update(input).digest();
			await sharp(input.subarray(0, 256 * 1024)).metadata();
			await renderImage(input, { maxInputPixels: MAX_PIXELS });
			if (pool) await pool.classify(await decodeForModel(input, manifest!, MAX_PIXELS));
		}
	};
	await Promise.all(Array.from({ length: os.cpus().length }, worker));
	const seconds = (performance.now() - started) / 1000;
	await pool?.close();
	return { images: inputs.length, seconds: round(seconds), perMinute: round((inputs.length / seconds) * 60, 0) };
}

function statusCounts(dataDir: string): Record<string, number> {
	const db = new DatabaseSync(join(dataDir, "images.db"), { readOnly: true });
	try {
		const rows = db.prepare("SELECT status, COUNT(*) AS n FROM images GROUP BY status").all() as { status: string; n: number }[];
		return Object.fromEntries(rows.map(row => [row.status, row.n]));
	} finally {
		db.close();
	}
}

interface RunResult {
	mode: string;
	images: number;
	seconds: number;
	perMinute: number;
	importSeconds: number;
	job: Record<string, unknown>;
	statuses: Record<string, number>;
	cpuSeconds: Record<string, number | null>;
	memory: Record<string, RssSummary>;
}

interface RssSummary {
	/** VmRSS (MiB) at 25, 50, 75 and 100 % of the run: flat memory means these stay put. */
	quartersMiB: number[];
	maxMiB: number;
	/** [s since the import started, VmRSS MiB], thinned to about 40 points. */
	timeline: [number, number][];
}

function rssSummary(report: RssReport): RssSummary {
	const timeline = report.timeline.map(([ms, kb]) => [round(ms / 1000, 0), round(kb / 1024, 0)] as [number, number]);
	const at = (fraction: number) => timeline[Math.min(timeline.length - 1, Math.floor(fraction * (timeline.length - 1)))]![1];
	// At most about 40 points in the results file: enough to see a trend.
	const step = Math.ceil(timeline.length / 40);
	return { quartersMiB: [0.25, 0.5, 0.75, 1].map(at), maxMiB: round(report.maxSampledRssKb / 1024, 0), timeline: timeline.filter((_, i) => i % step === 0) };
}

/** Imports N URLs through `client` and waits until every image is ready (or failed). */
async function runImport(mode: string, client: Client, dataDir: string, sourceUrl: string, pids: Record<string, number>): Promise<RunResult> {
	const urls = Array.from({ length: N }, (_, i) => `${sourceUrl}/img/${i}.jpg`);
	const cpuBefore = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid) ?? 0]));
	const samplers = Object.entries(pids).map(([name, pid]) => [name, startRssSampler(pid, 2000, DEADLINE - Date.now())] as const);
	const started = performance.now();
	const created = await client.post("/api/imports", { source: "urls", urls, visibility: "public" });
	if (created.status !== 202) throw new Error(`POST /api/imports: ${created.status} ${JSON.stringify(created.body)}`);
	let job: Record<string, any> = created.body.job;
	let importSeconds = 0;
	let statuses: Record<string, number> = {};
	for (;;) {
		if (Date.now() > DEADLINE) throw new Error(`${mode}: out of time (BENCH_MAX_MINUTES)`);
		await sleep(250);
		if (!job.finishedAt) {
			job = (await client.get(`/api/imports/${job.id}`)).body;
			if (job.finishedAt) importSeconds = (performance.now() - started) / 1000;
			continue;
		}
		statuses = statusCounts(dataDir);
		if ((statuses.ready ?? 0) + (statuses.failed ?? 0) >= job.succeeded) break;
	}
	const seconds = (performance.now() - started) / 1000;
	const cpu = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, round((cpuSeconds(pid) ?? 0) - cpuBefore[name]!)]));
	const memory = Object.fromEntries(samplers.map(([name, sampler]) => [name, rssSummary(sampler.stop())]));
	for (const [name, rss] of Object.entries(memory)) console.log(`${mode}, ${name}: RSS at each quarter of the run ${rss.quartersMiB.join(" / ")} MiB, max ${rss.maxMiB} MiB`);
	const { errors: _errors, ...summary } = job;
	return { mode, images: statuses.ready ?? 0, seconds: round(seconds), perMinute: round(((statuses.ready ?? 0) / seconds) * 60, 0), importSeconds: round(importSeconds), job: summary, statuses, cpuSeconds: cpu, memory };
}

const IMPORT_ENV = { IMPORT_ALLOW_PRIVATE_NETWORKS: "true", LOG_LEVEL: "warn", ...CLASSIFIER_ENV };

async function embedded(sourceUrl: string): Promise<RunResult> {
	const server = await startServer(IMPORT_ENV);
	try {
		const client = await new Client(server.url).register("bench");
		return await runImport("embedded (1 node)", client, server.dataDir, sourceUrl, { node: server.process.pid! });
	} finally {
		await server.stop();
	}
}

async function distributed(sourceUrl: string): Promise<RunResult> {
	const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-bench-import-"));
	const cluster = { TRANSPORTER: "redis://127.0.0.1:6379", NAMESPACE: `bench-import-${process.pid}-${Date.now()}` };
	const workers: Node[] = [];
	let gateway: RunningServer | undefined;
	try {
		for (const id of [1, 2]) {
			// Logging at info: startNode waits for the broker's "started" line.
			workers.push(await startNode(dataDir, { ...cluster, ...IMPORT_ENV, LOG_LEVEL: "info", SERVICES: `imports,images,storage,worker${MODEL === "none" ? "" : ",classifier"}`, NODE_ID: `bench-worker-${id}` }));
		}
		gateway = await startServer({ ...cluster, ...IMPORT_ENV, SERVICES: "api,users,categories,health,images,storage", NODE_ID: "bench-gateway" }, { dataDir });
		const client = await new Client(gateway.url).register("bench");
		// The gateway makes the imports routes once it has discovered a worker.
		while ((await client.get("/api/imports")).status !== 200) await sleep(100);
		const pids = { gateway: gateway.process.pid!, "worker-1": workers[0]!.process.pid!, "worker-2": workers[1]!.process.pid! };
		return await runImport("distributed (gateway + 2 workers)", client, dataDir, sourceUrl, pids);
	} finally {
		for (const worker of workers) await worker.stop();
		await gateway?.stop({ keepData: true });
		rmSync(dataDir, { recursive: true, force: true });
		await deleteNamespace(cluster.TRANSPORTER, cluster.NAMESPACE);
	}
}

async function main(): Promise<void> {
	const machine = machineInfo();
	const photos = readdirSync(SHARED_IMAGES).filter(name => /\.jpe?g$/i.test(name));
	const bases = await Promise.all(photos.map(name => basePhoto(join(SHARED_IMAGES, name))));
	const meanBytes = Math.round(bases.reduce((sum, b) => sum + b.length, 0) / bases.length);
	console.log(`N=${N}, ${bases.length} base photos ${WIDTH}x${HEIGHT}, mean ${meanBytes} bytes, ${LATENCY_MS} ms latency per request, classifier ${MODEL}`);

	const before = await computeBound(bases);
	console.log(`compute bound before: ${before.perMinute} images/min (${before.images} images in ${before.seconds} s)`);
	const source = await startSource(bases);
	const runs: RunResult[] = [];
	try {
		if (MODES.includes("embedded")) runs.push(await embedded(source.url));
		if (MODES.includes("distributed")) runs.push(await distributed(source.url));
	} finally {
		source.close();
	}
	const after = await computeBound(bases);
	console.log(`compute bound after: ${after.perMinute} images/min (${after.images} images in ${after.seconds} s)`);
	const compute = { images: before.images + after.images, seconds: round(before.seconds + after.seconds), perMinute: round((before.perMinute + after.perMinute) / 2, 0), before, after };

	printTable(
		`Import of ${N} URLs to ready (${os.cpus().length} cores; load average at start ${(machine.loadAvgAtStart as number[]).join(" ")})`,
		["mode", "ready", "seconds", "images/min", "vs original 50-100/min", "vs compute bound", "import only (s)"],
		[
			...runs.map(run => [
				run.mode,
				run.images,
				run.seconds,
				run.perMinute,
				`${round(run.perMinute / ORIGINAL.high, 1)}-${round(run.perMinute / ORIGINAL.low, 1)}x`,
				round(run.perMinute / compute.perMinute),
				run.importSeconds
			]),
			["compute bound (same work, in process; mean of before and after)", compute.images, compute.seconds, compute.perMinute, `${round(compute.perMinute / ORIGINAL.high, 1)}-${round(compute.perMinute / ORIGINAL.low, 1)}x`, 1, "-"]
		]
	);
	const path = saveResults("import", {
		machine,
		parameters: { n: N, classifierModel: MODEL, latencyMs: LATENCY_MS, width: WIDTH, height: HEIGHT, meanBytes, computeSample: COMPUTE_SAMPLE, bases: bases.length },
		original: ORIGINAL,
		computeBound: compute,
		runs: runs.map(run => ({ ...run, ratioToComputeBound: round(run.perMinute / compute.perMinute) }))
	});
	console.log(`\nSaved ${path}`);
	const failed = runs.some(run => run.images < N);
	if (failed) console.error("Not every image reached ready:", runs.map(run => run.statuses));
	process.exit(failed ? 1 : 0);
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
