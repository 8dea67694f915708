/**
 * The ingest pipeline's image work, as a pure function of the original's bytes: read the
 * metadata, auto-orient, and make the renditions (shortest edge 240 and 720 px, never upscaled,
 * WebP). No I/O and no service calls, so the worker, tests and bench/ingest.ts all run exactly
 * this code.
 *
 * sharp writes no metadata to its output unless asked (`keepMetadata`/`withMetadata`), so EXIF —
 * GPS coordinates included — never reaches a rendition; orientation is applied to the pixels
 * first, so dropping the tag loses nothing. The original is never rewritten.
 */
import sharp, { type Metadata, type ResizeOptions, type Sharp } from "sharp";
import type { ImageMetadata } from "../images/image.ts";
import { readExif } from "./exif.ts";

/** Shortest-edge lengths of the renditions made on ingest; each is named by its length. */
export const RENDITION_EDGES = [240, 720] as const;
export const RENDITION_FORMAT = "webp";
/**
 * WebP quality 80, effort 2: encoding is most of the pipeline's CPU time, and on the shared
 * photos at 720 px effort 2 costs about half of sharp's default effort 4 for files only ~5%
 * larger (effort 0-1 saves a little more time but grows the files 10-20%).
 */
const WEBP = { quality: 80, effort: 2 } as const;

export interface RenderedRendition {
	name: string;
	width: number;
	height: number;
	format: string;
	bytes: Buffer;
}

export interface RenderedImage {
	metadata: ImageMetadata;
	renditions: RenderedRendition[];
}

export interface RenderOptions {
	/** Refuse inputs with more pixels than this (decompression bombs). */
	maxInputPixels: number;
}

/**
 * failOn "warning": a JPEG whose entropy data is corrupt decodes to grey garbage with only a
 * warning from libjpeg. Failing the image (with libvips' message as the reason) beats publishing
 * garbage thumbnails; the original stays downloadable either way.
 */
function decoder(input: Buffer, options: RenderOptions): Sharp {
	// sequentialRead: libvips streams the decode top to bottom instead of first decoding the whole
	// image into memory for random access (which a shrink to thumbnails never needs).
	return sharp(input, { failOn: "warning", limitInputPixels: options.maxInputPixels, sequentialRead: true });
}

function metadataOf(info: Metadata): ImageMetadata {
	const exif = readExif(info.exif);
	return {
		width: info.autoOrient.width,
		height: info.autoOrient.height,
		format: info.format,
		orientation: info.orientation ?? null,
		space: info.space ?? "unknown",
		hasAlpha: info.hasAlpha,
		density: info.density ?? null,
		...exif
	};
}

/** Resize box for a shortest edge of `edge` px, never larger than the (oriented) original. */
function boxFor(metadata: ImageMetadata, edge: number): ResizeOptions {
	const target = Math.min(edge, metadata.width, metadata.height);
	return metadata.width <= metadata.height ? { width: target } : { height: target };
}

async function rendition(pixels: Sharp, metadata: ImageMetadata, edge: number): Promise<RenderedRendition> {
	const { data, info } = await pixels.resize(boxFor(metadata, edge)).webp(WEBP).toBuffer({ resolveWithObject: true });
	return { name: String(edge), width: info.width, height: info.height, format: RENDITION_FORMAT, bytes: data };
}

/**
 * Metadata and every rendition of one original. Throws sharp's error for an undecodable input.
 *
 * The original is decoded once, auto-oriented and shrunk to the largest rendition's size (JPEG
 * and WebP shrink on load); every rendition is made from those few pixels. Decoding once per
 * rendition held a 100-megapixel PNG (no shrink-on-load) in memory twice at the same time:
 * over 1 GiB for one upload.
 */
export async function renderImage(input: Buffer, options: RenderOptions): Promise<RenderedImage> {
	const metadata = metadataOf(await decoder(input, options).metadata());
	const largest = Math.max(...RENDITION_EDGES);
	const { data, info } = await decoder(input, options)
		.rotate()
		.resize(boxFor(metadata, largest))
		.raw({ depth: "uchar" })
		.toBuffer({ resolveWithObject: true });
	const pixels = () => sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } });
	const renditions = await Promise.all(RENDITION_EDGES.map(edge => rendition(pixels(), metadata, edge)));
	return { metadata, renditions };
}
