/**
 * Image -> model input. sharp decodes straight to the model's size (for JPEG it shrinks on load,
 * so a 12 MP photo is never decoded at full size), auto-orients from EXIF, flattens any alpha
 * onto white and converts to 8-bit sRGB; the result is a small interleaved RGB buffer. One pass
 * then writes it into the input tensor with the model's layout, channel order, scaling and
 * element type (a Float16Array rounds each value itself on assignment).
 */
import sharp from "sharp";
import { InvalidImageError } from "../shared/errors.ts";
import type { LoadedManifest } from "./manifest.ts";

export type InputArray = Float32Array | Float16Array;

/** Decodes and resizes an image to the model's square input: `size * size * 3` bytes, RGB, row-major. */
export async function decodeForModel(image: Buffer, manifest: LoadedManifest, maxPixels: number): Promise<Buffer> {
	const { size, resize, resizeTo = size } = manifest.input;
	let pipeline = sharp(image, { limitInputPixels: maxPixels, sequentialRead: true }).rotate();
	if (resize === "stretch") {
		pipeline = pipeline.resize(size, size, { fit: "fill" });
	} else {
		// Scaling the shorter side to resizeTo and cutting the centre square of it, then the
		// centre `size` square of that, is torchvision's Resize + CenterCrop.
		pipeline = pipeline.resize(resizeTo, resizeTo, { fit: "cover", position: "centre" });
		const margin = (resizeTo - size) >> 1;
		if (margin > 0) pipeline = pipeline.extract({ left: margin, top: margin, width: size, height: size });
	}
	try {
		const { data, info } = await pipeline
			.flatten({ background: "#ffffff" })
			.toColourspace("srgb")
			.raw({ depth: "uchar" })
			.toBuffer({ resolveWithObject: true });
		if (info.channels !== 3 || info.width !== size || info.height !== size) {
			throw new Error(`unexpected decoded shape ${info.width}x${info.height}x${info.channels}`);
		}
		return data;
	} catch (err) {
		throw new InvalidImageError("The image is corrupt or unreadable", "CORRUPT_IMAGE", { reason: (err as Error).message });
	}
}

/** A zeroed input buffer for `batch` images of the manifest's element type. */
export function allocateInput(manifest: LoadedManifest, batch: number): InputArray {
	const length = batch * manifest.input.size * manifest.input.size * 3;
	return manifest.input.type === "float16" ? new Float16Array(length) : new Float32Array(length);
}

/** Per model channel c: the source RGB channel, and a, b with value = pixel * a + b. */
interface ChannelMap {
	source: [number, number, number];
	a: [number, number, number];
	b: [number, number, number];
}

export function channelMap(manifest: LoadedManifest): ChannelMap {
	const { channels, scale, mean, std } = manifest.input;
	const source: [number, number, number] = channels === "RGB" ? [0, 1, 2] : [2, 1, 0];
	const a = [0, 1, 2].map(c => scale / std[c]) as ChannelMap["a"];
	const b = [0, 1, 2].map(c => -mean[c] / std[c]) as ChannelMap["b"];
	return { source, a, b };
}

/** Writes one decoded image into slot `index` of a batch input, in one pass over its pixels. */
export function writeInput(rgb: Uint8Array, target: InputArray, index: number, manifest: LoadedManifest, map: ChannelMap): void {
	const plane = manifest.input.size * manifest.input.size;
	const offset = index * plane * 3;
	const [s0, s1, s2] = map.source;
	const [a0, a1, a2] = map.a;
	const [b0, b1, b2] = map.b;
	if (manifest.input.layout === "NCHW") {
		for (let i = 0, p = 0; i < plane; i++, p += 3) {
			target[offset + i] = rgb[p + s0] * a0 + b0;
			target[offset + plane + i] = rgb[p + s1] * a1 + b1;
			target[offset + 2 * plane + i] = rgb[p + s2] * a2 + b2;
		}
	} else {
		for (let p = 0, o = offset; p < plane * 3; p += 3, o += 3) {
			target[o] = rgb[p + s0] * a0 + b0;
			target[o + 1] = rgb[p + s1] * a1 + b1;
			target[o + 2] = rgb[p + s2] * a2 + b2;
		}
	}
}
