/**
 * One inference session in a worker thread. onnxruntime-node's `session.run` computes on the
 * calling thread (measured: the event loop stalls for the whole inference, 5-25 ms per image),
 * so sessions live here and the service's event loop only ever waits on messages.
 *
 * Protocol (see pool.ts): the worker answers its start with `ready` (or `failed`,
 * e.g. a manifest that does not fit the model), then each batch of decoded images with `result` (one probability vector per image) or `error`.
 */
import type ort from "onnxruntime-node";
import { parentPort, workerData } from "node:worker_threads";
import { checkSessionMetadata, type LoadedManifest } from "./manifest.ts";
import { allocateInput, channelMap, writeInput } from "./input.ts";
import { inputDims, inputTensor, openSession } from "./onnx.ts";
import { softmax } from "./labels.ts";

export interface WorkerOptions {
	manifestPath: string;
	manifest: LoadedManifest;
	threads: number;
}

/** Decoded images to classify together, one batch. */
export type WorkerRequest = { images: Uint8Array[] };
export type WorkerReply =
	| { type: "ready"; dynamicBatch: boolean }
	| { type: "failed"; message: string }
	| { type: "result"; probabilities: Float32Array[] }
	| { type: "error"; message: string };

/** One image's probabilities out of a batch output, as float32 (softmax applied if the model does not). */
function probabilitiesOf(output: ort.Tensor, index: number, classes: number, softmaxApplied: boolean): Float32Array {
	const data = output.data as Float32Array | Float16Array;
	const values = Float32Array.from(data.subarray(index * classes, (index + 1) * classes));
	return softmaxApplied ? values : softmax(values);
}

async function main(): Promise<void> {
	const port = parentPort!;
	const { manifestPath, manifest, threads } = workerData as WorkerOptions;
	const reply = (message: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);
	let session: ort.InferenceSession;
	let dynamicBatch: boolean;
	try {
		session = await openSession(manifest, threads);
		({ dynamicBatch } = checkSessionMetadata(manifestPath, manifest, session.inputMetadata, session.outputMetadata));
	} catch (err) {
		reply({ type: "failed", message: (err as Error).message });
		return;
	}
	const map = channelMap(manifest);
	const classes = manifest.classes.length;
	port.on("message", async (request: WorkerRequest) => {
		try {
			const batch = request.images.length;
			const data = allocateInput(manifest, batch);
			request.images.forEach((rgb, index) => writeInput(rgb, data, index, manifest, map));
			const outputs = await session.run({ [manifest.input.name]: inputTensor(data, inputDims(manifest, batch)) }, [manifest.output.name]);
			const output = outputs[manifest.output.name]!;
			const probabilities = request.images.map((_, index) => probabilitiesOf(output, index, classes, manifest.output.softmax));
			reply({ type: "result", probabilities }, probabilities.map(p => p.buffer as ArrayBuffer));
		} catch (err) {
			reply({ type: "error", message: (err as Error).message });
		}
	});
	reply({ type: "ready", dynamicBatch });
}

void main();
