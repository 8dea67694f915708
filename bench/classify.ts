/**
 * Classifier benchmark (`npm run bench:classify`, i.e. `node bench/classify.ts`), side by side in
 * one run:
 *
 *  a. raw inference, the compute bound: onnxruntime `session.run` on one prepared input tensor,
 *     back to back, in this thread (the baseline), for each shipped ../shared model.
 *  b. full classify of distinct 1125x750 JPEGs (variants of the two shared 1125x750 photos, made
 *     before timing; sharp's cache off): sharp decode + preprocessing + inference in the worker
 *     session, as the classifier service does it. Once one at a time (latency), once with
 *     BENCH_CONCURRENCY in flight (throughput: decoding overlaps inference).
 *     Event-loop lag of this thread is measured during a and b: raw runs stall it, the worker
 *     pool must not. The runs alternate in BENCH_ROUNDS rounds, so this noisy shared machine's
 *     load falls on all of them alike. Goal: full classify >= 0.5x raw inference throughput.
 *  c. the async pipeline end to end (first model) on the local Redis, in a namespace of its own:
 *     a gateway node (api, users, images, categories, storage, health, worker) and 1, then 2
 *     classifier nodes (SERVICES=classifier), started like `npm start`. A broker in this process
 *     hears image.ready. One image at a time, upload start -> ready is compared with the sum of
 *     the steps: the upload's response time, plus the worker's sharp work (renderImage) and a full
 *     classify each measured alone in this process (goal: overhead <= 15 %); then images/s for
 *     BENCH_PIPELINE_IMAGES uploads BENCH_UPLOAD_CONCURRENCY at a time.
 *
 * Prints tables; writes bench/results/classify-<timestamp>.json and classify-latest.json.
 *
 * Environment (defaults in brackets):
 *   BENCH_PARTS [classify,pipeline]  parts to run (classify = a and b, pipeline = c)
 *   BENCH_IMAGES [200]               images per measured run of a and b
 *   BENCH_VARIANTS [40]              distinct JPEGs made (cycled)
 *   BENCH_CONCURRENCY [4]            classifications in flight in b's throughput run
 *   BENCH_THREADS [1]                onnxruntime intra-op threads (0 = its default), everywhere (as CLASSIFIER_THREADS)
 *   BENCH_ROUNDS [5]                 rounds of a and b; each round runs every kind once, in turn
 *   BENCH_PIPELINE_SEQUENTIAL [20]   images sent one at a time in c (latency)
 *   BENCH_PIPELINE_IMAGES [60]       images sent in c's throughput run
 *   BENCH_UPLOAD_CONCURRENCY [4]     uploads in flight in c's throughput run
 *   BENCH_CLASSIFIERS [1,2]          classifier process counts in c, one cluster each
 *   REDIS_URL [redis://127.0.0.1:6379]
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { createHistogram, performance } from "node:perf_hooks";
import { ServiceBroker, type BrokerOptions, type Context } from "moleculer";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { allocateInput, channelMap, decodeForModel, writeInput } from "../models/classifier/input.ts";
import { loadManifest, type LoadedManifest } from "../models/classifier/manifest.ts";
import { ClassifierPool } from "../models/classifier/pool.ts";
import { inputDims, inputTensor, openSession } from "../models/classifier/onnx.ts";
import { renderImage } from "../models/pipeline/renditions.ts";
import { Client } from "../test/helpers/client.ts";
import { startNode, type Node } from "../test/helpers/jobs.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../test/helpers/server.ts";
import { envInt, machineInfo, printTable, round, saveResults, summarize, uploadMultipart, type Summary } from "./lib.ts";

const MODELS = ["mobilenet-v2-uint8.json", "squeezenet-fp16.json"].map(file => fileURLToPath(new URL(`../config/models/${file}`, import.meta.url)));
const PHOTOS = ["mug-cc0.jpeg", "binoculars-cc0.jpeg"];
const MAX_PIXELS = 100_000_000;

const params = {
	images: envInt("BENCH_IMAGES", 200, 10),
	variants: envInt("BENCH_VARIANTS", 40, 1),
	concurrency: envInt("BENCH_CONCURRENCY", 4, 1),
	threads: envInt("BENCH_THREADS", 1, 0),
	rounds: envInt("BENCH_ROUNDS", 5, 1),
	parts: (process.env.BENCH_PARTS ?? "classify,pipeline").split(",").map(part => part.trim()),
	pipelineSequential: envInt("BENCH_PIPELINE_SEQUENTIAL", 20, 1),
	pipelineImages: envInt("BENCH_PIPELINE_IMAGES", 60, 1),
	uploadConcurrency: envInt("BENCH_UPLOAD_CONCURRENCY", 4, 1),
	classifiers: (process.env.BENCH_CLASSIFIERS ?? "1,2").split(",").map(Number).filter(n => Number.isInteger(n) && n > 0)
};
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

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

// ---------------------------------------------------------------------------------------------
// c. The async pipeline end to end, on a local Redis cluster
// ---------------------------------------------------------------------------------------------

/** A broker in this process joined to the cluster: the time each image.ready event arrives, by image id. */
async function readyListener(namespace: string) {
	const readyAt = new Map<string, number>();
	const waiting = new Map<string, () => void>();
	const broker = new ServiceBroker({ nodeID: "bench", namespace, transporter: REDIS_URL as BrokerOptions["transporter"], logger: false });
	broker.createService({
		name: "bench-classify",
		events: {
			"image.ready"(ctx: Context<{ id: string }>) {
				readyAt.set(ctx.params.id, performance.now());
				waiting.get(ctx.params.id)?.();
			}
		}
	});
	await broker.start();
	const ready = (id: string) => (readyAt.has(id) ? Promise.resolve() : new Promise<void>(resolve => waiting.set(id, resolve)));
	return { broker, readyAt, ready };
}

interface PipelineRun {
	classifiers: number;
	/** One image at a time: upload response, and upload start -> image.ready. */
	uploadMs: Summary;
	endToEndMs: Summary;
	/** The same images' steps alone, timed right after each went through. */
	renderMs: Summary;
	classifyMs: Summary;
	/** PIPELINE_IMAGES uploaded BENCH_UPLOAD_CONCURRENCY at a time, first upload -> last image.ready. */
	throughput: { images: number; elapsedS: number; imagesPerS: number };
}

/**
 * One cluster: a gateway node with everything but the classifier (the worker included) and
 * `classifiers` classifier nodes, started like `npm start`, on Redis under a namespace of its own.
 */
async function pipelineRun(manifestPath: string, files: Buffer[], classifiers: number, steps: Awaited<ReturnType<typeof stepTimer>>): Promise<PipelineRun> {
	const namespace = `imgmesh-bench-classify-${randomUUID()}`;
	const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-bench-classify-"));
	const cluster = { TRANSPORTER: REDIS_URL, NAMESPACE: namespace, CLASSIFIER_MODEL: manifestPath, CLASSIFIER_THREADS: String(params.threads), RATE_LIMIT_PER_MINUTE: "0" };
	const listener = await readyListener(namespace);
	const nodes: Node[] = [];
	let gateway: RunningServer | undefined;
	try {
		// One after the other: the first one writes the data directory's generated secrets.
		for (let i = 0; i < classifiers; i++) nodes.push(await startNode(dataDir, { ...cluster, SERVICES: "classifier", NODE_ID: `classifier-${i}` }));
		gateway = await startServer({ ...cluster, SERVICES: "api,users,images,categories,storage,health,worker", NODE_ID: "gateway" }, { dataDir });
		const client = await new Client(gateway.url).register("bench");
		const url = `${gateway.url}/api/images`;
		const upload = async (bytes: Buffer, index: number) => {
			const res = await uploadMultipart(url, {}, { filename: `v${index}.jpg`, contentType: "image/jpeg", source: bytes }, { token: client.token });
			if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(res.body)}`);
			return { id: (res.body as { images: { id: string }[] }).images[0]!.id, ms: res.ms };
		};
		const uploadMs: number[] = [];
		const endToEndMs: number[] = [];
		for (let i = 0; i < params.pipelineSequential; i++) {
			const t0 = performance.now();
			const { id, ms } = await upload(files[i % files.length]!, i);
			await listener.ready(id);
			uploadMs.push(ms);
			endToEndMs.push(listener.readyAt.get(id)! - t0);
			await steps.measure(files[i % files.length]!);
		}
		const started = performance.now();
		const ids: string[] = [];
		let next = 0;
		await Promise.all(
			Array.from({ length: params.uploadConcurrency }, async () => {
				while (next < params.pipelineImages) {
					const index = next++;
					ids.push((await upload(files[index % files.length]!, index)).id);
				}
			})
		);
		await Promise.all(ids.map(id => listener.ready(id)));
		const elapsedS = (Math.max(...ids.map(id => listener.readyAt.get(id)!)) - started) / 1000;
		return {
			classifiers,
			uploadMs: summarize(uploadMs),
			endToEndMs: summarize(endToEndMs),
			...steps.summary(),
			throughput: { images: ids.length, elapsedS: round(elapsedS), imagesPerS: round(ids.length / elapsedS) }
		};
	} finally {
		await gateway?.stop({ keepData: true });
		await Promise.all(nodes.map(node => node.stop()));
		await listener.broker.stop();
		rmSync(dataDir, { recursive: true, force: true });
	}
}

/**
 * The pipeline's steps alone, in this process: the worker's sharp work (renderImage) and a full
 * classify. Timed right after each image went through the pipeline, so both see the same load.
 */
async function stepTimer(manifestPath: string) {
	const manifest = loadManifest(manifestPath);
	const pool = await ClassifierPool.open(manifestPath, manifest, { sessions: 1, threads: params.threads, maxBatch: 8, batchWindowMs: 2 });
	const renderMs: number[] = [];
	const classifyMs: number[] = [];
	const time = async (into: number[] | null, work: () => Promise<unknown>) => {
		const t0 = performance.now();
		await work();
		into?.push(performance.now() - t0);
	};
	return {
		/** Times both steps on `file`; `record` false for warm-up. */
		async measure(file: Buffer, record = true) {
			await time(record ? renderMs : null, () => renderImage(file, { maxInputPixels: MAX_PIXELS }));
			await time(record ? classifyMs : null, async () => pool.classify(await decodeForModel(file, manifest, MAX_PIXELS)));
		},
		summary: () => ({ renderMs: summarize(renderMs), classifyMs: summarize(classifyMs) }),
		close: () => pool.close()
	};
}

async function main(): Promise<void> {
	sharp.cache(false);
	const startedAt = new Date();
	console.log(`Preparing ${params.variants} distinct 1125x750 JPEGs...`);
	const variants = await makeVariants(params.variants);
	const results: Record<string, unknown> = { benchmark: "classify", startedAt: startedAt.toISOString(), machine: machineInfo(), parameters: params };
	if (params.parts.includes("classify")) results.models = await classifyParts(variants);
	if (params.parts.includes("pipeline")) results.pipeline = await pipelinePart(variants);
	const path = saveResults("classify", results);
	console.log(`\nSaved ${path}`);
}

/** Parts a and b for every model. */
async function classifyParts(variants: Buffer[]) {
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
	return models;
}

/** Part c with the first model: the pipeline with 1 and 2 classifier processes, next to its steps alone. */
async function pipelinePart(variants: Buffer[]) {
	const manifestPath = MODELS[0]!;
	const runs: PipelineRun[] = [];
	for (const classifiers of params.classifiers) {
		console.log(`Pipeline with ${classifiers} classifier process(es)...`);
		const steps = await stepTimer(manifestPath);
		try {
			for (const file of variants.slice(0, 3)) await steps.measure(file, false); // warm-up
			runs.push(await pipelineRun(manifestPath, variants, classifiers, steps));
		} finally {
			await steps.close();
		}
	}
	const withOverhead = runs.map(run => {
		const sumOfSteps = run.uploadMs.p50 + run.renderMs.p50 + run.classifyMs.p50;
		return { ...run, sumOfStepsP50Ms: round(sumOfSteps), overhead: round(run.endToEndMs.p50 / sumOfSteps - 1, 3) };
	});
	printTable(
		`Pipeline end to end (${params.pipelineSequential} images one at a time): upload -> image.ready vs the sum of its steps (p50)`,
		["classifier processes", "upload ms", "render ms (alone)", "classify ms (alone)", "sum ms", "end to end ms", "overhead", "goal <= 15%"],
		withOverhead.map(run => [
			run.classifiers,
			run.uploadMs.p50,
			run.renderMs.p50,
			run.classifyMs.p50,
			run.sumOfStepsP50Ms,
			run.endToEndMs.p50,
			`${round(run.overhead * 100, 1)} %`,
			run.overhead <= 0.15 ? "yes" : "NO"
		])
	);
	printTable(
		`Pipeline throughput: ${params.pipelineImages} images, ${params.uploadConcurrency} uploads in flight, first upload -> last image.ready`,
		["classifier processes", "elapsed s", "images/s"],
		runs.map(run => [run.classifiers, run.throughput.elapsedS, run.throughput.imagesPerS])
	);
	return { model: loadManifest(manifestPath).id, runs: withOverhead };
}

main().catch(err => {
	console.error(err);
	process.exit(1);
});
