/**
 * Small helpers shared by the benches: env parameters, percentiles, tables, process memory from
 * /proc, machine info, result files, the test images (distinct JPEGs, big noise PNGs), two light load generators on node:http (multipart
 * uploads streamed from memory or disk, and a keep-alive GET load), the event-loop lag of the nodes
 * a bench starts, and nginx as an anchor. Only 127.0.0.1 is targeted.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes, randomFillSync } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import type { BlobStore } from "../models/storage/blob-store.ts";
import { freePort, SHARED_IMAGES } from "../test/helpers/server.ts";

export const MB = 1_000_000;
export const MiB = 1024 * 1024;
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** An integer from the environment, or the fallback. */
export function envInt(name: string, fallback: number, min = 0): number {
	const raw = process.env[name];
	if (raw === undefined || raw === "") return fallback;
	const value = Number(raw);
	if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
	return value;
}

export const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms));
export const round = (value: number, digits = 2) => (Number.isFinite(value) ? Number(value.toFixed(digits)) : value);

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
	if (sorted.length === 0) return NaN;
	const rank = Math.ceil((p / 100) * sorted.length);
	return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export interface Summary {
	count: number;
	min: number;
	mean: number;
	p50: number;
	p90: number;
	p99: number;
	max: number;
}

/** Summary of latencies (or any values), rounded to 0.01. */
export function summarize(values: number[]): Summary {
	const sorted = Float64Array.from(values).sort();
	const sum = sorted.reduce((acc, value) => acc + value, 0);
	return {
		count: sorted.length,
		min: round(sorted[0] ?? NaN),
		mean: round(sum / sorted.length),
		p50: round(percentile(sorted, 50)),
		p90: round(percentile(sorted, 90)),
		p99: round(percentile(sorted, 99)),
		max: round(sorted[sorted.length - 1] ?? NaN)
	};
}

export interface Measured {
	ops: number;
	opsPerS: number;
	mbPerS: number | null;
	latencyMs: Summary;
}

/** Calls `op(i)` with `concurrency` in flight for `seconds`; `bytes` per call gives MB/s. */
export async function measureCalls(
	op: (i: number) => Promise<unknown>,
	{ seconds, concurrency }: { seconds: number; concurrency: number },
	bytes = 0
): Promise<Measured> {
	const latencies: number[] = [];
	let next = 0;
	const started = performance.now();
	const end = started + seconds * 1000;
	const worker = async () => {
		while (performance.now() < end) {
			const t0 = performance.now();
			await op(next++);
			latencies.push(performance.now() - t0);
		}
	};
	await Promise.all(Array.from({ length: concurrency }, worker));
	const elapsedS = (performance.now() - started) / 1000;
	return {
		ops: latencies.length,
		opsPerS: round(latencies.length / elapsedS),
		mbPerS: bytes > 0 ? round((latencies.length * bytes) / MB / elapsedS) : null,
		latencyMs: summarize(latencies)
	};
}

/**
 * The blob workloads of the backend benches, in order: puts of `blobKiB` KiB, whole reads and 64 KiB
 * range reads, plain then encrypted. `step(name, work)` runs and records each.
 */
export async function blobWorkloads(
	blobs: BlobStore,
	blobKiB: number,
	measure: (op: (i: number) => Promise<unknown>, bytes?: number) => Promise<Measured>,
	step: (name: string, work: () => Promise<Measured>) => Promise<void>
): Promise<void> {
	const bytes = blobKiB * 1024;
	const payload = randomBytes(bytes);
	const put = (encrypt: boolean, i: number) =>
		// A distinct first byte pattern per call, so plain puts are not deduplicated.
		blobs.put(Readable.from([Buffer.from(`${i}-${encrypt}-`), payload]), { encrypt, ref: `r${i}`, maxBytes: 2 * bytes });
	const keys: Record<string, string[]> = { plain: [], encrypted: [] };
	for (const encrypt of [false, true]) {
		const mode = encrypt ? "encrypted" : "plain";
		await step(`blob put ${blobKiB} KiB, ${mode}`, () => measure(async i => keys[mode]!.push((await put(encrypt, i)).key), bytes));
		await step(`blob read whole, ${mode}`, () => measure(async i => buffer(await blobs.open(keys[mode]![i % keys[mode]!.length]!)), bytes));
		await step(`blob read 64 KiB range, ${mode}`, () =>
			measure(async i => buffer(await blobs.open(keys[mode]![i % keys[mode]!.length]!, { start: 100_000, end: 100_000 + 65_535 })), 65_536)
		);
	}
}

/** Prints an aligned text table: numbers right-aligned, text left-aligned. */
export function printTable(title: string, header: string[], rows: (string | number)[][]): void {
	const cells = [header, ...rows.map(row => row.map(cell => (typeof cell === "number" ? String(round(cell)) : cell)))];
	const widths = header.map((_, col) => Math.max(...cells.map(row => (row[col] ?? "").length)));
	const line = (row: string[], source: (string | number)[]) =>
		row.map((cell, col) => (typeof source[col] === "number" ? cell.padStart(widths[col]) : cell.padEnd(widths[col]))).join("  ");
	console.log(`\n${title}`);
	console.log(line(cells[0], header));
	console.log(widths.map(width => "-".repeat(width)).join("  "));
	rows.forEach((row, i) => console.log(line(cells[i + 1], row)));
}

export interface ProcMemory {
	/** Current resident set, KiB (VmRSS). */
	rssKb: number;
	/** Peak resident set since the process started, KiB (VmHWM). */
	hwmKb: number;
}

/** VmRSS and VmHWM of a process, or null if it is gone. */
export function readProcMemory(pid: number): ProcMemory | null {
	let status: string;
	try {
		status = readFileSync(`/proc/${pid}/status`, "utf8");
	} catch {
		return null;
	}
	const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
	return { rssKb: field("VmRSS"), hwmKb: field("VmHWM") };
}

/**
 * Resets a process's VmHWM to its current RSS (Linux: `5` to /proc/<pid>/clear_refs), so that the
 * peak read afterwards is that of what follows, not of the process's start. False where refused.
 */
export function resetPeakRss(pid: number): boolean {
	try {
		writeFileSync(`/proc/${pid}/clear_refs`, "5");
		return true;
	} catch {
		return false;
	}
}

export interface RssReport {
	samples: number;
	intervalMs: number;
	/** Highest VmRSS seen by sampling, KiB. */
	maxSampledRssKb: number;
	/** VmHWM at the last sample, KiB: the true peak since the process started. */
	hwmKb: number;
	/** [ms since start, VmRSS KiB], at most one per 250 ms, for the results file. */
	timeline: [number, number][];
}

/** Samples a process's VmRSS every `intervalMs` until stopped (or `maxMs` elapse). */
export function startRssSampler(pid: number, intervalMs = 50, maxMs = 15 * 60_000): { stop(): RssReport } {
	const started = performance.now();
	const report: RssReport = { samples: 0, intervalMs, maxSampledRssKb: 0, hwmKb: 0, timeline: [] };
	let lastKept = -Infinity;
	const sample = () => {
		const mem = readProcMemory(pid);
		if (!mem) return;
		const at = performance.now() - started;
		report.samples++;
		report.maxSampledRssKb = Math.max(report.maxSampledRssKb, mem.rssKb);
		report.hwmKb = Math.max(report.hwmKb, mem.hwmKb);
		if (at - lastKept >= 250) {
			report.timeline.push([Math.round(at), mem.rssKb]);
			lastKept = at;
		}
		if (at > maxMs) clearInterval(timer);
	};
	sample();
	const timer = setInterval(sample, intervalMs);
	return {
		stop() {
			clearInterval(timer);
			sample();
			return report;
		}
	};
}

export function machineInfo(): Record<string, unknown> {
	const cpus = os.cpus();
	const git = (...args: string[]) => {
		try {
			return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
		} catch {
			return null;
		}
	};
	return {
		cpus: cpus.length,
		cpuModel: cpus[0]?.model ?? null,
		totalMemMiB: Math.round(os.totalmem() / MiB),
		platform: `${os.platform()} ${os.release()} ${os.arch()}`,
		node: process.version,
		loadAvgAtStart: os.loadavg().map(value => round(value)),
		gitCommit: git("rev-parse", "HEAD"),
		gitDirty: (git("status", "--porcelain") ?? "") !== ""
	};
}

/** Writes bench/results/<name>-latest.json (only the latest run is kept: git has the history); returns its path. */
export function saveResults(name: string, data: unknown): string {
	const dir = join(ROOT, "bench", "results");
	mkdirSync(dir, { recursive: true });
	const path = join(dir, `${name}-latest.json`);
	writeFileSync(path, JSON.stringify(data, null, 2) + "\n");
	return path;
}

// ---------------------------------------------------------------------------------------------
// HTTP load generators (node:http, keep-alive; no fetch: it costs the 2-core machine too much)
// ---------------------------------------------------------------------------------------------

export interface HttpResult {
	status: number;
	body: any;
	ms: number;
}

export interface MultipartFile {
	filename: string;
	contentType: string;
	/** The bytes, or a file streamed from disk (the size is needed for Content-Length). */
	source: Buffer | { path: string; size: number };
}

/**
 * POSTs one multipart/form-data request: text fields first, then the file in field `file`.
 * The body is written from memory or streamed from disk, never assembled whole.
 */
export function uploadMultipart(
	url: string,
	fields: Record<string, string>,
	file: MultipartFile,
	options: { token?: string; agent?: http.Agent; timeoutMs?: number } = {}
): Promise<HttpResult> {
	const boundary = `----imgmesh-bench-${Math.random().toString(36).slice(2)}`;
	const head = Buffer.from(
		Object.entries(fields)
			.map(([name, value]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`)
			.join("") +
			`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.filename}"\r\n` +
			`Content-Type: ${file.contentType}\r\n\r\n`
	);
	const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
	const size = Buffer.isBuffer(file.source) ? file.source.length : file.source.size;
	const headers: Record<string, string | number> = {
		"content-type": `multipart/form-data; boundary=${boundary}`,
		"content-length": head.length + size + tail.length
	};
	if (options.token) headers.authorization = `Bearer ${options.token}`;
	const started = performance.now();
	return new Promise((resolve, reject) => {
		let answered = false;
		const req = http.request(url, { method: "POST", headers, agent: options.agent }, res => {
			answered = true;
			const chunks: Buffer[] = [];
			res.on("data", (chunk: Buffer) => chunks.push(chunk));
			res.on("error", reject);
			res.on("end", () => {
				const text = Buffer.concat(chunks).toString("utf8");
				let body: unknown = text;
				try {
					body = text ? JSON.parse(text) : null;
				} catch {
					// not JSON: keep the text
				}
				resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - started });
			});
		});
		// A server may answer (e.g. 413) and close before reading the whole body: the answer counts.
		req.on("error", err => {
			if (!answered) reject(err);
		});
		req.setTimeout(options.timeoutMs ?? 60_000, () => req.destroy(new Error(`upload timed out after ${options.timeoutMs ?? 60_000} ms`)));
		req.write(head);
		if (Buffer.isBuffer(file.source)) {
			req.write(file.source);
			req.end(tail);
		} else {
			const stream = createReadStream(file.source.path, { highWaterMark: 256 * 1024 });
			stream.on("error", err => req.destroy(err));
			stream.on("end", () => req.end(tail));
			stream.pipe(req, { end: false });
		}
	});
}

export interface UploadRunResult {
	ok: number;
	errors: number;
	errorSamples: string[];
	bytes: number;
	elapsedS: number;
	imagesPerS: number;
	mbPerS: number;
	latencyMs: Summary;
	/** Response bodies of the successful uploads, by file index (undefined for failures). */
	responses: unknown[];
}

/**
 * Uploads each file once, `concurrency` requests in flight, one file per request, over
 * keep-alive connections. Stops taking new files after `maxMs`.
 */
export async function runUploads(options: {
	url: string;
	token?: string;
	fields: Record<string, string>;
	files: MultipartFile[];
	concurrency: number;
	maxMs: number;
	timeoutMs?: number;
}): Promise<UploadRunResult> {
	const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
	const responses: unknown[] = new Array(options.files.length);
	const latencies: number[] = [];
	const errorSamples: string[] = [];
	let ok = 0;
	let errors = 0;
	let bytes = 0;
	let next = 0;
	const started = performance.now();
	const deadline = started + options.maxMs;
	const fail = (message: string) => {
		errors++;
		if (errorSamples.length < 5) errorSamples.push(message);
	};
	const worker = async () => {
		while (next < options.files.length && performance.now() < deadline) {
			const index = next++;
			const file = options.files[index];
			try {
				const res = await uploadMultipart(options.url, options.fields, file, { token: options.token, agent, timeoutMs: options.timeoutMs });
				if (res.status !== 201) {
					fail(`${file.filename}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
					continue;
				}
				ok++;
				bytes += Buffer.isBuffer(file.source) ? file.source.length : file.source.size;
				latencies.push(res.ms);
				responses[index] = res.body;
			} catch (err) {
				fail(`${file.filename}: ${(err as Error).message}`);
			}
		}
	};
	try {
		await Promise.all(Array.from({ length: options.concurrency }, worker));
	} finally {
		agent.destroy();
	}
	const elapsedS = (performance.now() - started) / 1000;
	return {
		ok,
		errors,
		errorSamples,
		bytes,
		elapsedS: round(elapsedS, 3),
		imagesPerS: round(ok / elapsedS),
		mbPerS: round(bytes / MB / elapsedS),
		latencyMs: summarize(latencies),
		responses
	};
}

export interface GetTarget {
	path: string;
	/** Expected body length; undefined = any length (e.g. an encoder's output). */
	bytes?: number;
	/** Expected status [200], e.g. 304 for a conditional request. */
	status?: number;
	/** Headers of this target's requests, over the run's (e.g. its If-None-Match). */
	headers?: Record<string, string>;
}

export interface GetLoadResult {
	requests: number;
	ok: number;
	errors: number;
	errorSamples: string[];
	/** Connections opened during the measured phase (keep-alive should keep this ~= connections). */
	newConnections: number;
	bytes: number;
	elapsedS: number;
	reqPerS: number;
	mbPerS: number;
	latencyMs: Summary;
	/** Successful requests of the unmeasured warm-up. */
	warmupOk: number;
	/** CPU seconds the server (`serverPid`) used during the measured phase. */
	serverCpuS: number | null;
	/** CPU seconds this (load generator) process used during the measured phase. */
	clientCpuS: number;
}

function getOnce(base: URL, target: GetTarget, headers: Record<string, string>, agent: http.Agent, timeoutMs: number) {
	return new Promise<{ status: number; bytes: number; reused: boolean }>((resolve, reject) => {
		const req = http.request(
			{ host: base.hostname, port: base.port, path: target.path, method: "GET", headers, agent },
			res => {
				let bytes = 0;
				res.on("data", (chunk: Buffer) => (bytes += chunk.length));
				res.on("error", reject);
				res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, reused: req.reusedSocket }));
			}
		);
		req.on("error", reject);
		req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET timed out after ${timeoutMs} ms`)));
		req.end();
	});
}

/**
 * `connections` keep-alive connections each issuing GETs back to back over `targets`
 * (round-robin) for `durationMs` (after an unmeasured warm-up), or until `maxRequests`.
 * A response counts as ok only with the target's status (200 unless given) and exactly the expected byte count (if given).
 */
export async function runGetLoad(options: {
	base: string;
	targets: GetTarget[];
	headers?: Record<string, string>;
	connections: number;
	durationMs: number;
	warmupMs: number;
	maxRequests: number;
	timeoutMs?: number;
	/** The server's pid, to report its CPU time over the measured phase. */
	serverPid?: number;
}): Promise<GetLoadResult> {
	const base = new URL(options.base);
	if (base.hostname !== "127.0.0.1") throw new Error("benches only target 127.0.0.1");
	const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections, maxFreeSockets: options.connections });
	const headers = options.headers ?? {};
	const timeoutMs = options.timeoutMs ?? 30_000;
	let next = 0;

	const phase = async (durationMs: number, maxRequests: number, measure: boolean) => {
		const latencies: number[] = [];
		const errorSamples: string[] = [];
		let requests = 0;
		let ok = 0;
		let errors = 0;
		let bytes = 0;
		let newConnections = 0;
		const started = performance.now();
		const end = started + durationMs;
		const worker = async () => {
			// Bounded in time and count; a dead server also ends it after many errors.
			while (performance.now() < end && requests < maxRequests && errors < 1000) {
				const target = options.targets[next++ % options.targets.length];
				requests++;
				const t0 = performance.now();
				try {
					const res = await getOnce(base, target, target.headers ? { ...headers, ...target.headers } : headers, agent, timeoutMs);
					if (!res.reused) newConnections++;
					if (res.status !== (target.status ?? 200) || (target.bytes !== undefined && res.bytes !== target.bytes)) {
						errors++;
						if (errorSamples.length < 5) errorSamples.push(`${target.path}: status ${res.status}, ${res.bytes}/${target.bytes ?? "any"} bytes`);
						continue;
					}
					ok++;
					bytes += res.bytes;
					if (measure) latencies.push(performance.now() - t0);
				} catch (err) {
					errors++;
					if (errorSamples.length < 5) errorSamples.push(`${target.path}: ${(err as Error).message}`);
				}
			}
		};
		await Promise.all(Array.from({ length: options.connections }, worker));
		const elapsedS = (performance.now() - started) / 1000;
		return {
			requests,
			ok,
			errors,
			errorSamples,
			newConnections,
			bytes,
			elapsedS: round(elapsedS, 3),
			reqPerS: round(ok / elapsedS),
			mbPerS: round(bytes / MB / elapsedS),
			latencyMs: summarize(latencies)
		};
	};

	try {
		const warmup = options.warmupMs > 0 ? await phase(options.warmupMs, options.maxRequests, false) : null;
		const cpuBefore = options.serverPid ? cpuSeconds(options.serverPid) : null;
		const clientBefore = process.cpuUsage();
		const measured = await phase(options.durationMs, options.maxRequests, true);
		const cpuAfter = options.serverPid ? cpuSeconds(options.serverPid) : null;
		const serverCpuS = cpuBefore !== null && cpuAfter !== null ? round(cpuAfter - cpuBefore) : null;
		const client = process.cpuUsage(clientBefore);
		return { ...measured, warmupOk: warmup?.ok ?? 0, serverCpuS, clientCpuS: round((client.user + client.system) / 1e6) };
	} finally {
		agent.destroy();
	}
}

/** User + system CPU seconds a process has used so far (Linux, CLK_TCK 100), or null if gone. */
export function cpuSeconds(pid: number): number | null {
	let stat: string;
	try {
		stat = readFileSync(`/proc/${pid}/stat`, "utf8");
	} catch {
		return null;
	}
	// Fields after "(comm) ": state is [0], utime [11], stime [12].
	const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
	return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Waits until a process uses under `threshold` of a core over `windowMs` (at most `maxMs`). */
export async function waitForIdle(pid: number, maxMs = 20_000, windowMs = 500, threshold = 0.05): Promise<boolean> {
	const deadline = Date.now() + maxMs;
	while (Date.now() < deadline) {
		const before = cpuSeconds(pid);
		await sleep(windowMs);
		const after = cpuSeconds(pid);
		if (before === null || after === null) return false;
		if ((after - before) / (windowMs / 1000) < threshold) return true;
	}
	return false;
}

// ---------------------------------------------------------------------------------------------
// Test images, made before timing
// ---------------------------------------------------------------------------------------------

const MAX_PIXELS = 100_000_000;

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32): every run sees the same data. */
export function prng(seed: number): () => number {
	let state = seed >>> 0;
	return () => {
		state = (state + 0x6d2b79f5) >>> 0;
		let t = state;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

export interface BenchImage extends MultipartFile {
	path: string;
	bytes: number;
	width: number;
	height: number;
}

/**
 * `count` distinct real JPEGs: random crops of the shared JPEG photos, resized to 256..1080 px
 * wide, sometimes mirrored, re-encoded at quality 70..92; unique by SHA-256.
 */
export async function makeJpegs(dir: string, count: number): Promise<BenchImage[]> {
	const names = readdirSync(SHARED_IMAGES)
		.filter(name => /\.jpe?g$/i.test(name))
		.sort();
	if (names.length === 0) throw new Error(`no JPEG photos in ${SHARED_IMAGES}`);
	const sources = await Promise.all(
		names.map(async name => {
			const bytes = readFileSync(join(SHARED_IMAGES, name));
			const meta = await sharp(bytes).metadata();
			return { name: name.replace(/\.[^.]+$/, ""), bytes, width: meta.width!, height: meta.height! };
		})
	);
	const seen = new Set<string>();
	const images: BenchImage[] = new Array(count);
	let next = 0;
	const variant = async (index: number): Promise<BenchImage> => {
		const src = sources[index % sources.length];
		for (let attempt = 0; attempt < 5; attempt++) {
			const random = prng(index + 1 + attempt * 1_000_003);
			const width = Math.max(64, Math.floor(src.width * (0.5 + 0.5 * random())));
			const height = Math.max(64, Math.floor(src.height * (0.5 + 0.5 * random())));
			const left = Math.floor((src.width - width) * random());
			const top = Math.floor((src.height - height) * random());
			const targetWidth = Math.min(width, 256 + Math.floor(random() * (1080 - 256)));
			const quality = 70 + Math.floor(random() * 23);
			let image = sharp(src.bytes).extract({ left, top, width, height }).resize({ width: targetWidth });
			if (random() < 0.5) image = image.flop();
			const { data, info } = await image.jpeg({ quality }).toBuffer({ resolveWithObject: true });
			const hash = createHash("sha256").update(data).digest("hex");
			if (seen.has(hash)) continue;
			seen.add(hash);
			const filename = `${src.name}-${String(index).padStart(4, "0")}.jpg`;
			const path = join(dir, filename);
			writeFileSync(path, data);
			return { filename, contentType: "image/jpeg", source: data, path, bytes: data.length, width: info.width, height: info.height };
		}
		throw new Error(`could not make a distinct JPEG for index ${index}`);
	};
	const worker = async () => {
		while (next < count) {
			const index = next++;
			images[index] = await variant(index);
		}
	};
	await Promise.all([worker(), worker()]);
	return images;
}

/** A PNG of random RGB noise, side x side, stored uncompressed (~3 bytes per pixel). */
export async function makeBigPng(path: string, side: number): Promise<void> {
	if (side * side > MAX_PIXELS) throw new Error(`BENCH_BIG_SIDE ${side}: ${side}x${side} is over ${MAX_PIXELS} pixels`);
	const raw = Buffer.allocUnsafe(side * side * 3);
	for (let offset = 0; offset < raw.length; offset += 64 * MiB) randomFillSync(raw, offset, Math.min(64 * MiB, raw.length - offset));
	await sharp(raw, { raw: { width: side, height: side, channels: 3 } })
		.png({ compressionLevel: 0, adaptiveFiltering: false })
		.toFile(path);
}


// ---------------------------------------------------------------------------------------------
// Event-loop lag of the nodes a bench starts, and nginx as an anchor
// ---------------------------------------------------------------------------------------------

export interface EventLoopLag {
	pid: number;
	/** The script the process ran (main.ts for an imgmesh node). */
	script: string;
	/** SERVICES of that node, null when unset (every service). */
	services: string | null;
	seconds: number;
	samples: number;
	p50Ms: number;
	p99Ms: number;
	maxMs: number;
}

/**
 * The environment that makes every Node process started with it (and the nodes
 * test/helpers/server.ts starts from there) record its event-loop lag into `dir`
 * (bench/event-loop-lag.ts).
 */
export function eventLoopLagEnv(dir: string): Record<string, string> {
	mkdirSync(dir, { recursive: true });
	const preload = `--import=${join(ROOT, "bench", "event-loop-lag.ts")}`;
	return { BENCH_LAG_DIR: dir, NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" ") };
}

/** The lag records in `dir` of the processes that ran `script` (default: imgmesh nodes). */
export function readEventLoopLag(dir: string, script = "main.ts"): EventLoopLag[] {
	let names: string[];
	try {
		names = readdirSync(dir).filter(name => /^lag-\d+\.json$/.test(name));
	} catch {
		return [];
	}
	return names
		.map(name => JSON.parse(readFileSync(join(dir, name), "utf8")) as EventLoopLag)
		.filter(record => record.script === script && record.samples > 0)
		.sort((a, b) => a.pid - b.pid);
}

export interface Nginx {
	/** `http://127.0.0.1:<port>`. */
	url: string;
	pid: number;
	/** The worker process, which serves: its CPU is nginx's cost per request. */
	workerPid: number;
	stop(): Promise<void>;
}

/**
 * nginx (Debian's package: `apt-get install -y nginx`) serving the files under `root` on a free
 * loopback port, from a generated config in a temp dir (never the system service): one worker
 * like one Node process, sendfile, keep-alive without a request cap, no access log, ETag and
 * If-None-Match as shipped (304s). Throws when nginx is not installed.
 */
export async function startNginx(root: string, options: { binary?: string } = {}): Promise<Nginx> {
	const binary = options.binary ?? process.env.BENCH_NGINX ?? "/usr/sbin/nginx";
	const dir = mkdtempSync(join(os.tmpdir(), "imgmesh-nginx-"));
	const port = await freePort();
	const config = `
# Root reads the bench's temp dirs (mode 0700), so the worker stays root; loopback only.
${process.getuid?.() === 0 ? "user root;" : ""}
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	keepalive_timeout 60s;
	types { image/jpeg jpg jpeg; image/webp webp; image/avif avif; image/png png; }
	default_type application/octet-stream;
	client_body_temp_path ${dir}/body;
	proxy_temp_path ${dir}/proxy;
	fastcgi_temp_path ${dir}/fastcgi;
	uwsgi_temp_path ${dir}/uwsgi;
	scgi_temp_path ${dir}/scgi;
	server {
		listen 127.0.0.1:${port};
		root ${root};
	}
}
`;
	writeFileSync(join(dir, "nginx.conf"), config);
	const child = spawn(binary, ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "pipe"] });
	let log = "";
	child.stderr!.on("data", chunk => (log += chunk));
	const exited = new Promise<void>(resolve => child.once("exit", () => resolve()));
	const fail = async (message: string) => {
		child.kill("SIGKILL");
		await exited;
		rmSync(dir, { recursive: true, force: true });
		return new Error(`${message}\n${log}${existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : ""}`);
	};
	await new Promise<void>((resolve, reject) => {
		child.once("spawn", resolve);
		child.once("error", err => reject(new Error(`nginx not startable at ${binary} (apt-get install -y nginx): ${err.message}`)));
	});
	const url = `http://127.0.0.1:${port}`;
	const deadline = Date.now() + 10_000;
	for (;;) {
		if (child.exitCode !== null) throw await fail(`nginx exited with ${child.exitCode}`);
		const answered = await new Promise<boolean>(resolve => {
			http.get(`${url}/`, res => {
				res.resume();
				resolve(true);
			}).on("error", () => resolve(false));
		});
		if (answered) break;
		if (Date.now() > deadline) throw await fail("nginx did not answer within 10 s");
		await sleep(50);
	}
	return {
		url,
		pid: child.pid!,
		workerPid: Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(" ")[0]),
		async stop() {
			// SIGQUIT: graceful; the master waits for its worker, so nothing is left behind.
			if (child.exitCode === null) child.kill("SIGQUIT");
			await exited;
			rmSync(dir, { recursive: true, force: true });
		}
	};
}
