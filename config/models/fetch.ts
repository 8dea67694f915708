/**
 * `npm run model:fetch [resnet18|mobilenetv2 ...]`: downloads the ONNX Model Zoo classifiers
 * that the manifests in this folder describe (ResNet18 v1 and MobileNetV2, fp32, Apache-2.0)
 * and the ImageNet labels, next to the manifests. Each model is checked by loading it and
 * matching it against its manifest before it is moved into place. Model files are never
 * committed (.gitignore); without network access this fails with what to download by hand.
 */
import ort from "onnxruntime-node";
import { createWriteStream, existsSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { checkSessionMetadata, loadManifest } from "../../models/classifier/manifest.ts";

const HERE = fileURLToPath(new URL("./", import.meta.url));
const ZOO = "https://github.com/onnx/models/raw/main/validated/vision/classification";
const TIMEOUT_MS = 120_000;

const MODELS: Record<string, { manifest: string; url: string }> = {
	resnet18: { manifest: "resnet18-v1-7.json", url: `${ZOO}/resnet/model/resnet18-v1-7.onnx` },
	mobilenetv2: { manifest: "mobilenetv2-7.json", url: `${ZOO}/mobilenet/model/mobilenetv2-7.onnx` }
};
const SYNSET_URL = `${ZOO}/synset.txt`;
const LABELS_FILE = join(HERE, "imagenet_classes.txt");

/** Downloads `url` to `path`; on failure says where to put the file by hand (`byHand`). */
async function download(url: string, path: string, byHand = path): Promise<void> {
	const partial = `${path}.part`;
	try {
		const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
		if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
		await pipeline(Readable.fromWeb(res.body), createWriteStream(partial));
		await rename(partial, path);
	} catch (err) {
		await rm(partial, { force: true });
		const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
		throw new Error(`Could not download ${url} (${cause}).\nDownload it by hand to ${byHand} and run this again.`);
	}
}

/** synset.txt lines are "n01440764 tench, Tinca tinca": the labels file keeps the names. */
async function fetchLabels(): Promise<void> {
	if (existsSync(LABELS_FILE)) return;
	const synset = join(HERE, "synset.txt");
	if (!existsSync(synset)) await download(SYNSET_URL, synset);
	const lines = (await readFile(synset, "utf8")).split(/\r?\n/).filter(Boolean);
	if (lines.length !== 1000) throw new Error(`${SYNSET_URL} has ${lines.length} lines, expected 1000`);
	await writeFile(LABELS_FILE, lines.map(line => line.replace(/^n\d{8}\s+/, "")).join("\n") + "\n");
	await rm(synset);
}

async function fetchModel(name: string): Promise<void> {
	const { manifest: manifestFile, url } = MODELS[name]!;
	const manifestPath = join(HERE, manifestFile);
	const manifest = loadManifest(manifestPath);
	// A file already there (e.g. put by hand) is checked like a fresh download.
	const present = existsSync(manifest.file);
	const target = present ? manifest.file : `${manifest.file}.download`;
	if (!present) await download(url, target, manifest.file);
	try {
		const session = await ort.InferenceSession.create(target);
		checkSessionMetadata(manifestPath, manifest, session.inputMetadata, session.outputMetadata);
		await session.release();
	} catch (err) {
		if (!present) await rm(target, { force: true });
		throw err;
	}
	if (!present) await rename(target, manifest.file);
	console.log(`${name}: ${manifest.file} checked; use it with CLASSIFIER_MODEL=${manifestPath}`);
}

async function main(): Promise<void> {
	const wanted = process.argv.slice(2);
	const unknown = wanted.filter(name => !(name in MODELS));
	if (unknown.length) throw new Error(`Unknown model(s): ${unknown.join(", ")} (available: ${Object.keys(MODELS).join(", ")})`);
	// The manifests name the labels file: it must exist before they can be loaded.
	await fetchLabels();
	for (const name of wanted.length ? wanted : Object.keys(MODELS)) await fetchModel(name);
}

main().catch(err => {
	console.error(err instanceof Error ? err.message : err);
	process.exit(1);
});
