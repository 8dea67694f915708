/**
 * The one definition of renditions: the thumbnails (shortest edge 240 and 720 px, never upscaled,
 * WebP) that the ingest pipeline stores and that delivery makes on the spot when asked for one
 * before the pipeline got to it, and compressed renditions (POST /images/:id/compress). Both
 * paths render a thumbnail with renderRendition, so a thumbnail has the same bytes and the same
 * ETag (its variant key) whichever made it. Also the pipeline's image work as a pure function of
 * the original's bytes (renderImage, which also makes the image's ThumbHash placeholder): no I/O and no service calls, so the worker, tests and
 * bench/ingest.ts all run exactly this code.
 *
 * sharp writes no metadata to its output unless asked (`keepMetadata`/`withMetadata`), so EXIF —
 * GPS coordinates included — never reaches a rendition; orientation is applied to the pixels
 * first, so dropping the tag loses nothing. The original is never rewritten.
 */
import sharp, { type Metadata, type ResizeOptions, type Sharp } from "sharp";
import { rgbaToThumbHash } from "thumbhash";
import type { ImageMetadata } from "../images/image.ts";
import { DEFAULT_QUALITY, LOSSY, OUTPUT_FORMATS, type OutputFormat, type TransformSpec } from "../transform/spec.ts";
import { readExif } from "./exif.ts";

/** Shortest-edge lengths of the renditions made on ingest; each is named by its length. */
export const RENDITION_EDGES = [240, 720] as const;
const RENDITION_FORMAT = "webp";
/**
 * WebP quality 80, effort 2: encoding is most of the pipeline's CPU time, and on the shared
 * photos at 720 px effort 2 costs about half of sharp's default effort 4 for files only ~5%
 * larger (effort 0-1 saves a little more time but grows the files 10-20%).
 */
const WEBP = { quality: DEFAULT_QUALITY.webp!, effort: 2 } as const;

/** A thumbnail as a transform: shortest edge `edge` px (never enlarged), WebP. */
export function renditionSpec(edge: number): TransformSpec {
	return { format: RENDITION_FORMAT, width: edge, height: edge, fit: "outside", quality: WEBP.quality };
}

/** The thumbnail edge a spec stands for, or null when it is any other transform. */
export function renditionEdgeOf(spec: TransformSpec): number | null {
	const edge = spec.width;
	if (edge === null || !(RENDITION_EDGES as readonly number[]).includes(edge)) return null;
	const thumbnail = renditionSpec(edge);
	const same = spec.format === thumbnail.format && spec.height === edge && spec.fit === thumbnail.fit && spec.quality === thumbnail.quality;
	return same ? edge : null;
}

/** The name of a compressed rendition: `compress-q70-webp`, or `compress-png` for lossless formats. */
export function compressName(spec: TransformSpec): string {
	return spec.quality === null ? `compress-${spec.format}` : `compress-q${spec.quality}-${spec.format}`;
}

const COMPRESS_NAME = /^compress-(?:q(?<quality>[1-9]\d?|100)-)?(?<format>[a-z]+)$/;

/**
 * The spec a rendition name stands for: "240" and "720" (thumbnails) or a compressed rendition's
 * name; null for any other name. A name maps to exactly one spec, so a rendition needs no record
 * of its own to be found, and can always be made again.
 */
export function renditionByName(name: string): TransformSpec | null {
	const edge = Number(name);
	if ((RENDITION_EDGES as readonly number[]).includes(edge) && String(edge) === name) return renditionSpec(edge);
	const match = COMPRESS_NAME.exec(name);
	const format = match && (OUTPUT_FORMATS as readonly string[]).includes(match.groups!.format!) ? (match.groups!.format as OutputFormat) : null;
	if (!format) return null;
	const quality = match!.groups!.quality;
	if (LOSSY.has(format) !== (quality !== undefined)) return null;
	return { format, width: null, height: null, fit: "inside", quality: quality === undefined ? null : Number(quality) };
}

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
 * The original decoded once, auto-oriented and shrunk to the largest rendition's size (JPEG and
 * WebP shrink on load): every rendition is made from these few pixels. Decoding once per
 * rendition held a 100-megapixel PNG (no shrink-on-load) in memory twice at the same time: over
 * 1 GiB for one upload.
 */
async function decodeForRenditions(input: Buffer, options: RenderOptions): Promise<{ metadata: ImageMetadata; pixels: () => Sharp }> {
	const metadata = metadataOf(await decoder(input, options).metadata());
	const largest = Math.max(...RENDITION_EDGES);
	const { data, info } = await decoder(input, options)
		.rotate()
		.resize(boxFor(metadata, largest))
		.raw({ depth: "uchar" })
		.toBuffer({ resolveWithObject: true });
	return { metadata, pixels: () => sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } }) };
}

/** ThumbHash's limit: it encodes images of at most 100 × 100 px. */
const THUMBHASH_EDGE = 100;

/**
 * The blurred placeholder the web app shows while a thumbnail loads: a ThumbHash (about 25 bytes,
 * base64) of the decoded pixels shrunk to fit 100 × 100 px, as sRGB with alpha.
 */
async function thumbHashOf(pixels: Sharp): Promise<string> {
	const { data, info } = await pixels
		.resize(THUMBHASH_EDGE, THUMBHASH_EDGE, { fit: "inside", withoutEnlargement: true })
		.toColourspace("srgb")
		.ensureAlpha()
		.raw({ depth: "uchar" })
		.toBuffer({ resolveWithObject: true });
	return Buffer.from(rgbaToThumbHash(info.width, info.height, data)).toString("base64");
}

/** Metadata and every rendition of one original. Throws sharp's error for an undecodable input. */
export async function renderImage(input: Buffer, options: RenderOptions): Promise<RenderedImage> {
	const { metadata, pixels } = await decodeForRenditions(input, options);
	const [thumbhash, ...renditions] = await Promise.all([thumbHashOf(pixels()), ...RENDITION_EDGES.map(edge => rendition(pixels(), metadata, edge))]);
	return { metadata: { ...metadata, thumbhash }, renditions };
}

/** One rendition, exactly as renderImage makes it (same steps, so the same bytes). */
export async function renderRendition(input: Buffer, edge: number, options: RenderOptions): Promise<RenderedRendition> {
	const { metadata, pixels } = await decodeForRenditions(input, options);
	return rendition(pixels(), metadata, edge);
}
