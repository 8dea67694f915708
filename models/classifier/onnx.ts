/** onnxruntime-node sessions and input tensors, shared by the worker sessions and the benchmark. */
import ort from "onnxruntime-node";
import type { InputArray } from "./input.ts";
import type { LoadedManifest } from "./manifest.ts";

/**
 * A tensor of the input's element type. float16 works around onnxruntime-node 1.30 on Node >= 23:
 * onnxruntime-common turns float16 data into a Float16Array, whose byte length the native binding
 * reads as 0 ("not enough space", microsoft/onnxruntime#32323); the binding accepts a Uint16Array
 * view of the same bytes.
 */
export function inputTensor(data: InputArray, dims: number[]): ort.Tensor {
	if (data instanceof Float32Array) return new ort.Tensor("float32", data, dims);
	const bits = new Uint16Array(data.buffer, data.byteOffset, data.length);
	const tensor = new ort.Tensor("float16", bits, dims);
	(tensor as unknown as { cpuData: Uint16Array }).cpuData = bits;
	return tensor;
}

/** The input shape of a batch of `batch` images, in the manifest's layout. */
export function inputDims(manifest: LoadedManifest, batch: number): number[] {
	const { size, layout } = manifest.input;
	return layout === "NCHW" ? [batch, 3, size, size] : [batch, size, size, 3];
}

/** A CPU session of the manifest's model with `threads` intra-op threads (0 = onnxruntime's default). */
export function openSession(manifest: LoadedManifest, threads: number): Promise<ort.InferenceSession> {
	// One model run at a time per session: no inter-op parallelism to share the cores with.
	return ort.InferenceSession.create(manifest.file, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" });
}
