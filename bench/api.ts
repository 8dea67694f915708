/**
 * API benchmark of one imgmesh node (`npm run bench:api`, i.e. `node bench/api.ts`), each figure
 * next to a baseline measured in the same run:
 *
 *  a. upload throughput: N distinct real JPEGs (crops/sizes/qualities of the shared photos made
 *     with sharp before timing, each with unique bytes since imgmesh deduplicates), C concurrent
 *     uploaders, one file per request, `visibility=public`, to a node without the worker
 *     (SERVICES: every service but `worker`, so no rendition or classification runs meanwhile)
 *     and to a full node. Baselines: a minimal node:http server (a child process started here)
 *     that streams each raw request body to a temp file, fsyncs and renames it; and the same
 *     server parsing the multipart body with @fastify/busboy first (issue 17's anchor). Same
 *     client, files and concurrency; the files are split into BENCH_ROUNDS interleaved rounds
 *     (raw, busboy, no worker, full node in turn). BENCH_PROFILE_DIR=<dir> runs the node
 *     without the worker under --cpu-prof.
 *  b. GET /api/images/:id/content at K keep-alive connections for S seconds over those images,
 *     as a second user (public images, so the view counter is exercised). Baseline: the same
 *     minimal server serving the same files with fs.createReadStream.
 *  s. serving against nginx (Debian's package, one worker, sendfile, started here on loopback
 *     with a generated config): N distinct 1600x1067 JPEGs (~400 kB) uploaded, then as their
 *     owner (the byte-exact original, no view counted) at K connections, in R interleaved rounds
 *     (nginx then imgmesh, S seconds each; the median round shown): GET of the original, its 304
 *     revalidation (If-None-Match of each server's own ETag), a cached variant (w=512 WebP) and
 *     the stored 720 px rendition, nginx serving the very same bytes from files.
 *     BENCH_PROFILE_DIR=<dir> runs the imgmesh node of this part under --cpu-prof.
 *  c. peak RSS of a fresh, idle imgmesh node (VmHWM reset just before, plus VmRSS sampled every 50 ms) while it receives
 *     ONE ~200 MB PNG (8200x8200 RGB noise, 67 MP) streamed from disk; requirement < 150 MiB. On
 *     files, and on S3 (SeaweedFS) when it is built.
 *
 * Prints a table per part and writes bench/results/api-latest.json (with BENCH_PARTS:
 * api-<parts>-latest.json, e.g. api-serve-latest.json).
 * Exit code 1 if a part failed or the RSS requirement is not met.
 *
 * Environment (defaults in brackets); a quick check: BENCH_UPLOADS=50 BENCH_SECONDS=3 BENCH_BIG_SIDE=3000
 *   BENCH_UPLOADS [500]             distinct JPEGs uploaded in part a (and served in part b)
 *   BENCH_WARMUP_UPLOADS [16]       extra distinct JPEGs uploaded first to each server, not timed
 *   BENCH_UPLOAD_CONCURRENCY [8]    concurrent uploaders
 *   BENCH_SECONDS [10]              measured duration of each GET run
 *   BENCH_WARMUP_SECONDS [1]        unmeasured GET warm-up before each GET run
 *   BENCH_CONNECTIONS [64]          keep-alive connections of the GET load
 *   BENCH_MAX_REQUESTS [2000000]    cap on the requests of one GET run
 *   BENCH_BIG_SIDE [8200]           side of the square PNG of part c (side^2 <= 100 megapixels)
 *   BENCH_PARTS [upload,get,serve,rss]  parts to run (get implies the uploads it needs)
 *   BENCH_SERVE_IMAGES [16]         distinct originals of part s
 *   BENCH_SERVE_SECONDS [4]         measured duration of each run of part s
 *   BENCH_ROUNDS [3]                interleaved rounds of parts a and s
 *   BENCH_SERVE_ONLY                 only the workloads of part s whose name contains this (e.g. 304)
 *   BENCH_MAX_MINUTES [30]          hard limit on the whole run
 */
import { Busboy } from "@fastify/busboy";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { Client } from "../test/helpers/client.ts";
import { settled } from "../test/helpers/jobs.ts";
import { s3SkipReason, startS3 } from "../test/helpers/s3.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../test/helpers/server.ts";
import { PASSWORD_THREAD_IDLE_MS } from "../models/users/password-pool.ts";
import {
	MB,
	MiB,
	cpuSeconds,
	envInt,
	machineInfo,
	makeBigPng,
	makeJpegs,
	printTable,
	readProcMemory,
	round,
	runGetLoad,
	runUploads,
	saveResults,
	sleep,
	resetPeakRss,
	startNginx,
	startRssSampler,
	type GetTarget,
	uploadMultipart,
	waitForIdle,
	type BenchImage,
	type GetLoadResult,
	type UploadRunResult
} from "./lib.ts";

const THIS_FILE = fileURLToPath(import.meta.url);
const RSS_LIMIT_MIB = 150;

// ---------------------------------------------------------------------------------------------
// Cleanup: temp dirs and child processes go on success, failure, signals and the time limit.
// ---------------------------------------------------------------------------------------------

const tempDirs = new Set<string>();
const children = new Set<ChildProcess>();
const servers = new Set<RunningServer>();

function tempDir(prefix: string): string {
	const dir = mkdtempSync(join(tmpdir(), prefix));
	tempDirs.add(dir);
	return dir;
}

async function cleanup(): Promise<void> {
	for (const server of servers) {
		await Promise.race([server.stop().catch(() => undefined), sleep(10_000)]);
		servers.delete(server);
	}
	for (const child of children) {
		if (child.exitCode === null && child.signalCode === null) {
			const exited = new Promise(resolve => child.once("exit", resolve));
			child.kill("SIGTERM");
			await Promise.race([exited, sleep(5_000)]);
		}
		children.delete(child);
	}
	for (const dir of tempDirs) {
		rmSync(dir, { recursive: true, force: true });
		tempDirs.delete(dir);
	}
}

/** Last resort when the process exits without `cleanup` having run (synchronous). */
function cleanupSync(): void {
	for (const child of [...children, ...[...servers].map(server => server.process)]) {
		if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
	}
	for (const dir of [...tempDirs, ...[...servers].map(server => server.dataDir)]) rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// The baseline: a minimal node:http server, run as a child process (`--baseline-server`).
// ---------------------------------------------------------------------------------------------

function runBaselineServer(): void {
	const uploadDir = process.env.BASELINE_UPLOAD_DIR!;
	const serveDir = process.env.BASELINE_SERVE_DIR!;
	let counter = 0;

	/** Streams the raw body to a temp file, fsyncs it (flush: true) and renames it into place. */
	async function receive(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
		const id = `b${++counter}`;
		const temp = join(uploadDir, `.tmp-${id}`);
		try {
			const out = createWriteStream(temp, { flush: true });
			await pipeline(req, out);
			await rename(temp, join(uploadDir, id));
			const body = JSON.stringify({ images: [{ id, size: out.bytesWritten }] });
			res.writeHead(201, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
		} catch {
			await rm(temp, { force: true });
			if (!res.headersSent) res.writeHead(500, { connection: "close" }).end();
		}
	}

	/**
	 * Busboy mode (POST /busboy/...): the multipart body parsed with @fastify/busboy, as imgmesh
	 * parses it, and only the file part streamed to the temp file, fsynced and renamed.
	 */
	async function receiveMultipart(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
		const id = `m${++counter}`;
		const temp = join(uploadDir, `.tmp-${id}`);
		try {
			const parser = new Busboy({ headers: req.headers as { "content-type": string } });
			let written: Promise<number> | undefined;
			parser.on("file", (_field: string, file: Readable) => {
				const out = createWriteStream(temp, { flush: true });
				written = pipeline(file, out).then(() => out.bytesWritten);
			});
			await pipeline(req, parser);
			if (!written) throw new Error("no file part");
			const size = await written;
			await rename(temp, join(uploadDir, id));
			const body = JSON.stringify({ images: [{ id, size }] });
			res.writeHead(201, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
		} catch {
			await rm(temp, { force: true });
			if (!res.headersSent) res.writeHead(500, { connection: "close" }).end();
		}
	}

	async function serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
		const match = /^\/images\/([^/?]+)\/content/.exec(req.url ?? "");
		const path = match ? join(serveDir, basename(decodeURIComponent(match[1]))) : null;
		const info = path ? await stat(path).catch(() => null) : null;
		if (!path || !info?.isFile()) {
			res.writeHead(404).end();
			return;
		}
		res.writeHead(200, { "content-type": "image/jpeg", "content-length": info.size });
		await pipeline(createReadStream(path), res).catch(() => res.destroy());
	}

	const server = http.createServer((req, res) => {
		if (req.method === "POST") void (req.url?.startsWith(BUSBOY_PREFIX) ? receiveMultipart(req, res) : receive(req, res));
		else if (req.method === "GET") void serve(req, res);
		else res.writeHead(405).end();
	});
	server.listen(0, "127.0.0.1", () => {
		console.log(JSON.stringify({ port: (server.address() as { port: number }).port }));
	});
	const stop = () => {
		server.close(() => process.exit(0));
		server.closeAllConnections();
		setTimeout(() => process.exit(0), 2000).unref();
	};
	process.on("SIGTERM", stop);
	process.on("SIGINT", stop);
}

/** The baseline server's busboy mode is its upload URL under this prefix. */
const BUSBOY_PREFIX = "/busboy";

interface Baseline {
	url: string;
	process: ChildProcess;
}

async function startBaseline(uploadDir: string, serveDir: string): Promise<Baseline> {
	await mkdir(uploadDir, { recursive: true });
	const child = spawn(process.execPath, [THIS_FILE, "--baseline-server"], {
		env: { PATH: process.env.PATH, BASELINE_UPLOAD_DIR: uploadDir, BASELINE_SERVE_DIR: serveDir },
		stdio: ["ignore", "pipe", "pipe"]
	});
	children.add(child);
	let output = "";
	child.stderr!.on("data", chunk => (output += chunk));
	const port = await new Promise<number>((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`baseline server did not start:\n${output}`)), 10_000);
		child.stdout!.on("data", chunk => {
			output += chunk;
			const match = /\{"port":(\d+)\}/.exec(output);
			if (match) {
				clearTimeout(timer);
				resolve(Number(match[1]));
			}
		});
		child.once("exit", code => reject(new Error(`baseline server exited with ${code}:\n${output}`)));
	});
	return { url: `http://127.0.0.1:${port}`, process: child };
}

// ---------------------------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------------------------

async function sha256File(path: string): Promise<string> {
	const hash = createHash("sha256");
	await pipeline(createReadStream(path), hash);
	return hash.digest("hex");
}

// ---------------------------------------------------------------------------------------------
// Parts
// ---------------------------------------------------------------------------------------------

const params = {
	uploads: envInt("BENCH_UPLOADS", 500, 1),
	warmupUploads: envInt("BENCH_WARMUP_UPLOADS", 16, 0),
	uploadConcurrency: envInt("BENCH_UPLOAD_CONCURRENCY", 8, 1),
	getSeconds: envInt("BENCH_SECONDS", 10, 1),
	getWarmupSeconds: envInt("BENCH_WARMUP_SECONDS", 1, 0),
	getConnections: envInt("BENCH_CONNECTIONS", 64, 1),
	getMaxRequests: envInt("BENCH_MAX_REQUESTS", 2_000_000, 1),
	bigSide: envInt("BENCH_BIG_SIDE", 8200, 16),
	serveImages: envInt("BENCH_SERVE_IMAGES", 16, 1),
	serveSeconds: envInt("BENCH_SERVE_SECONDS", 4, 1),
	rounds: envInt("BENCH_ROUNDS", 3, 1),
	parts: (process.env.BENCH_PARTS || "upload,get,serve,rss").split(",").map(part => part.trim()),
	maxMinutes: envInt("BENCH_MAX_MINUTES", 30, 1),
	rssLimitMiB: RSS_LIMIT_MIB,
	uploadFields: { visibility: "public" }
};

const UPLOAD_MAX_MS = 10 * 60_000;
const mib = (kb: number) => round(kb / 1024, 1);
const tail = (text: string, chars = 3000) => text.slice(-chars);

/** Runs `fn` and reports the CPU seconds `pid` used meanwhile. */
async function withCpu<T>(pid: number, fn: () => Promise<T>): Promise<T & { serverCpuS: number | null }> {
	const before = cpuSeconds(pid);
	const result = await fn();
	const after = cpuSeconds(pid);
	return { ...result, serverCpuS: before !== null && after !== null ? round(after - before) : null };
}

const uploadRow = (label: string, r: UploadRunResult & { serverCpuS: number | null }) => [
	label,
	r.ok,
	r.errors,
	r.elapsedS,
	r.imagesPerS,
	r.mbPerS,
	r.latencyMs.p50,
	r.latencyMs.p99,
	r.serverCpuS ?? "n/a"
];

const getRow = (label: string, r: GetLoadResult & { serverCpuS: number | null }) => [
	label,
	r.ok,
	r.errors,
	r.reqPerS,
	r.mbPerS,
	r.latencyMs.p50,
	r.latencyMs.p99,
	r.newConnections,
	r.serverCpuS ?? "n/a"
];

const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 3) : null);

/** SERVICES for a node running every service but `excluded`. */
function servicesBut(excluded: string): string {
	const suffix = ".service.ts";
	const dir = fileURLToPath(new URL("../services/", import.meta.url));
	return readdirSync(dir)
		.filter(file => file.endsWith(suffix) && file !== excluded + suffix)
		.map(file => file.slice(0, -suffix.length))
		.join(",");
}

/** Where part a uploads: a baseline mode or an imgmesh node, and the process whose CPU counts. */
interface UploadTarget {
	label: string;
	url: string;
	token?: string;
	pid: number;
}

type MeasuredUploads = UploadRunResult & { serverCpuS: number | null };

const uploadRun = (target: UploadTarget, files: BenchImage[]) =>
	runUploads({ url: target.url, token: target.token, fields: params.uploadFields, files, concurrency: params.uploadConcurrency, maxMs: UPLOAD_MAX_MS });

/**
 * Uploads a slice of `files` to every target in turn, round after round, so that the machine's
 * changing load weighs on all of them alike; each target's rounds summed (its latencies: the
 * median round's). Every process idles first: the full node's worker still processing the last
 * round's uploads must not slow the next target.
 */
async function uploadRounds(targets: UploadTarget[], files: BenchImage[]): Promise<MeasuredUploads[]> {
	const runs: MeasuredUploads[][] = targets.map(() => []);
	const perRound = Math.ceil(files.length / params.rounds);
	for (let start = 0; start < files.length; start += perRound) {
		const slice = files.slice(start, start + perRound);
		for (const [index, target] of targets.entries()) {
			for (const { pid } of targets) await waitForIdle(pid, 10_000);
			runs[index]!.push(await withCpu(target.pid, () => uploadRun(target, slice)));
		}
	}
	return runs.map(combineRounds);
}

function combineRounds(rounds: MeasuredUploads[]): MeasuredUploads {
	const sum = (pick: (run: MeasuredUploads) => number) => rounds.reduce((total, run) => total + pick(run), 0);
	const elapsedS = sum(run => run.elapsedS);
	const bytes = sum(run => run.bytes);
	const median = [...rounds].sort((a, b) => a.imagesPerS - b.imagesPerS)[Math.floor(rounds.length / 2)]!;
	const cpu = rounds.every(run => run.serverCpuS !== null) ? round(sum(run => run.serverCpuS!)) : null;
	return {
		ok: sum(run => run.ok),
		errors: sum(run => run.errors),
		errorSamples: rounds.flatMap(run => run.errorSamples).slice(0, 5),
		bytes,
		elapsedS: round(elapsedS, 3),
		imagesPerS: round(sum(run => run.ok) / elapsedS),
		mbPerS: round(bytes / MB / elapsedS),
		latencyMs: median.latencyMs,
		responses: rounds.flatMap(run => run.responses),
		serverCpuS: cpu
	};
}

async function partsUploadAndGet(results: Record<string, any>): Promise<void> {
	const total = params.warmupUploads + params.uploads;
	const imageDir = tempDir("imgmesh-bench-images-");
	console.log(`Making ${total} distinct JPEGs from ${SHARED_IMAGES} ...`);
	const t0 = performance.now();
	const all = await makeJpegs(imageDir, total);
	const warmup = all.slice(0, params.warmupUploads);
	const measured = all.slice(params.warmupUploads);
	const totalBytes = measured.reduce((sum, image) => sum + image.bytes, 0);
	const sizes = measured.map(image => image.bytes).sort((a, b) => a - b);
	results.images = {
		count: measured.length,
		warmupCount: warmup.length,
		totalMB: round(totalBytes / MB),
		meanKB: round(totalBytes / measured.length / 1000, 1),
		minKB: round(sizes[0] / 1000, 1),
		maxKB: round(sizes[sizes.length - 1] / 1000, 1),
		widths: [Math.min(...measured.map(i => i.width)), Math.max(...measured.map(i => i.width))],
		generationS: round((performance.now() - t0) / 1000, 1)
	};
	console.log(`  ${measured.length} JPEGs (+${warmup.length} warm-up), ${results.images.totalMB} MB, mean ${results.images.meanKB} KB, made in ${results.images.generationS} s`);

	const baseline = await startBaseline(join(tempDir("imgmesh-bench-baseline-"), "blobs"), imageDir);
	console.log(`Baseline server on ${baseline.url}; starting imgmesh (full, and without the worker) ...`);
	const server = await startServer();
	servers.add(server);
	const profileDir = process.env.BENCH_PROFILE_DIR;
	const noWorker = await startServer({ SERVICES: servicesBut("worker"), ...(profileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` } : {}) });
	servers.add(noWorker);
	const pid = server.process.pid!;
	const anon = new Client(server.url);
	const uploader = await anon.register("bench-uploader");
	const viewer = await anon.register("bench-viewer");
	const noWorkerUploader = await new Client(noWorker.url).register("bench-uploader");

	// a. uploads: the four targets in turn in every round; same client, files and concurrency.
	const targets: UploadTarget[] = [
		{ label: "baseline (raw body -> fsync+rename)", url: `${baseline.url}/api/images`, pid: baseline.process.pid! },
		{ label: "baseline (busboy -> fsync+rename)", url: `${baseline.url}${BUSBOY_PREFIX}/api/images`, pid: baseline.process.pid! },
		{ label: "imgmesh without the worker", url: `${noWorker.url}/api/images`, token: noWorkerUploader.token, pid: noWorker.process.pid! },
		{ label: "imgmesh full node", url: `${server.url}/api/images`, token: uploader.token, pid }
	];
	console.log(`a. uploading ${measured.length} JPEGs, ${params.uploadConcurrency} concurrent, ${params.rounds} interleaved rounds ...`);
	let warmupErrors = 0;
	for (const target of targets) if (warmup.length) warmupErrors += (await uploadRun(target, warmup)).errors;
	const [baseUpload, busboyUpload, noWorkerUpload, meshUpload] = await uploadRounds(targets, measured);

	// Each stored image must be the file sent: same size and hash, none deduplicated away.
	const stored = measured.map((image, i) => ({ image, doc: (meshUpload.responses[i] as { images?: any[] } | undefined)?.images?.[0] }));
	const mismatched = stored.filter(({ image, doc }) => doc && (doc.size !== image.bytes || doc.visibility !== "public")).length;
	const distinctHashes = new Set(stored.flatMap(({ doc }) => (doc ? [doc.sha256] : []))).size;
	const out = ({ responses: _, ...run }: UploadRunResult) => run;
	const versusBusboy = (run: UploadRunResult) => ratio(run.imagesPerS, busboyUpload.imagesPerS);
	results.upload = {
		baseline: out(baseUpload),
		busboyBaseline: out(busboyUpload),
		imgmeshWithoutWorker: out(noWorkerUpload),
		imgmesh: { ...out(meshUpload), warmupErrors, mismatchedDocs: mismatched, distinctSha256: distinctHashes },
		ratio: {
			imagesPerS: ratio(meshUpload.imagesPerS, baseUpload.imagesPerS),
			mbPerS: ratio(meshUpload.mbPerS, baseUpload.mbPerS),
			withoutWorkerVsBusboy: versusBusboy(noWorkerUpload),
			fullVsBusboy: versusBusboy(meshUpload)
		},
		imgmeshRssAfterKb: readProcMemory(pid)
	};
	printTable(
		`a. Upload throughput: ${measured.length} distinct JPEGs (${results.images.totalMB} MB), ${params.uploadConcurrency} concurrent, 1 file/request, ${params.rounds} rounds (MB = 10^6 B; latency of the median round)`,
		["server", "ok", "errors", "time s", "images/s", "MB/s", "p50 ms", "p99 ms", "server CPU s", "÷ busboy"],
		[
			[...uploadRow(targets[0]!.label, baseUpload), versusBusboy(baseUpload) ?? "n/a"],
			[...uploadRow(targets[1]!.label, busboyUpload), 1],
			[...uploadRow(targets[2]!.label, noWorkerUpload), results.upload.ratio.withoutWorkerVsBusboy ?? "n/a"],
			[...uploadRow(targets[3]!.label, meshUpload), results.upload.ratio.fullVsBusboy ?? "n/a"]
		]
	);
	if (profileDir) await noWorker.stop();
	for (const sample of [baseUpload, busboyUpload, noWorkerUpload, meshUpload].flatMap(run => run.errorSamples)) console.log(`  error: ${sample}`);
	if (mismatched || distinctHashes !== meshUpload.ok) console.log(`  odd: ${mismatched} stored docs differ from the file sent; ${distinctHashes} distinct sha256 for ${meshUpload.ok} uploads`);

	if (!params.parts.includes("get")) return;

	// b. downloads over the images that uploaded fine, as another user.
	const ok = stored.filter(entry => entry.doc);
	if (ok.length === 0) throw new Error("no image was uploaded to imgmesh: nothing to GET");
	const meshTargets = ok.map(({ image, doc }) => ({ path: `/api/images/${doc.id}/content`, bytes: image.bytes }));
	const baseTargets = ok.map(({ image }) => ({ path: `/images/${encodeURIComponent(image.filename)}/content`, bytes: image.bytes }));
	const load = { connections: params.getConnections, durationMs: params.getSeconds * 1000, warmupMs: params.getWarmupSeconds * 1000, maxRequests: params.getMaxRequests };
	console.log(`\nb. GET content, ${params.getConnections} keep-alive connections, ${params.getSeconds} s each (+${params.getWarmupSeconds} s warm-up) ...`);
	const statsBefore = await uploader.get("/api/stats");
	const baseGet = await withCpu(baseline.process.pid!, () => runGetLoad({ base: baseline.url, targets: baseTargets, ...load }));
	await waitForIdle(pid, 10_000);
	const meshGet = await withCpu(pid, () =>
		runGetLoad({ base: server.url, targets: meshTargets, headers: { authorization: `Bearer ${viewer.token}` }, ...load })
	);
	await waitForIdle(pid, 10_000);
	const statsAfter = await uploader.get("/api/stats");
	const viewsCounted =
		typeof statsAfter.body?.totalViews === "number" && typeof statsBefore.body?.totalViews === "number"
			? statsAfter.body.totalViews - statsBefore.body.totalViews
			: null;
	results.get = {
		baseline: baseGet,
		imgmesh: { ...meshGet, viewsCounted, viewsExpectedAtLeast: meshGet.ok },
		ratio: { reqPerS: ratio(meshGet.reqPerS, baseGet.reqPerS), mbPerS: ratio(meshGet.mbPerS, baseGet.mbPerS) },
		imgmeshRssAfterKb: readProcMemory(pid)
	};
	printTable(
		`b. GET content: ${ok.length} images, ${params.getConnections} keep-alive connections, ${params.getSeconds} s (latency per request)`,
		["server", "ok", "errors", "req/s", "MB/s", "p50 ms", "p99 ms", "new conns", "server CPU s"],
		[
			getRow("baseline (fs.createReadStream)", baseGet),
			getRow("imgmesh GET /api/images/:id/content", meshGet),
			["imgmesh / baseline", "", "", results.get.ratio.reqPerS ?? "n/a", results.get.ratio.mbPerS ?? "n/a", "", "", "", ""]
		]
	);
	for (const sample of [...baseGet.errorSamples, ...meshGet.errorSamples]) console.log(`  error: ${sample}`);
	console.log(`  views counted by imgmesh during the run: ${viewsCounted ?? "n/a"} (successful GETs incl. warm-up >= ${meshGet.ok})`);
	const hwm = results.get.imgmeshRssAfterKb;
	if (hwm) console.log(`  imgmesh RSS after a+b: ${mib(hwm.rssKb)} MiB (peak ${mib(hwm.hwmKb)} MiB)`);
	if (meshUpload.errors || meshGet.errors) results.imgmeshOutputTail = tail(server.output());
}

// ---------------------------------------------------------------------------------------------
// Part s: serving bytes against nginx
// ---------------------------------------------------------------------------------------------

/** N distinct 1600x1067 JPEGs (~400 kB) of a real photo, each with a white 8x8 block of its own. */
async function makeOriginals(count: number): Promise<Buffer[]> {
	const [width, height] = [1600, 1067];
	const base = await sharp(join(SHARED_IMAGES, "binoculars-cc0.jpeg")).resize(width, height, { fit: "cover" }).raw().toBuffer();
	const originals: Buffer[] = [];
	for (let i = 0; i < count; i++) {
		const pixels = Buffer.from(base);
		const [x, y] = [(i % (width / 8)) * 8, Math.floor(i / (width / 8)) * 8];
		for (let row = y; row < y + 8; row++) pixels.fill(255, (row * width + x) * 3, (row * width + x + 8) * 3);
		originals.push(await sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
	}
	return originals;
}

/** Each target again, conditional on the ETag its server gave it: every answer a 304. */
async function revalidations(base: string, targets: GetTarget[], headers: Record<string, string>): Promise<GetTarget[]> {
	return Promise.all(
		targets.map(async target => {
			const res = await fetch(base + target.path, { method: "HEAD", headers });
			const etag = res.headers.get("etag");
			if (!etag) throw new Error(`${base}${target.path}: no ETag`);
			return { path: target.path, status: 304, bytes: 0, headers: { "if-none-match": etag } };
		})
	);
}

async function partServe(results: Record<string, any>): Promise<void> {
	const root = tempDir("imgmesh-bench-nginx-root-");
	console.log(`\ns. making ${params.serveImages} distinct 1600x1067 JPEGs ...`);
	const originals = await makeOriginals(params.serveImages);
	const profileDir = process.env.BENCH_PROFILE_DIR;
	const server = await startServer(profileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` } : {});
	servers.add(server);
	const nginx = await startNginx(root);
	const owner = await new Client(server.url).register("bench-owner");
	const auth = { authorization: `Bearer ${owner.token}` };
	const ids: string[] = [];
	for (const [i, bytes] of originals.entries()) {
		const res = await owner.upload([{ name: `original-${i}.jpg`, bytes, type: "image/jpeg" }], { visibility: "public" });
		if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(res.body)}`);
		ids.push(res.body.images[0].id);
		writeFileSync(join(root, `${i}.jpg`), bytes);
	}
	for (const id of ids) await settled(owner, id, 300_000);
	// nginx serves the very bytes imgmesh serves: the variant and rendition fetched once (which
	// also puts each variant in the cache before timing).
	const variantPath = (id: string) => `/api/images/${id}/content?w=512&format=webp`;
	const renditionPath = (id: string) => `/api/images/${id}/renditions/720`;
	const served: Record<string, { mesh: GetTarget[]; nginx: GetTarget[] }> = { original: { mesh: [], nginx: [] }, variant: { mesh: [], nginx: [] }, rendition: { mesh: [], nginx: [] } };
	for (const [i, id] of ids.entries()) {
		served.original.mesh.push({ path: `/api/images/${id}/content`, bytes: originals[i]!.length });
		served.original.nginx.push({ path: `/${i}.jpg`, bytes: originals[i]!.length });
		for (const [kind, path] of [["variant", variantPath(id)], ["rendition", renditionPath(id)]] as const) {
			const res = await owner.download(path);
			if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
			writeFileSync(join(root, `${i}-${kind}.webp`), res.bytes);
			served[kind].mesh.push({ path, bytes: res.bytes.length });
			served[kind].nginx.push({ path: `/${i}-${kind}.webp`, bytes: res.bytes.length });
		}
	}
	const workloads = [
		{ name: "GET original", ...served.original },
		{ name: "304 original", mesh: await revalidations(server.url, served.original.mesh, auth), nginx: await revalidations(nginx.url, served.original.nginx, {}) },
		{ name: "GET cached variant (w=512 WebP)", ...served.variant },
		{ name: "GET rendition 720", ...served.rendition }
	];
	const load = { connections: params.getConnections, durationMs: params.serveSeconds * 1000, warmupMs: 500, maxRequests: params.getMaxRequests };
	const median = (runs: GetLoadResult[]) => runs.toSorted((a, b) => a.reqPerS - b.reqPerS)[Math.floor(runs.length / 2)]!;
	const cpuMs = (r: GetLoadResult) => (r.serverCpuS === null || r.ok === 0 ? null : round((r.serverCpuS * 1000) / r.ok, 3));
	results.serve = { images: ids.length, meanOriginalKB: round(originals.reduce((sum, b) => sum + b.length, 0) / originals.length / 1000, 1), workloads: {} };
	const rows: (string | number)[][] = [];
	for (const workload of workloads.filter(w => w.name.includes(process.env.BENCH_SERVE_ONLY ?? ""))) {
		const rounds: { nginx: GetLoadResult; imgmesh: GetLoadResult }[] = [];
		for (let r = 0; r < params.rounds; r++) {
			const nginxRun = await runGetLoad({ base: nginx.url, targets: workload.nginx, serverPid: nginx.workerPid, ...load });
			const meshRun = await runGetLoad({ base: server.url, targets: workload.mesh, headers: auth, serverPid: server.process.pid, ...load });
			rounds.push({ nginx: nginxRun, imgmesh: meshRun });
		}
		const nginxRun = median(rounds.map(r => r.nginx));
		const meshRun = median(rounds.map(r => r.imgmesh));
		const entry = {
			nginx: nginxRun,
			imgmesh: meshRun,
			ratio: { reqPerS: ratio(meshRun.reqPerS, nginxRun.reqPerS), p99: ratio(meshRun.latencyMs.p99, nginxRun.latencyMs.p99) },
			rounds: rounds.map(r => ({ nginx: r.nginx.reqPerS, imgmesh: r.imgmesh.reqPerS }))
		};
		results.serve.workloads[workload.name] = entry;
		const row = (label: string, r: GetLoadResult) => [workload.name, label, r.ok, r.errors, r.reqPerS, r.mbPerS, r.latencyMs.p50, r.latencyMs.p99, cpuMs(r) ?? "n/a"];
		rows.push(row("nginx", nginxRun), row("imgmesh", meshRun), [workload.name, "imgmesh / nginx", "", "", entry.ratio.reqPerS ?? "n/a", "", "", `p99 x${entry.ratio.p99 ?? "n/a"}`, ""]);
		for (const sample of [...nginxRun.errorSamples, ...meshRun.errorSamples]) console.log(`  error: ${sample}`);
		console.log(`  ${workload.name}: imgmesh/nginx ${entry.ratio.reqPerS} (rounds ${entry.rounds.map(r => round(r.imgmesh / r.nginx)).join(", ")})`);
	}
	printTable(
		`s. Serving against nginx: ${ids.length} images (originals ~${results.serve.meanOriginalKB} kB), ${params.getConnections} connections, median of ${params.rounds} interleaved rounds of ${params.serveSeconds} s`,
		["workload", "server", "ok", "errors", "req/s", "MB/s", "p50 ms", "p99 ms", "CPU ms/req"],
		rows
	);
	await nginx.stop();
	await server.stop();
	servers.delete(server);
}

/**
 * Part c runs on two nodes: the upload path alone (every service but the worker), which the
 * memory requirement bounds, and the whole embedded node, whose worker renders the 240/720 px
 * renditions of the same image right after it is stored: that decode is the pipeline's memory,
 * not the upload's, and is reported beside it. With SeaweedFS built, a third: the upload path on
 * STORAGE=s3, started here (test/helpers/s3.ts), bounded too.
 */
const UPLOAD_PATH = { SERVICES: "api,users,images,categories,storage,health,transform,classifier,imports" };
const BIG_UPLOAD_NODES = [
	{ key: "uploadPath", label: "upload path (all services but the worker)", env: () => UPLOAD_PATH, bounded: true },
	{ key: "embedded", label: "whole embedded node (the worker renders it right after)", env: () => ({}), bounded: false }
];

async function partBigUpload(results: Record<string, any>): Promise<boolean> {
	const dir = tempDir("imgmesh-bench-big-");
	const side = params.bigSide;
	const path = join(dir, `noise-${side}.png`);
	console.log(`\nc. making a ${side}x${side} RGB noise PNG ...`);
	await makeBigPng(path, side);
	const size = statSync(path).size;
	const sha256 = await sha256File(path);
	results.bigUpload = { file: { width: side, height: side, megapixels: round((side * side) / 1e6, 2), bytes: size, sha256 }, limitMiB: RSS_LIMIT_MIB };
	const s3 = s3SkipReason() ? undefined : await startS3();
	const nodes = s3 ? [...BIG_UPLOAD_NODES, { key: "uploadPathS3", label: "upload path, STORAGE=s3 (SeaweedFS)", env: () => ({ ...UPLOAD_PATH, ...s3.nodeEnv(s3.location()) }), bounded: true }] : BIG_UPLOAD_NODES;
	let pass = true;
	try {
		for (const node of nodes) {
			console.log(`  ${round(size / MB, 1)} MB (${round(size / MiB, 1)} MiB) to a fresh imgmesh, ${node.label} ...`);
			const run = await measureBigUpload({ path, size, sha256 }, node.env());
			run.pass = run.storedIntact && (!node.bounded || run.peakHwmKb < RSS_LIMIT_MIB * 1024);
			results.bigUpload[node.key] = run;
			pass &&= run.pass;
		}
	} finally {
		await s3?.stop();
	}
	const runs = nodes.map(node => results.bigUpload[node.key]);
	const row = (metric: string, pick: (run: any) => string | number) => [metric, ...runs.map(pick)];
	printTable(`c. Server memory while uploading one ${round(size / MB, 1)} MB PNG (${side}x${side}), streamed from disk`, ["metric", ...nodes.map(node => node.label)], [
		row("upload status", run => `${run.status ?? "failed"}${run.storedIntact ? " (stored intact)" : ` ${run.error ?? ""}`}`),
		row("upload time s", run => round(run.elapsedS, 2)),
		row("upload MB/s", run => run.mbPerS),
		row("idle RSS MiB (before upload)", run => (run.idleRssKb ? mib(run.idleRssKb) : "n/a")),
		row("max sampled VmRSS MiB (50 ms)", run => mib(run.maxSampledRssKb)),
		row("peak RSS (VmHWM) MiB", run => mib(run.peakHwmKb)),
		row("RSS after upload MiB", run => (run.finalRssKb ? mib(run.finalRssKb) : "n/a")),
		[`requirement peak < ${RSS_LIMIT_MIB} MiB`, ...nodes.map((node, i) => (!node.bounded ? "(not bounded)" : runs[i].pass ? "PASS" : "FAIL"))]
	]);
	rmSync(dir, { recursive: true, force: true });
	tempDirs.delete(dir);
	return pass;
}

/** One fresh node, one upload of the big file, its memory sampled every 50 ms until just after. */
async function measureBigUpload(file: { path: string; size: number; sha256: string }, env: Record<string, string>): Promise<Record<string, any>> {
	const server = await startServer({ MAX_UPLOAD_BYTES: "268435456", ...env });
	servers.add(server);
	const pid = server.process.pid!;
	const user = await new Client(server.url).register("bench-big");
	await waitForIdle(pid, 10_000);
	// Idle means idle: the registration's password thread has stopped too.
	await sleep(PASSWORD_THREAD_IDLE_MS + 1000);
	const idle = readProcMemory(pid);

	// The peak of the upload, not of the node's start (module loading peaks above its idle RSS).
	const peakReset = resetPeakRss(pid);
	const sampler = startRssSampler(pid, 50);
	const started = performance.now();
	let res: Awaited<ReturnType<typeof uploadMultipart>> | undefined;
	let uploadError: string | undefined;
	try {
		res = await uploadMultipart(
			`${server.url}/api/images`,
			{ visibility: "private" },
			{ filename: basename(file.path), contentType: "image/png", source: { path: file.path, size: file.size } },
			{ token: user.token, timeoutMs: 120_000 }
		);
	} catch (err) {
		uploadError = (err as Error).message;
	}
	const elapsedS = (performance.now() - started) / 1000;
	// What the server does right after answering (the worker's renditions) counts too.
	await sleep(3000);
	const rss = sampler.stop();
	const final = readProcMemory(pid);
	const peakKb = Math.max(rss.hwmKb, rss.maxSampledRssKb, final?.hwmKb ?? 0);
	const doc = res?.body?.images?.[0];
	const stored = res?.status === 201 && doc?.size === file.size && doc?.sha256 === file.sha256;
	const run: Record<string, any> = {
		status: res?.status ?? null,
		error: uploadError ?? (stored ? undefined : JSON.stringify(res?.body).slice(0, 500)),
		storedIntact: stored,
		elapsedS: round(elapsedS, 3),
		mbPerS: round(file.size / MB / elapsedS),
		idleRssKb: idle?.rssKb ?? null,
		idleHwmKb: idle?.hwmKb ?? null,
		peakReset,
		peakHwmKb: peakKb,
		maxSampledRssKb: rss.maxSampledRssKb,
		samples: rss.samples,
		finalRssKb: final?.rssKb ?? null,
		rssTimeline: rss.timeline
	};
	if (!stored) run.imgmeshOutputTail = tail(server.output());
	await server.stop();
	servers.delete(server);
	return run;
}

async function main(): Promise<number> {
	const watchdog = setTimeout(() => {
		console.error(`\nbench:api exceeded BENCH_MAX_MINUTES=${params.maxMinutes}; stopping`);
		void cleanup().finally(() => process.exit(1));
	}, params.maxMinutes * 60_000);
	watchdog.unref();
	for (const signal of ["SIGINT", "SIGTERM"] as const) {
		process.once(signal, () => void cleanup().finally(() => process.exit(130)));
	}
	process.once("exit", cleanupSync);

	const startedAt = new Date();
	const results: Record<string, any> = { benchmark: "api", startedAt: startedAt.toISOString(), machine: machineInfo(), parameters: params, errors: [] };
	console.log(`imgmesh bench:api on ${results.machine.cpus} x ${results.machine.cpuModel}, node ${process.version}`);
	let failed = false;
	try {
		if (params.parts.includes("upload") || params.parts.includes("get")) {
			try {
				await partsUploadAndGet(results);
			} catch (err) {
				failed = true;
				results.errors.push({ part: "upload/get", message: (err as Error).message });
				console.error(`\nupload/get failed: ${(err as Error).message}`);
			}
			await cleanup();
		}
		if (params.parts.includes("serve")) {
			try {
				await partServe(results);
			} catch (err) {
				failed = true;
				results.errors.push({ part: "serve", message: (err as Error).message });
				console.error(`\nserve failed: ${(err as Error).message}`);
			}
			await cleanup();
		}
		if (params.parts.includes("rss")) {
			try {
				if (!(await partBigUpload(results))) failed = true;
			} catch (err) {
				failed = true;
				results.errors.push({ part: "rss", message: (err as Error).message });
				console.error(`\nbig upload failed: ${(err as Error).message}`);
			}
		}
	} finally {
		await cleanup();
		clearTimeout(watchdog);
	}
	results.finishedAt = new Date().toISOString();
	results.durationS = round((Date.now() - startedAt.getTime()) / 1000, 1);
	// A run of some parts only keeps its own file: it never replaces the whole run's figures.
	const name = process.env.BENCH_PARTS ? `api-${params.parts.join("-")}` : "api";
	console.log(`\nResults: ${saveResults(name, results)}, ${results.durationS} s`);
	return failed ? 1 : 0;
}

if (process.argv[2] === "--baseline-server") {
	runBaselineServer();
} else {
	process.exitCode = await main();
}
