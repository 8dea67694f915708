/**
 * The sharp pipeline that turns an original into a variant described by a TransformSpec, and the
 * process-wide sharp settings. Pure apart from sharp itself: bytes in, bytes out.
 */
import sharp, { type Sharp } from "sharp";
import { renderRendition, renditionEdgeOf } from "../pipeline/renditions.ts";
import type { OutputFormat, TransformSpec } from "./spec.ts";

export interface PipelineSettings {
	/** Largest decoded input (width × height × frames); more fails before decoding (bomb guard). */
	limitInputPixels: number;
	/** AVIF encoder effort 0-9: the dominant cost of an AVIF; bounded on purpose. */
	avifEffort: number;
}

export interface RenderedVariant {
	data: Buffer;
	format: OutputFormat;
	width: number;
	height: number;
}

/**
 * Process-wide sharp (libvips) settings, applied once per process that renders:
 * - concurrency: libvips threads per image. The transform service already runs several images
 *   at once (its bulkheads), so each gets `threads` threads; more only oversubscribes the cores.
 * - cache(false): libvips' operation cache keeps recent decoded inputs in memory, but variants are
 *   cached as encoded bytes on the storage backend, so a hit never reaches libvips: it would only
 *   hold memory.
 */
export function configureSharp(threads: number): void {
	sharp.concurrency(threads);
	sharp.cache(false);
}

function encode(image: Sharp, spec: TransformSpec, settings: PipelineSettings): Sharp {
	const quality = spec.quality ?? undefined;
	switch (spec.format) {
		case "jpeg":
			return image.jpeg({ quality });
		case "webp":
			return image.webp({ quality });
		case "avif":
			return image.avif({ quality, effort: settings.avifEffort });
		case "png":
			return image.png();
		case "gif":
			return image.gif();
		case "tiff":
			// Uncompressed TIFF is several times the size of the original for nothing.
			return image.tiff({ compression: "lzw" });
	}
}

/**
 * Renders one variant. `failOn: "warning"`, as on ingest (models/pipeline/renditions.ts): a JPEG with
 * corrupt entropy data decodes to grey garbage with only a warning, and a 422 beats serving
 * garbage under a cacheable ETag. Orientation comes from EXIF and is applied; metadata (EXIF with
 * GPS, XMP) is not copied to the output. Images are never enlarged.
 */
export async function renderVariant(input: Buffer, spec: TransformSpec, settings: PipelineSettings): Promise<RenderedVariant> {
	const edge = renditionEdgeOf(spec);
	if (edge !== null) {
		// A thumbnail: the pipeline's own steps, so it matches the stored one byte for byte.
		const { bytes, width, height } = await renderRendition(input, edge, { maxInputPixels: settings.limitInputPixels });
		return { data: bytes, format: spec.format, width, height };
	}
	let image = sharp(input, { failOn: "warning", limitInputPixels: settings.limitInputPixels }).autoOrient();
	if (spec.width !== null || spec.height !== null) {
		image = image.resize({ width: spec.width ?? undefined, height: spec.height ?? undefined, fit: spec.fit, withoutEnlargement: true });
	}
	const { data, info } = await encode(image, spec, settings).toBuffer({ resolveWithObject: true });
	return { data, format: spec.format, width: info.width, height: info.height };
}
