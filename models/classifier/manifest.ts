/**
 * Classifier model manifests: a JSON file that says how to feed one ONNX image classifier and
 * how to read its answer, so the classifier code stays model-agnostic. Checked twice at start:
 * against its schema (loadManifest), then against the loaded session's real input and output
 * metadata (checkSessionMetadata). Every error names the manifest and the offending field.
 *
 * File paths in a manifest are relative to the manifest itself.
 */
import { Validators } from "moleculer";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

export type ElementType = "float32" | "float16";
export type Layout = "NCHW" | "NHWC";
export type ChannelOrder = "RGB" | "BGR";
/** "crop": scale the shorter side to `resizeTo`, then cut the centre `size` square (torchvision's eval transform). "stretch": scale to `size` x `size`, ignoring the aspect ratio. */
export type ResizePolicy = "crop" | "stretch";

export interface ModelManifest {
	/** Model id stored with every automatic tag. */
	id: string;
	description?: string;
	/** Absolute path of the .onnx file. */
	file: string;
	/** Absolute path of the labels file: one label per line (.txt), or a JSON array or {"0": …} object. */
	labels: string;
	input: {
		name: string;
		type: ElementType;
		layout: Layout;
		/** Side of the square input image in pixels. */
		size: number;
		channels: ChannelOrder;
		/** Pixel values (0-255) are multiplied by this, then `(v - mean[c]) / std[c]`. */
		scale: number;
		/** Per channel, in the model's channel order. */
		mean: [number, number, number];
		std: [number, number, number];
		resize: ResizePolicy;
		/** Shorter side before the centre crop (policy "crop"); defaults to `size`. */
		resizeTo?: number;
	};
	output: {
		name: string;
		/** True when the model's output already is a probability distribution. */
		softmax: boolean;
	};
	labelRules?: {
		/**
		 * How a WordNet synonym list ("tabby, tabby cat") becomes one label: "first" takes the
		 * first name; "specific" (the default) takes the first later name that contains the first
		 * as a whole word, when there is one ("tabby cat", "computer mouse"), else the first.
		 */
		synonyms?: "first" | "specific";
		/** Replacement labels by class index, applied after the synonym rule. */
		rename?: Record<string, string>;
	};
}

/** The loaded manifest plus its label list (one per class, in class order). */
export interface LoadedManifest extends ModelManifest {
	classes: string[];
}

/** What onnxruntime reports about a session's inputs and outputs (InferenceSession.ValueMetadata). */
export interface ValueInfo {
	name: string;
	isTensor: boolean;
	type?: string;
	shape?: readonly (number | string)[];
}

export class ManifestError extends Error {
	constructor(path: string, problems: string[]) {
		super(`Classifier model manifest ${path} is invalid:\n  - ${problems.join("\n  - ")}`);
		this.name = "ManifestError";
	}
}

const TRIPLE = { type: "array", items: "number", length: 3 };
const SCHEMA = {
	$$strict: true,
	id: { type: "string", pattern: /^[A-Za-z0-9._-]{1,64}$/ },
	description: { type: "string", max: 500, optional: true },
	file: { type: "string", min: 1 },
	labels: { type: "string", min: 1 },
	input: {
		type: "object",
		strict: true,
		props: {
			name: { type: "string", min: 1 },
			type: { type: "enum", values: ["float32", "float16"] },
			layout: { type: "enum", values: ["NCHW", "NHWC"] },
			size: { type: "number", integer: true, min: 8, max: 4096 },
			channels: { type: "enum", values: ["RGB", "BGR"] },
			scale: { type: "number", positive: true },
			mean: TRIPLE,
			std: { ...TRIPLE, items: { type: "number", positive: true } },
			resize: { type: "enum", values: ["crop", "stretch"] },
			resizeTo: { type: "number", integer: true, min: 8, max: 8192, optional: true }
		}
	},
	output: {
		type: "object",
		strict: true,
		props: { name: { type: "string", min: 1 }, softmax: "boolean" }
	},
	labelRules: {
		type: "object",
		strict: true,
		optional: true,
		props: {
			synonyms: { type: "enum", values: ["first", "specific"], optional: true },
			rename: { type: "record", key: { type: "string", numeric: true }, value: { type: "string", min: 1, max: 50 }, optional: true }
		}
	}
};

interface SchemaProblem {
	type: string;
	field?: string;
	message?: string;
	expected?: unknown;
	actual?: unknown;
}

const check = new Validators.Fastest().compile(SCHEMA) as (value: unknown) => true | SchemaProblem[];

/** fastest-validator's message, led by the field; its enum message would print the allowed values as the value. */
function describeProblem(problem: SchemaProblem): string {
	const field = problem.field ?? "(manifest)";
	const got = problem.actual === undefined ? "" : ` (got ${JSON.stringify(problem.actual)})`;
	if (problem.type === "enumValue") return `${field}: must be one of ${problem.expected}${got}`;
	return `${field}: ${problem.message}${got}`;
}

function readJson(path: string): unknown {
	let text: string;
	try {
		text = readFileSync(path, "utf8");
	} catch (err) {
		throw new ManifestError(path, [`cannot read the file: ${(err as Error).message}`]);
	}
	try {
		return JSON.parse(text);
	} catch (err) {
		throw new ManifestError(path, [`not valid JSON: ${(err as Error).message}`]);
	}
}

/** Class labels from a .txt file (one per line) or a JSON array / {"0": …, "1": …} object. */
function readLabels(manifestPath: string, path: string): string[] {
	let text: string;
	try {
		text = readFileSync(path, "utf8");
	} catch (err) {
		throw new ManifestError(manifestPath, [`labels: cannot read ${path}: ${(err as Error).message}`]);
	}
	if (!path.endsWith(".json")) return text.split(/\r?\n/).filter(line => line.trim() !== "");
	const parsed = JSON.parse(text) as unknown;
	const values = Array.isArray(parsed) ? parsed : Object.entries(parsed as Record<string, unknown>).sort(([a], [b]) => Number(a) - Number(b)).map(([, v]) => v);
	if (!values.every(value => typeof value === "string" && value.trim() !== "")) {
		throw new ManifestError(manifestPath, [`labels: ${path} must hold only non-empty strings`]);
	}
	return values as string[];
}

/** Reads and checks a manifest; resolves its file paths; reads its labels. */
export function loadManifest(path: string): LoadedManifest {
	const raw = readJson(path);
	const result = check(raw);
	if (result !== true) {
		const problems = result.map(describeProblem);
		throw new ManifestError(path, problems);
	}
	const manifest = raw as ModelManifest;
	const problems: string[] = [];
	const { input } = manifest;
	if (input.resize === "crop" && input.resizeTo !== undefined && input.resizeTo < input.size) {
		problems.push(`input.resizeTo (${input.resizeTo}) must be at least input.size (${input.size})`);
	}
	if (problems.length) throw new ManifestError(path, problems);
	const base = dirname(path);
	const file = resolve(base, manifest.file);
	const labels = resolve(base, manifest.labels);
	const classes = readLabels(path, labels);
	for (const index of Object.keys(manifest.labelRules?.rename ?? {})) {
		if (Number(index) >= classes.length) problems.push(`labelRules.rename: class ${index} does not exist (the labels file has ${classes.length})`);
	}
	if (problems.length) throw new ManifestError(path, problems);
	return { ...manifest, file, labels, classes };
}

/** The expected input shape, batch first; null where the model may choose (dynamic dims). */
function expectedInputShape(manifest: ModelManifest): number[] {
	const { size, layout } = manifest.input;
	return layout === "NCHW" ? [3, size, size] : [size, size, 3];
}

const isFixed = (dim: number | string | undefined): dim is number => typeof dim === "number" && dim > 0;

export interface SessionFacts {
	/** True when the batch dimension is dynamic, so several images can run in one call. */
	dynamicBatch: boolean;
}

/**
 * Checks the manifest against the session's real metadata: the input and output exist, their
 * element types match, the input shape fits the layout and size, and the output has one value
 * per label. Throws a ManifestError listing every mismatch.
 */
export function checkSessionMetadata(path: string, manifest: LoadedManifest, inputs: readonly ValueInfo[], outputs: readonly ValueInfo[]): SessionFacts {
	const problems: string[] = [];
	const input = inputs.find(info => info.name === manifest.input.name);
	const output = outputs.find(info => info.name === manifest.output.name);
	if (!input) problems.push(`input.name: the model has no input "${manifest.input.name}" (its inputs: ${inputs.map(info => info.name).join(", ")})`);
	if (!output) problems.push(`output.name: the model has no output "${manifest.output.name}" (its outputs: ${outputs.map(info => info.name).join(", ")})`);
	let dynamicBatch = false;
	if (input) {
		if (input.type !== manifest.input.type) problems.push(`input.type: the model's input "${input.name}" is ${input.type}, the manifest says ${manifest.input.type}`);
		const shape = input.shape ?? [];
		const expected = expectedInputShape(manifest);
		const fits = shape.length === 4 && expected.every((dim, i) => !isFixed(shape[i + 1]) || shape[i + 1] === dim);
		if (!fits) {
			problems.push(
				`input.layout/input.size: the model's input shape is [${shape.join(", ")}], which does not fit ${manifest.input.layout} at ${manifest.input.size}x${manifest.input.size} ([N, ${expected.join(", ")}])`
			);
		}
		dynamicBatch = !isFixed(shape[0]);
	}
	if (output) {
		if (output.type !== "float32" && output.type !== "float16") problems.push(`output.name: the model's output "${output.name}" is ${output.type}, not float32 or float16`);
		const perImage = (output.shape ?? []).slice(1);
		const values = perImage.every(isFixed) ? perImage.reduce((a, b) => a * b, 1) : null;
		if (values !== null && values !== manifest.classes.length) {
			problems.push(`labels: the model's output "${output.name}" has ${values} classes per image, the labels file has ${manifest.classes.length}`);
		}
	}
	if (problems.length) throw new ManifestError(path, problems);
	return { dynamicBatch };
}
