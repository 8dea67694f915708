/**
 * Writes a tiny ONNX model for tests, so batching and layouts can be tested on a model whose
 * answer is known: input `pixels` float32 [N, size, size, 3] (NHWC, dynamic batch N), output
 * `means` float32 [N, 3] = the mean of each channel (ReduceMean over H and W). Fed with pixel/255,
 * a pure red image answers [1, 0, 0]. The protobuf is encoded by hand (field numbers from onnx.proto).
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

export function channelMeansModel(size: number): Buffer {
	const axes = [...text(1, "axes"), ...int(8, 1), ...int(8, 2), ...int(20, 7 /* INTS */)];
	const keepdims = [...text(1, "keepdims"), ...int(3, 0), ...int(20, 2 /* INT */)];
	const node = [...text(1, "pixels"), ...text(2, "means"), ...text(3, "mean"), ...text(4, "ReduceMean"), ...bytes(5, axes), ...bytes(5, keepdims)];
	const graph = [...bytes(1, node), ...text(2, "channel_means"), ...bytes(11, tensorInfo("pixels", ["N", size, size, 3])), ...bytes(12, tensorInfo("means", ["N", 3]))];
	const opset = [...text(1, ""), ...int(2, 13)];
	return Buffer.from([...int(1, 7 /* IR version */), ...bytes(7, graph), ...bytes(8, opset)]);
}
