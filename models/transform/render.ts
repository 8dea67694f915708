/**
 * The sharp pipeline that turns an original into a variant described by a TransformSpec, and the
 * process-wide sharp settings. Pure apart from sharp itself: bytes in, bytes out.
 */
import sharp, { type Sharp } from "sharp";
import { renderRendition, renditionEdgeOf } from "../pipeline/renditions.ts";
import type { OutputFormat, TransformSpec } from "./spec.ts";
import { StripError, stripMetadata } from "./strip-metadata.ts";

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

/** stripMetadata, with null (re-encode) for a file its parser refuses. */
function strippedBytes(input: Buffer, format: OutputFormat, orientation: number): Buffer | null {
	try {
		return stripMetadata(input, format, orientation);
	} catch (err) {
		if (err instanceof StripError) return null;
		throw err;
	}
}

/** Qualities of a stripped copy that has to be re-encoded: high, since it stands in for the original. */
const COPY_QUALITY: Readonly<Partial<Record<OutputFormat, number>>> = { jpeg: 95, webp: 95, avif: 80 };

/**
 * The copy of an original that guests get (docs/sharing.md): its bytes without metadata where
 * strip-metadata.ts can remove it (JPEG, PNG, WebP: the same pixels), else a re-encode in the
 * same format at high quality, every frame kept and the EXIF rotation applied (sharp copies no
 * metadata). A file the byte-level parser finds malformed is re-encoded too (what libvips
 * decodes, it re-encodes without metadata); one sharp cannot decode fails with its error.
 */
export async function renderStripped(input: Buffer, format: OutputFormat, settings: PipelineSettings): Promise<RenderedVariant> {
	const options = { failOn: "warning" as const, limitInputPixels: settings.limitInputPixels, animated: true };
	const { orientation } = await sharp(input, options).metadata();
	const spec: TransformSpec = { format, width: null, height: null, fit: "inside", quality: COPY_QUALITY[format] ?? null };
	const data = strippedBytes(input, format, orientation ?? 1) ?? (await encode(sharp(input, options).autoOrient(), spec, settings).toBuffer());
	const meta = await sharp(data, options).metadata();
	return { data, format, width: meta.width!, height: meta.pageHeight ?? meta.height! };
}
