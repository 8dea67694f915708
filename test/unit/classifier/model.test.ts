/**
 * The classifier's parts on their own: manifest checks (schema, then against a real session),
 * label rules, preprocessing (orientation, alpha, grey, layouts, channel order) and the session
 * pool's batching, on the real MobileNetV2 and on a tiny generated model with a dynamic batch.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { decodeForModel } from "../../../models/classifier/input.ts";
import { classLabels, friendlyLabel, topLabels } from "../../../models/classifier/labels.ts";
import { loadManifest, type LoadedManifest } from "../../../models/classifier/manifest.ts";
import { ClassifierPool, type PoolOptions } from "../../../models/classifier/pool.ts";
import { channelMeansModel } from "../../helpers/onnx-model.ts";

const MOBILENET = fileURLToPath(new URL("../../../config/models/mobilenet-v2-uint8.json", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "imgmesh-classifier-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const POOL: PoolOptions = { sessions: 1, threads: 1, maxBatch: 4, batchWindowMs: 5 };

function writeManifest(name: string, manifest: object): string {
	const path = join(dir, `${name}.json`);
	writeFileSync(path, JSON.stringify(manifest));
	return path;
}

/** The shipped MobileNetV2 manifest with `change` applied, its paths made absolute. */
function mobilenetWith(name: string, change: (manifest: any) => void): string {
	const manifest = JSON.parse(readFileSync(MOBILENET, "utf8"));
	manifest.file = fileURLToPath(new URL(`../../../config/models/${manifest.file}`, import.meta.url));
	manifest.labels = fileURLToPath(new URL(`../../../config/models/${manifest.labels}`, import.meta.url));
	change(manifest);
	return writeManifest(name, manifest);
}

/** The generated channel-means model (NHWC, 8x8, dynamic batch) with labels red, green, blue. */
function channelMeansManifest(name: string, channels: "RGB" | "BGR"): string {
	writeFileSync(join(dir, "means.onnx"), channelMeansModel(8));
	writeFileSync(join(dir, "colours.txt"), "red\ngreen\nblue\n");
	return writeManifest(name, {
		id: "channel-means",
		file: "means.onnx",
		labels: "colours.txt",
		input: { name: "pixels", type: "float32", layout: "NHWC", size: 8, channels, scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1], resize: "stretch" },
		output: { name: "means", softmax: false }
	});
}

const solid = (r: number, g: number, b: number) => sharp({ create: { width: 40, height: 30, channels: 3, background: { r, g, b } } }).png().toBuffer();

async function withPool<T>(path: string, options: PoolOptions, use: (pool: ClassifierPool, manifest: LoadedManifest) => Promise<T>): Promise<T> {
	const manifest = loadManifest(path);
	const pool = await ClassifierPool.open(path, manifest, options);
	try {
		return await use(pool, manifest);
	} finally {
		await pool.close();
	}
}

describe("classifier manifests", () => {
	const schemaCases: [string, (manifest: any) => void, RegExp][] = [
		["a misspelt layout", m => (m.input.layout = "NHCW"), /input\.layout: must be one of NCHW, NHWC \(got "NHCW"\)/],
		["an unsupported element type", m => (m.input.type = "int8"), /input\.type: must be one of float32, float16 \(got "int8"\)/],
		["an unknown field", m => (m.input.colours = "RGB"), /input: The object 'input' contains forbidden keys: 'colours'/],
		["a missing output name", m => delete m.output.name, /'output\.name' field is required/],
		["a std of zero", m => (m.input.std = [0.2, 0, 0.2]), /'input\.std\[1\]' field must be a positive number/],
		["a mean with two values", m => (m.input.mean = [0.5, 0.5]), /'input\.mean' field must contain 3 items/],
		["a crop smaller than the input", m => (m.input.resizeTo = 200), /input\.resizeTo \(200\) must be at least input\.size \(224\)/],
		["a rename of a class that does not exist", m => (m.labelRules.rename = { "1000": "x" }), /labelRules\.rename: class 1000 does not exist/],
		["a missing labels file", m => (m.labels = join(dir, "none.txt")), /labels: cannot read/]
	];
	for (const [what, change, message] of schemaCases) {
		it(`refuses ${what}, naming the field`, () => {
			const path = mobilenetWith("schema", change);
			assert.throws(() => loadManifest(path), (err: Error) => {
				assert.equal(err.name, "ManifestError");
				assert.ok(err.message.includes(path), "names the manifest");
				assert.match(err.message, message);
				return true;
			});
		});
	}

	const sessionCases: [string, (manifest: any) => void, RegExp][] = [
		["an element type the model does not take", m => (m.input.type = "float16"), /input\.type: the model's input "input" is float32, the manifest says float16/],
		["the wrong layout", m => (m.input.layout = "NHWC"), /input\.layout\/input\.size: the model's input shape is \[1, 3, 224, 224\], which does not fit NHWC/],
		["an output the model does not have", m => (m.output.name = "logits"), /output\.name: the model has no output "logits" \(its outputs: output\)/],
		["labels that do not match the classes", m => (m.labels = join(dir, "colours.txt")), /labels: the model's output "output" has 1000 classes per image, the labels file has 3/]
	];
	for (const [what, change, message] of sessionCases) {
		it(`refuses ${what} when the session loads`, async () => {
			channelMeansManifest("colours", "RGB"); // writes colours.txt
			const path = mobilenetWith("session", change);
			await assert.rejects(ClassifierPool.open(path, loadManifest(path), POOL), message);
		});
	}

	it("resolves paths relative to the manifest", () => {
		const manifest = loadManifest(MOBILENET);
		assert.ok(manifest.file.endsWith("/shared/models/mobilenet_v2_uint8.onnx"), manifest.file);
		assert.equal(manifest.classes.length, 1000);
		assert.equal(manifest.classes[281], "tabby, tabby cat");
	});
});

describe("classifier label rules", () => {
	it("collapses WordNet synonyms into one friendly label", () => {
		assert.equal(friendlyLabel("tabby, tabby cat"), "tabby cat");
		assert.equal(friendlyLabel("mouse, computer mouse"), "computer mouse");
		assert.equal(friendlyLabel("binoculars, field glasses, opera glasses"), "binoculars");
		assert.equal(friendlyLabel("Siamese cat, Siamese"), "Siamese cat");
		assert.equal(friendlyLabel("golden retriever"), "golden retriever");
		assert.equal(friendlyLabel("tabby, tabby cat", "first"), "tabby");
		const labels = classLabels(loadManifest(MOBILENET));
		assert.equal(labels[281], "tabby cat");
		assert.equal(labels[285], "egyptian cat", "stored labels are normalized like user tags");
	});

	it("applies renames after the synonym rule", () => {
		const path = mobilenetWith("rename", m => (m.labelRules.rename = { "296": "polar bear" }));
		const labels = classLabels(loadManifest(path));
		assert.equal(labels[296], "polar bear");
		assert.equal(labels[295], "american black bear");
	});

	it("keeps the top k at or above the floor, ties by lowest class index", () => {
		const labels = ["a", "b", "c", "d", "e"];
		// Saturated logits: b, c and d tie; the order must not depend on the sort.
		const probabilities = [0.1, 0.25, 0.25, 0.25, 0.15];
		assert.deepEqual(topLabels(probabilities, labels, 5, 0.2).map(entry => entry.label), ["b", "c", "d"]);
		assert.deepEqual(topLabels([0.1, 0.25, 0.25, 0.25, 0.15].reverse(), labels, 2, 0.2).map(entry => entry.label), ["b", "c"]);
		assert.deepEqual(topLabels(probabilities, labels, 5, 0.3), []);
	});

	it("merges classes that share a label, summing their scores", () => {
		const result = topLabels([0.15, 0.3, 0.15, 0.4], ["crane", "heron", "crane", "stork"], 5, 0.2);
		assert.deepEqual(result, [
			{ label: "stork", score: 0.4 },
			{ label: "crane", score: 0.3 },
			{ label: "heron", score: 0.3 }
		]);
	});
});

describe("classifier preprocessing", () => {
	const manifest = loadManifest(MOBILENET);
	const pixel = (rgb: Buffer, x: number, y: number) => [...rgb.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3)];

	it("auto-orients from EXIF before cropping", async () => {
		// Stored sideways: left half red, right half blue, with orientation 6 (rotate 90° clockwise).
		const halves = await sharp({ create: { width: 400, height: 300, channels: 3, background: "#ff0000" } })
			.composite([{ input: { create: { width: 200, height: 300, channels: 3, background: "#0000ff" } }, left: 200, top: 0 }])
			.jpeg()
			.withMetadata({ orientation: 6 })
			.toBuffer();
		const rgb = await decodeForModel(halves, manifest, 1e8);
		assert.equal(rgb.length, 224 * 224 * 3);
		// Upright, red is on top and blue below.
		assert.ok(pixel(rgb, 112, 10)[0]! > 200 && pixel(rgb, 112, 10)[2]! < 60, `top: ${pixel(rgb, 112, 10)}`);
		assert.ok(pixel(rgb, 112, 213)[2]! > 200 && pixel(rgb, 112, 213)[0]! < 60, `bottom: ${pixel(rgb, 112, 213)}`);
	});

	it("flattens transparency onto white and turns grey into RGB", async () => {
		const transparent = await sharp({ create: { width: 50, height: 50, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
		assert.deepEqual(pixel(await decodeForModel(transparent, manifest, 1e8), 100, 100), [255, 255, 255]);
		const grey = await sharp({ create: { width: 50, height: 50, channels: 3, background: "#808080" } }).greyscale().png().toBuffer();
		assert.deepEqual(pixel(await decodeForModel(grey, manifest, 1e8), 5, 5), [128, 128, 128]);
	});

	it("refuses an image over the pixel limit with 422", async () => {
		await assert.rejects(decodeForModel(await solid(10, 10, 10), manifest, 100), { code: 422, type: "CORRUPT_IMAGE" });
	});
});

describe("classifier sessions", () => {
	it("runs requests that queue together as one batch on a dynamic-batch model (NHWC)", async () => {
		const path = channelMeansManifest("rgb", "RGB");
		await withPool(path, POOL, async (pool, manifest) => {
			const labels = classLabels(manifest);
			const images = await Promise.all([solid(250, 0, 0), solid(0, 250, 0), solid(0, 0, 250), solid(250, 0, 0)]);
			const decoded = await Promise.all(images.map(image => decodeForModel(image, manifest, 1e8)));
			// Queued in one go: the fourth fills the batch, which then runs without waiting.
			const results = await Promise.all(decoded.map(rgb => pool.classify(rgb)));
			assert.deepEqual(results.map(probabilities => topLabels(probabilities, labels, 1, 0)[0]!.label), ["red", "green", "blue", "red"]);
			assert.deepEqual({ ...pool.stats(), queued: undefined }, { sessions: 1, dynamicBatch: true, runs: 1, images: 4, largestBatch: 4, queued: undefined });
			// A lone request waits out the batch window, then runs alone.
			await pool.classify(decoded[1]!);
			assert.equal(pool.stats().runs, 2);
		});
	});

	it("feeds channels in the manifest's order (BGR)", async () => {
		await withPool(channelMeansManifest("bgr", "BGR"), POOL, async (pool, manifest) => {
			const probabilities = await pool.classify(await decodeForModel(await solid(250, 0, 0), manifest, 1e8));
			// The model's first channel now receives blue: a red image reads as its third class.
			assert.equal(topLabels(probabilities, classLabels(manifest), 1, 0)[0]!.label, "blue");
		});
	});

	it("replaces a session whose thread dies: its batch fails, the next requests run", async () => {
		await withPool(MOBILENET, POOL, async (pool, manifest) => {
			const rgb = await decodeForModel(await solid(90, 120, 200), manifest, 1e8);
			const inFlight = pool.classify(rgb);
			// The thread dies mid-inference (as if the native code crashed).
			const sessions = (pool as unknown as { sessions: { worker: { terminate(): Promise<number> } }[] }).sessions;
			void sessions[0]!.worker.terminate();
			await assert.rejects(inFlight, /The classifier session stopped/);
			const probabilities = await pool.classify(rgb);
			assert.equal(probabilities.length, 1000);
			assert.equal(pool.stats().sessions, 1);
		});
	});

	it("runs a model whose batch is fixed at 1 one image at a time", async () => {
		await withPool(MOBILENET, POOL, async (pool, manifest) => {
			const rgb = await decodeForModel(await solid(90, 120, 200), manifest, 1e8);
			const results = await Promise.all([pool.classify(rgb), pool.classify(rgb), pool.classify(rgb)]);
			assert.equal(results.length, 3);
			for (const probabilities of results) assert.ok(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-3, "softmax applied");
			const stats = pool.stats();
			assert.equal(stats.dynamicBatch, false);
			assert.equal(stats.runs, 3);
			assert.equal(stats.largestBatch, 1);
		});
	});
});
