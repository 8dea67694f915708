/**
 * Transform benchmark (`npm run bench:transform`, i.e. `node bench/transform.ts`): `w=512` and
 * `format=webp|jpeg|avif` of a 1600x1067 JPEG and of a 12 MP (4000x3000) one, side by side in one run:
 *
 *  - raw sharp: the same operation (sharp 0.35, same quality and AVIF effort as imgmesh) in a
 *    plain loop in this process, as many in parallel as the uncached HTTP runs: the compute bound.
 *  - imgmesh uncached: GET /p/:id?w=512&format=…&sig=… (signed, as guests need them) once per distinct source (N distinct JPEGs, so no
 *    request hits the variant cache), C concurrent requests. The node runs with
 *    TRANSFORM_AVIF_CONCURRENCY=C so that AVIF gets the same parallelism as the other two (its
 *    default, 1, caps AVIF at one core on purpose).
 *  - ipx: ipx 3 (its own sharp 0.34) serving the same files from disk with the same operation
 *    (`/w_512&f_…&q_…/<file>`), same client and concurrency; a child process like imgmesh.
 *  - warm-up: each system first renders one more source per format, untimed (JIT, codecs).
 *  - rounds: the three uncached runs alternate R times on fresh sources, so load from outside
 *    the bench hits each alike; the table shows each system's median round.
 *  - imgmesh cached: the same URLs again (all now cached) at K keep-alive connections for S s.
 *
 * ipx keeps no variant cache (it leaves caching to an HTTP cache in front), so it has no cached
 * row. Prints a table and writes bench/results/transform-latest.json.
 *
 * Environment (defaults in brackets):
 *   BENCH_SOURCES [24]        distinct source JPEGs per round for the WebP and JPEG runs
 *   BENCH_AVIF_SOURCES [8]    distinct sources per round for the AVIF runs (each costs ~0.5 s of a core)
 *   BENCH_CONCURRENCY [2]     concurrent requests (and raw sharp loops) of the uncached runs
 *   BENCH_CONNECTIONS [16]    keep-alive connections of the cached run
 *   BENCH_SECONDS [5]         measured duration of each cached run
 *   BENCH_ROUNDS [3]          alternating rounds of the uncached runs
 *   BENCH_FORMATS [webp,jpeg,avif]
 *   BENCH_SIZES [1600x1067,4000x3000] source sizes, each measured with every format
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { loadConfig } from "../config/index.ts";
import { renderVariant, type PipelineSettings } from "../models/transform/render.ts";
import { normalizeTransform, type OutputFormat, type TransformSpec } from "../models/transform/spec.ts";
import { Client } from "../test/helpers/client.ts";
import { settled } from "../test/helpers/jobs.ts";
import { freePort, SHARED_IMAGES, startServer } from "../test/helpers/server.ts";
import { envInt, machineInfo, printTable, round, runGetLoad, saveResults, summarize, type GetLoadResult, type Summary } from "./lib.ts";

const OUTPUT_WIDTH = 512;

const params = {
	sources: envInt("BENCH_SOURCES", 24, 1),
	avifSources: envInt("BENCH_AVIF_SOURCES", 8, 1),
	concurrency: envInt("BENCH_CONCURRENCY", 2, 1),
	connections: envInt("BENCH_CONNECTIONS", 16, 1),
	seconds: envInt("BENCH_SECONDS", 5, 1),
	rounds: envInt("BENCH_ROUNDS", 3, 1),
	formats: (process.env.BENCH_FORMATS ?? "webp,jpeg,avif").split(",").map(name => name.trim()) as OutputFormat[],
	sizes: (process.env.BENCH_SIZES ?? "1600x1067,4000x3000").split(",").map(parseSize)
};

interface Size {
	width: number;
	height: number;
}

function parseSize(text: string): Size {
	const [width, height] = text.trim().split("x").map(Number);
	if (!(Number.isSafeInteger(width) && width! >= 8 && Number.isSafeInteger(height) && height! >= 8)) throw new Error(`BENCH_SIZES: "${text}" is not WxH`);
	return { width: width!, height: height! };
}

const sizeName = ({ width, height }: Size) => `${width}x${height}`;

/**
 * N distinct JPEGs of a real photo at `size`, each with a white 8x8 block in its own place: a
 * difference JPEG quantization cannot erase, so each has its own SHA-256 (and cache key).
 */
async function makeSources(count: number, { width: WIDTH, height: HEIGHT }: Size): Promise<Buffer[]> {
	const base = await sharp(join(SHARED_IMAGES, "binoculars-cc0.jpeg")).resize(WIDTH, HEIGHT, { fit: "cover" }).raw().toBuffer();
	const blocksPerRow = Math.floor(WIDTH / 8);
	return Promise.all(
		Array.from({ length: count }, (_, i) => {
			const pixels = Buffer.from(base);
			const [x, y] = [(i % blocksPerRow) * 8, Math.floor(i / blocksPerRow) * 8];
			for (let row = y; row < y + 8; row++) pixels.fill(255, (row * WIDTH + x) * 3, (row * WIDTH + x + 8) * 3);
			return sharp(pixels, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
		})
	);
}

/** Runs `work` over every item, `concurrency` at a time; returns the wall time and each latency. */
async function inParallel<T>(items: T[], concurrency: number, work: (item: T) => Promise<unknown>): Promise<{ elapsedS: number; latencies: number[] }> {
	const latencies: number[] = [];
	let next = 0;
	const started = performance.now();
	await Promise.all(
		Array.from({ length: concurrency }, async () => {
			while (next < items.length) {
				const item = items[next++]!;
				const t0 = performance.now();
				await work(item);
				latencies.push(performance.now() - t0);
			}
		})
	);
	return { elapsedS: (performance.now() - started) / 1000, latencies };
}

interface Row {
	perS: number;
	latencyMs: Summary;
	errors: number;
	/** CPU time of the rendering process per image: steadier than req/s on a shared machine. */
	cpuMsPerOp: number | null;
}

function fromLoad(load: GetLoadResult): Row {
	const cpuMsPerOp = load.serverCpuS === null || load.ok === 0 ? null : round((load.serverCpuS * 1000) / load.ok);
	return { perS: load.reqPerS, latencyMs: load.latencyMs, errors: load.errors, cpuMsPerOp };
}

/** The round with the median throughput. */
function median(rounds: Row[]): Row {
	return rounds.toSorted((a, b) => a.perS - b.perS)[Math.floor(rounds.length / 2)]!;
}

async function uncached(base: string, paths: string[], serverPid: number | undefined): Promise<Row> {
	const targets = paths.map(path => ({ path }));
	return fromLoad(await runGetLoad({ base, targets, connections: params.concurrency, durationMs: 600_000, warmupMs: 0, maxRequests: targets.length, serverPid }));
}

// ---------------------------------------------------------------------------------------------
// ipx, in a child process (`--ipx-server`) like imgmesh
// ---------------------------------------------------------------------------------------------

async function runIpxServer(): Promise<void> {
	const { createIPX, createIPXNodeServer, ipxFSStorage } = await import("ipx");
	const ipx = createIPX({ storage: ipxFSStorage({ dir: process.env.IPX_DIR! }) });
	http.createServer(createIPXNodeServer(ipx)).listen(Number(process.env.IPX_PORT), "127.0.0.1", () => console.log("ready"));
}

async function startIpx(dir: string): Promise<{ url: string; child: ChildProcess }> {
	const port = await freePort();
	const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--ipx-server"], {
		env: { PATH: process.env.PATH, IPX_DIR: dir, IPX_PORT: String(port) },
		stdio: ["ignore", "pipe", "inherit"]
	});
	await new Promise<void>((resolve, reject) => {
		child.stdout!.on("data", chunk => String(chunk).includes("ready") && resolve());
		child.once("exit", code => reject(new Error(`ipx exited with ${code}`)));
	});
	return { url: `http://127.0.0.1:${port}`, child };
}

// ---------------------------------------------------------------------------------------------

interface Systems {
	server: Awaited<ReturnType<typeof startServer>>;
	ipx: { url: string; child: ChildProcess };
	user: Client;
	dir: string;
	settings: PipelineSettings;
}

/** Uploads `count` + 1 distinct sources of `size` (the last warms up) and waits for their renditions. */
async function uploadSources({ user, dir }: Systems, size: Size, count: number): Promise<{ sources: Buffer[]; ids: string[] }> {
	const sources = await makeSources(count + 1, size);
	const ids: string[] = [];
	for (const [i, bytes] of sources.entries()) {
		const name = `${sizeName(size)}-${i}.jpg`;
		writeFileSync(join(dir, name), bytes);
		const res = await user.upload([{ name, bytes }], { visibility: "public" });
		if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(res.body)}`);
		ids.push(res.body.images[0].id);
	}
	// The ingest pipeline (renditions) must be done before anything is timed.
	for (const id of ids) await settled(user, id, 300_000);
	return { sources, ids };
}

/** Every format on sources of one size: raw sharp, imgmesh and ipx in alternating rounds, then cached. */
async function measureSize(systems: Systems, size: Size, rows: (string | number)[][]): Promise<Record<string, unknown>> {
	const { server, ipx, user, settings } = systems;
	const count = Math.max(params.sources, params.avifSources) * params.rounds;
	const { sources, ids } = await uploadSources(systems, size, count);
	const warmup = count;
	const formats: Record<string, unknown> = {};
	for (const format of params.formats) {
		const n = format === "avif" ? params.avifSources : params.sources;
		const spec: TransformSpec = normalizeTransform({ format, w: OUTPUT_WIDTH }, { format: "jpeg", ...size }, { maxOutputPixels: Infinity });
		// Anonymous callers need signed parameters (docs/sharing.md): the owner signs each URL once, untimed.
		const signed: string[] = [];
		for (const id of ids) signed.push((await user.get(`/api/images/${id}/url?w=${OUTPUT_WIDTH}&format=${format}`)).body.url);
		const ipxPath = (i: number) => `/w_${OUTPUT_WIDTH}&f_${format}&q_${spec.quality}/${sizeName(size)}-${i}.jpg`;
		await renderVariant(sources[warmup]!, spec, settings);
		await uncached(server.url, [signed[warmup]!], undefined);
		await uncached(ipx.url, [ipxPath(warmup)], undefined);
		const rounds: { raw: Row; imgmesh: Row; ipx: Row }[] = [];
		const indexes = Array.from({ length: n * params.rounds }, (_, i) => i);
		for (let r = 0; r < params.rounds; r++) {
			const slice = indexes.slice(r * n, (r + 1) * n);
			const cpuBefore = process.cpuUsage();
			const raw = await inParallel(slice, params.concurrency, i => renderVariant(sources[i]!, spec, settings));
			const cpu = process.cpuUsage(cpuBefore);
			rounds.push({
				raw: { perS: round(n / raw.elapsedS), latencyMs: summarize(raw.latencies), errors: 0, cpuMsPerOp: round((cpu.user + cpu.system) / 1000 / n) },
				imgmesh: await uncached(server.url, slice.map(i => signed[i]!), server.process.pid),
				ipx: await uncached(ipx.url, slice.map(ipxPath), ipx.child.pid)
			});
		}
		const rawRow = median(rounds.map(r => r.raw));
		const imgmeshUncached = median(rounds.map(r => r.imgmesh));
		const ipxUncached = median(rounds.map(r => r.ipx));
		const cached = fromLoad(
			await runGetLoad({
				base: server.url,
				targets: indexes.map(i => ({ path: signed[i]! })),
				connections: params.connections,
				durationMs: params.seconds * 1000,
				warmupMs: 500,
				maxRequests: 2_000_000,
				serverPid: server.process.pid
			})
		);
		const cpuRatio = (a: Row, b: Row) => (a.cpuMsPerOp && b.cpuMsPerOp ? round(b.cpuMsPerOp / a.cpuMsPerOp) : null);
		const ratios = {
			uncachedVsRawSharp: round(imgmeshUncached.perS / rawRow.perS),
			uncachedVsIpx: round(imgmeshUncached.perS / ipxUncached.perS),
			// The same ratios by CPU per image (anchor's ÷ imgmesh's): steadier on a shared machine.
			uncachedVsRawSharpByCpu: cpuRatio(imgmeshUncached, rawRow),
			uncachedVsIpxByCpu: cpuRatio(imgmeshUncached, ipxUncached),
			cachedVsUncached: round(cached.perS / imgmeshUncached.perS)
		};
		formats[format] = { sourcesPerRound: n, rawSharp: rawRow, imgmeshUncached, ipxUncached, imgmeshCached: cached, ratios, rounds };
		const row = (name: string, r: Row) => [sizeName(size), format, name, r.perS, r.latencyMs.p50, r.latencyMs.p99, r.cpuMsPerOp ?? "-", r.errors];
		rows.push(row("raw sharp loop", rawRow), row("imgmesh uncached", imgmeshUncached), row("ipx", ipxUncached), row("imgmesh cached", cached));
		console.log(`${sizeName(size)} ${format}: ${JSON.stringify(ratios)}`);
	}
	return formats;
}

async function main(): Promise<void> {
	const config = loadConfig({ ...process.env, DATA_DIR: mkdtempSync(join(tmpdir(), "imgmesh-bench-config-")) });
	const settings: PipelineSettings = { limitInputPixels: config.maxInputPixels, avifEffort: config.transformAvifEffort };
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-bench-transform-"));
	console.log(`bench:transform on ${machineInfo().cpus} x ${machineInfo().cpuModel}: ${params.sizes.map(sizeName).join(", ")} JPEGs → w=${OUTPUT_WIDTH}`);
	const server = await startServer({ TRANSFORM_AVIF_EFFORT: String(config.transformAvifEffort), TRANSFORM_AVIF_CONCURRENCY: String(params.concurrency) });
	const ipx = await startIpx(dir);
	const results: Record<string, any> = { benchmark: "transform", startedAt: new Date().toISOString(), machine: machineInfo(), parameters: params, sizes: {} };
	try {
		const user = await new Client(server.url).register("bench");
		const rows: (string | number)[][] = [];
		for (const size of params.sizes) results.sizes[sizeName(size)] = { formats: await measureSize({ server, ipx, user, dir, settings }, size, rows) };
		printTable(`w=${OUTPUT_WIDTH} (uncached: ${params.concurrency} concurrent, median of ${params.rounds} rounds; cached: ${params.connections} connections)`, ["source", "format", "server", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "errors"], rows);
	} finally {
		ipx.child.kill("SIGTERM");
		await server.stop();
		rmSync(dir, { recursive: true, force: true });
		rmSync(config.dataDir, { recursive: true, force: true });
	}
	results.finishedAt = new Date().toISOString();
	results.machine.loadAvgAtEnd = machineInfo().loadAvgAtStart;
	console.log(`\nResults: ${saveResults("transform", results)}`);
}

if (process.argv[2] === "--ipx-server") await runIpxServer();
else await main();
