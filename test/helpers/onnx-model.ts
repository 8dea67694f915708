/**
 * Tiny ONNX models for tests, whose answer is known, so batching, layouts and failures can be
 * tested: input `pixels` float32 [N, size, size, 3] (NHWC, dynamic batch N). The protobuf is
 * encoded by hand (field numbers from onnx.proto).
 */

function varint(value: number): number[] {
	const bytes: number[] = [];
	do {
		let byte = value & 0x7f;
		value = Math.floor(value / 128);
		if (value > 0) byte |= 0x80;
		bytes.push(byte);
	} while (value > 0);
	return bytes;
}

const key = (field: number, wireType: number) => varint((field << 3) | wireType);
const int = (field: number, value: number) => [...key(field, 0), ...varint(value)];
const bytes = (field: number, payload: number[]) => [...key(field, 2), ...varint(payload.length), ...payload];
const text = (field: number, value: string) => bytes(field, [...Buffer.from(value, "utf8")]);

/** ValueInfoProto of a float tensor; string dims are symbolic (dynamic). */
function tensorInfo(name: string, dims: (number | string)[]): number[] {
	const shape = dims.flatMap(dim => bytes(1, typeof dim === "number" ? int(1, dim) : text(2, dim)));
	const tensorType = [...int(1, 1 /* FLOAT */), ...bytes(2, shape)];
	return [...text(1, name), ...bytes(2, bytes(1, tensorType))];
}

const reduceMean = (output: string) => {
	const axes = [...text(1, "axes"), ...int(8, 1), ...int(8, 2), ...int(20, 7 /* INTS */)];
	const keepdims = [...text(1, "keepdims"), ...int(3, 0), ...int(20, 2 /* INT */)];
	return bytes(1, [...text(1, "pixels"), ...text(2, output), ...text(3, "mean"), ...text(4, "ReduceMean"), ...bytes(5, axes), ...bytes(5, keepdims)]);
};

function model(graph: number[]): Buffer {
	const opset = [...text(1, ""), ...int(2, 13)];
	return Buffer.from([...int(1, 7 /* IR version */), ...bytes(7, graph), ...bytes(8, opset)]);
}

/** Output `means` float32 [N, 3]: the mean of each channel. Fed pixel/255, pure red answers [1, 0, 0]. */
export function channelMeansModel(size: number): Buffer {
	return model([...reduceMean("means"), ...text(2, "channel_means"), ...bytes(11, tensorInfo("pixels", ["N", size, size, 3])), ...bytes(12, tensorInfo("means", ["N", 3]))]);
}

/**
 * Loads like a one-class classifier (output `score` float32 [N, 1]) but every run fails: it
 * gathers channel 5 of the 3 channel means, which onnxruntime only finds out when it runs.
 */
export function failingModel(size: number): Buffer {
	const index = [...int(1, 1), ...int(2, 7 /* INT64 */), ...bytes(7, varint(5)), ...text(8, "index")];
	const gather = [...text(1, "means"), ...text(1, "index"), ...text(2, "score"), ...text(3, "gather"), ...text(4, "Gather"), ...bytes(5, [...text(1, "axis"), ...int(3, 1), ...int(20, 2)])];
	return model([
		...reduceMean("means"),
		...bytes(1, gather),
		...text(2, "failing"),
		...bytes(5, index),
		...bytes(11, tensorInfo("pixels", ["N", size, size, 3])),
		...bytes(12, tensorInfo("score", ["N", 1]))
	]);
}
