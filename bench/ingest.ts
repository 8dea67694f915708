/**
 * Ingest pipeline benchmark (`node bench/ingest.ts`): images per second from upload to `ready`
 * for N real-size JPEGs, with 1 and with 2 worker processes, next to the compute bound measured
 * in the same run.
 *
 *  - compute bound: models/pipeline/renditions.ts renderImage (metadata + auto-orient + 240/720 WebP, the
 *    worker's whole sharp work) over the same files in a plain loop in this process, with as many
 *    in flight as one worker takes (WORKER_MAX_IN_FLIGHT, 2). No HTTP, storage, queue or database.
 *  - pipeline: a distributed cluster on the local Redis with a namespace of its own: one gateway
 *    node (api, images, users, categories, storage, health) and W worker nodes (SERVICES=worker),
 *    started like `npm start`. The files are uploaded C at a time over REST; the clock stops at
 *    the last `image.ready` event, which a broker in this process hears.
 *
 * The JPEGs are 1600x1067 grainy versions of the shared photos (see makeJpegs), each distinct,
 * written to a temp dir before timing. Everything shares the machine's cores: with 2 cores, two workers also
 * compete with the gateway and the uploader. Prints a table and writes bench/results/ingest-*.json.
 *
 * Environment (defaults in brackets); a quick check: BENCH_IMAGES=100
 *   BENCH_IMAGES [1000]             JPEGs uploaded per run
 *   BENCH_WORKERS [1,2]             worker process counts to run, one cluster each
 *   BENCH_UPLOAD_CONCURRENCY [4]    concurrent uploads
 *   BENCH_MAX_MINUTES [30]          hard limit on the whole run
 *   REDIS_URL [redis://127.0.0.1:6379]
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { randomUUID } from "node:crypto";
import { ServiceBroker, type BrokerOptions, type Context } from "moleculer";
import sharp from "sharp";
import { renderImage } from "../models/pipeline/renditions.ts";
import { Client } from "../test/helpers/client.ts";
import { startNode, type Node } from "../test/helpers/jobs.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../test/helpers/server.ts";
import { envInt, machineInfo, printTable, round, runUploads, saveResults, type MultipartFile } from "./lib.ts";

const WIDTH = 1600;
const HEIGHT = 1067;
/** What one worker takes at once (the WORKER_MAX_IN_FLIGHT default), also the compute bound's concurrency. */
const IN_FLIGHT = 2;
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

const params = {
	images: envInt("BENCH_IMAGES", 1000, 1),
	workers: (process.env.BENCH_WORKERS ?? "1,2").split(",").map(Number).filter(n => Number.isInteger(n) && n > 0),
	uploadConcurrency: envInt("BENCH_UPLOAD_CONCURRENCY", 4, 1),
	maxMinutes: envInt("BENCH_MAX_MINUTES", 30, 1)
};

interface BenchFile extends MultipartFile {
	path: string;
	bytes: number;
}

/**
 * Distinct 1600x1067 JPEGs at quality 85 (0.4-0.5 MB, like a camera export at that size): the
 * shared JPEG photos scaled to cover a slightly larger frame, with gaussian grain blended in (so
 * they do not compress like upscaled images), each file a different crop offset of one of them.
 */
async function makeJpegs(dir: string, count: number): Promise<BenchFile[]> {
	const margin = 40;
	const frame = { width: WIDTH + margin, height: HEIGHT + margin };
	const grain = await sharp({ create: { ...frame, channels: 3, background: "#808080", noise: { type: "gaussian", mean: 128, sigma: 30 } } })
		.png({ compressionLevel: 0 })
		.toBuffer();
	const photos = readdirSync(SHARED_IMAGES).filter(name => /\.jpe?g$/i.test(name)).sort();
	const bases = await Promise.all(
		photos.map(name =>
			sharp(join(SHARED_IMAGES, name))
				.resize(frame.width, frame.height, { fit: "cover" })
				.composite([{ input: grain, blend: "soft-light" }])
				.raw()
				.toBuffer({ resolveWithObject: true })
		)
	);
	const files: BenchFile[] = [];
	for (let index = 0; index < count; index++) {
		const base = bases[index % bases.length]!;
		const step = Math.floor(index / bases.length);
		const data = await sharp(base.data, { raw: base.info })
			.extract({ left: step % margin, top: Math.floor(step / margin) % margin, width: WIDTH, height: HEIGHT })
			.jpeg({ quality: 85 })
			.toBuffer();
		const filename = `ingest-${String(index).padStart(4, "0")}.jpg`;
		const path = join(dir, filename);
		writeFileSync(path, data);
		files.push({ filename, contentType: "image/jpeg", source: { path, size: data.length }, path, bytes: data.length });
	}
	return files;
}

/** The worker's sharp work over every file, IN_FLIGHT at a time, in this process. */
async function computeBound(files: BenchFile[]): Promise<{ elapsedS: number; imagesPerS: number }> {
	let next = 0;
	const started = performance.now();
	const lane = async () => {
		while (next < files.length) {
			const file = files[next++]!;
			await renderImage(readFileSync(file.path), { maxInputPixels: 100_000_000 });
		}
	};
	await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
	const elapsedS = (performance.now() - started) / 1000;
	return { elapsedS: round(elapsedS), imagesPerS: round(files.length / elapsedS) };
}

interface PipelineRun {
	workers: number;
	uploadS: number;
	elapsedS: number;
	imagesPerS: number;
	ready: number;
	failed: number;
	uploadErrors: number;
}

/** Counts image.ready / image.failed events of a cluster; resolves `done` when `expected` images settled. */
function listener(namespace: string, expected: number) {
	let ready = 0;
	let failed = 0;
	let lastAt = 0;
	let resolveDone: () => void = () => undefined;
	const done = new Promise<void>(resolve => (resolveDone = resolve));
	const settle = () => {
		lastAt = performance.now();
		if (ready + failed === expected) resolveDone();
	};
	const broker = new ServiceBroker({ nodeID: "bench", namespace, transporter: REDIS_URL as BrokerOptions["transporter"], logger: false });
	broker.createService({
		name: "bench-ingest",
		events: {
			"image.ready"(_ctx: Context) {
				ready++;
				settle();
			},
			"image.failed"(_ctx: Context) {
				failed++;
				settle();
			}
		}
	});
	return { broker, done, counts: () => ({ ready, failed, lastAt }) };
}

async function pipelineRun(files: BenchFile[], workers: number): Promise<PipelineRun> {
	const namespace = `imgmesh-bench-${randomUUID()}`;
	const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-ingest-"));
	const cluster = { TRANSPORTER: REDIS_URL, NAMESPACE: namespace, LOG_LEVEL: "warn", RATE_LIMIT_PER_MINUTE: "0" };
	const events = listener(namespace, files.length);
	let gateway: RunningServer | undefined;
	const nodes: Node[] = [];
	try {
		await events.broker.start();
		gateway = await startServer({ ...cluster, SERVICES: "api,images,users,categories,storage,health", NODE_ID: "gateway" }, { dataDir });
		for (let i = 0; i < workers; i++) nodes.push(await startNode(dataDir, { ...cluster, LOG_LEVEL: "info", SERVICES: "worker", NODE_ID: `worker-${i}` }));
		await events.broker.waitForServices(["images"]);
		const uploader = await new Client(gateway.url).register("bench");
		const started = performance.now();
		const uploads = await runUploads({
			url: `${gateway.url}/api/images`,
			token: uploader.token,
			fields: {},
			files,
			concurrency: params.uploadConcurrency,
			maxMs: params.maxMinutes * 60_000
		});
		const uploadS = (performance.now() - started) / 1000;
		if (uploads.errors) console.error(`upload errors: ${uploads.errorSamples.join("; ")}`);
		if (uploads.ok === files.length) await events.done;
		const { ready, failed, lastAt } = events.counts();
		const elapsedS = (lastAt - started) / 1000;
		return { workers, uploadS: round(uploadS), elapsedS: round(elapsedS), imagesPerS: round(ready / elapsedS), ready, failed, uploadErrors: uploads.errors };
	} finally {
		await Promise.all(nodes.map(node => node.stop()));
		await gateway?.stop();
		await events.broker.stop();
		rmSync(dataDir, { recursive: true, force: true });
	}
}

async function main(): Promise<void> {
	const timer = setTimeout(() => {
		console.error(`bench:ingest exceeded BENCH_MAX_MINUTES=${params.maxMinutes}`);
		process.exit(1);
	}, params.maxMinutes * 60_000);
	timer.unref();
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-ingest-files-"));
	try {
		console.log(`making ${params.images} ${WIDTH}x${HEIGHT} JPEGs ...`);
		const files = await makeJpegs(dir, params.images);
		const meanBytes = Math.round(files.reduce((sum, file) => sum + file.bytes, 0) / files.length);
		console.log("compute bound (renderImage in a loop) ...");
		const bound = await computeBound(files);
		const runs: PipelineRun[] = [];
		for (const workers of params.workers) {
			console.log(`pipeline with ${workers} worker process(es) ...`);
			runs.push(await pipelineRun(files, workers));
		}
		const rows: (string | number)[][] = [
			["compute bound (plain loop)", "-", "-", bound.elapsedS, bound.imagesPerS, 1],
			...runs.map(run => [`pipeline, ${run.workers} worker process(es)`, run.uploadS, `${run.ready}/${run.failed}`, run.elapsedS, run.imagesPerS, round(run.imagesPerS / bound.imagesPerS)])
		];
		printTable(`Ingest: ${params.images} JPEGs ${WIDTH}x${HEIGHT} (mean ${Math.round(meanBytes / 1000)} kB), upload -> ready`, ["run", "uploads done s", "ready/failed", "elapsed s", "images/s", "x bound"], rows);
		const path = saveResults("ingest", { params: { ...params, width: WIDTH, height: HEIGHT, inFlight: IN_FLIGHT, meanBytes }, machine: machineInfo(), computeBound: bound, runs });
		console.log(`\nsaved ${path}`);
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
}

await main();
