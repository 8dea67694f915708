/**
 * Classifier benchmark (`npm run bench:classify`, i.e. `node bench/classify.ts`), for each shipped
 * ../shared model, side by side in one run:
 *
 *  a. raw inference, the compute bound: onnxruntime `session.run` on one prepared input tensor,
 *     back to back, in this thread (the baseline).
 *  b. full classify of distinct 1125x750 JPEGs (variants of the two shared 1125x750 photos, made
 *     before timing; sharp's cache off): sharp decode + preprocessing + inference in the worker
 *     session, as the classifier service does it. Once one at a time (latency), once with
 *     BENCH_CONCURRENCY in flight (throughput: decoding overlaps inference).
 *  Event-loop delay of this thread is measured during a and b: raw runs stall it, the worker
 *  pool must not. The runs alternate in BENCH_ROUNDS rounds, so this noisy shared machine's load
 *  falls on all of them alike.
 *
 * Goal: full classify throughput >= 0.5x raw inference (preprocessing costs no more than
 * inference). Prints a table; writes bench/results/classify-<timestamp>.json and classify-latest.json.
 *
 * Environment (defaults in brackets):
 *   BENCH_IMAGES [200]        images per measured run
 *   BENCH_VARIANTS [40]       distinct JPEGs made for part b (cycled)
 *   BENCH_CONCURRENCY [4]     classifications in flight in part b's throughput run
 *   BENCH_THREADS [0]         onnxruntime intra-op threads (0 = its default), for a and b alike
 *   BENCH_ROUNDS [5]          rounds; each round runs every kind of run once, in turn
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createHistogram, performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { allocateInput, channelMap, decodeForModel, writeInput } from "../models/classifier-input.ts";
import { loadManifest, type LoadedManifest } from "../models/classifier-manifest.ts";
import { ClassifierPool } from "../models/classifier-pool.ts";
import { inputDims, inputTensor, openSession } from "../models/classifier-onnx.ts";
import { SHARED_IMAGES } from "../test/helpers/server.ts";
import { envInt, machineInfo, printTable, round, saveResults, summarize, type Summary } from "./lib.ts";

const MODELS = ["mobilenet-v2-uint8.json", "squeezenet-fp16.json"].map(file => fileURLToPath(new URL(`../config/models/${file}`, import.meta.url)));
const PHOTOS = ["mug-cc0.jpeg", "binoculars-cc0.jpeg"];
const MAX_PIXELS = 100_000_000;

const params = {
	images: envInt("BENCH_IMAGES", 200, 10),
	variants: envInt("BENCH_VARIANTS", 40, 1),
	concurrency: envInt("BENCH_CONCURRENCY", 4, 1),
	threads: envInt("BENCH_THREADS", 0, 0),
	rounds: envInt("BENCH_ROUNDS", 5, 1)
};

interface RunResult {
	latencyMs: Summary;
	imagesPerS: number;
	/** Event-loop delay of this thread during the run, ms. */
	loopDelayMs: { p50: number; p99: number; max: number };
}

/**
 * One kind of run, measured over several rounds: the rounds of all kinds alternate, so the
 * noise of this shared machine falls on each of them alike.
 */
class Recorder {
	private readonly latencies: number[] = [];
	/** Event-loop delay over all rounds, µs: how late a 1 ms timer fires (monitorEventLoopDelay, re-enabled, would count the pauses between rounds). */
	private readonly loop = createHistogram();
	private count = 0;
	private elapsedMs = 0;
	private readonly concurrency: number;
	private readonly one: (index: number) => Promise<unknown>;

	constructor(concurrency: number, one: (index: number) => Promise<unknown>) {
		this.concurrency = concurrency;
		this.one = one;
	}

	/** `count` calls with `concurrency` in flight. */
	async round(count: number): Promise<void> {
		let next = 0;
		let last = performance.now();
		const lag = setInterval(() => {
			const now = performance.now();
			this.loop.record(Math.max(1, Math.round((now - last - 1) * 1000)));
			last = now;
		}, 1);
		const started = performance.now();
		await Promise.all(
			Array.from({ length: this.concurrency }, async () => {
				while (next < count) {
					const index = this.count + next++;
					const t0 = performance.now();
					await this.one(index);
					this.latencies.push(performance.now() - t0);
				}
			})
		);
		this.elapsedMs += performance.now() - started;
		clearInterval(lag);
		this.count += count;
	}

	result(): RunResult {
		const ms = (us: number) => round(us / 1000);
		return {
			latencyMs: summarize(this.latencies),
			imagesPerS: round(this.count / (this.elapsedMs / 1000)),
			loopDelayMs: { p50: ms(this.loop.percentile(50)), p99: ms(this.loop.percentile(99)), max: ms(this.loop.max) }
		};
	}
}

/** Distinct 1125x750 JPEGs: crops, flips and tints of the shared photos, re-encoded. */
async function makeVariants(count: number): Promise<Buffer[]> {
	const sources = PHOTOS.map(name => readFileSync(join(SHARED_IMAGES, name)));
	return Promise.all(
		Array.from({ length: count }, async (_, i) => {
			const source = sharp(sources[i % sources.length]!);
			const zoom = 1.02 + (i % 5) * 0.05;
			const resized = source.resize(Math.round(1125 * zoom), Math.round(750 * zoom)).extract({ left: i % 7, top: i % 5, width: 1125, height: 750 });
			const varied = i % 2 ? resized.flop() : resized;
			return varied.modulate({ brightness: 0.9 + (i % 4) * 0.05 }).jpeg({ quality: 80 + (i % 3) * 5 }).toBuffer();
		})
	);
}

/** Part a's baseline: session.run on one prepared tensor, in this thread. */
async function rawRun(manifest: LoadedManifest, sample: Buffer): Promise<{ run: () => Promise<unknown>; release: () => Promise<void> }> {
	const session = await openSession(manifest, params.threads);
	const data = allocateInput(manifest, 1);
	writeInput(await decodeForModel(sample, manifest, MAX_PIXELS), data, 0, manifest, channelMap(manifest));
	const feeds = { [manifest.input.name]: inputTensor(data, inputDims(manifest, 1)) };
	return { run: () => session.run(feeds), release: () => session.release() };
}

async function benchModel(manifestPath: string, variants: Buffer[]) {
	const manifest = loadManifest(manifestPath);
	const raw = await rawRun(manifest, variants[0]!);
	const pool = await ClassifierPool.open(manifestPath, manifest, { sessions: 1, threads: params.threads, maxBatch: 8, batchWindowMs: 2 });
	try {
		const decode = (index: number) => decodeForModel(variants[index % variants.length]!, manifest, MAX_PIXELS);
		const classify = (index: number) => decode(index).then(rgb => pool.classify(rgb));
		const runs = {
			raw: new Recorder(1, raw.run),
			sequential: new Recorder(1, classify),
			concurrent: new Recorder(params.concurrency, classify),
			decodeOnly: new Recorder(params.concurrency, decode)
		};
		for (let i = 0; i < 10; i++) await Promise.all([raw.run(), classify(i)]); // warm-up
		const perRound = Math.ceil(params.images / params.rounds);
		for (let round = 0; round < params.rounds; round++) {
			for (const recorder of Object.values(runs)) await recorder.round(perRound);
		}
		const [a, b1, b4, decodeOnly] = Object.values(runs).map(recorder => recorder.result()) as [RunResult, RunResult, RunResult, RunResult];
		return { model: manifest.id, raw: a, sequential: b1, concurrent: b4, decodeOnly, ratio: round(b4.imagesPerS / a.imagesPerS) };
	} finally {
		await pool.close();
		await raw.release();
	}
}

async function main(): Promise<void> {
	sharp.cache(false);
	const startedAt = new Date();
	console.log(`Preparing ${params.variants} distinct 1125x750 JPEGs...`);
	const variants = await makeVariants(params.variants);
	const models = [];
	for (const path of MODELS) {
		console.log(`Benchmarking ${path}...`);
		models.push(await benchModel(path, variants));
	}
	const rows = models.flatMap(m => {
		const row = (what: string, r: RunResult) => [m.model, what, r.latencyMs.p50, r.latencyMs.p99, r.imagesPerS, r.loopDelayMs.p99, r.loopDelayMs.max];
		return [
			row("a. raw session.run (this thread)", m.raw),
			row("b. full classify, 1 at a time", m.sequential),
			row(`b. full classify, ${params.concurrency} in flight`, m.concurrent),
			row(`   decode + preprocess only, ${params.concurrency} in flight`, m.decodeOnly)
		];
	});
	printTable("Classifier: raw inference vs full classify of 1125x750 JPEGs", ["model", "run", "p50 ms", "p99 ms", "images/s", "loop delay p99 ms", "loop delay max ms"], rows);
	printTable(
		"Goal: full classify throughput >= 0.5x raw inference",
		["model", "raw images/s", "full images/s", "ratio", "goal met"],
		models.map(m => [m.model, m.raw.imagesPerS, m.concurrent.imagesPerS, m.ratio, m.ratio >= 0.5 ? "yes" : "NO"])
	);
	const path = saveResults("classify", { benchmark: "classify", startedAt: startedAt.toISOString(), machine: machineInfo(), parameters: params, models });
	console.log(`\nSaved ${path}`);
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
