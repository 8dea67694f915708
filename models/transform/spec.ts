/**
 * What a transform request asks for, checked and reduced to one canonical form. Two requests that
 * must produce the same bytes get the same TransformSpec, hence the same cache key and ETag: the
 * key is computed from the spec alone, before (and instead of) any image processing.
 */
import { createHash } from "node:crypto";
import { BadRequestError } from "../shared/errors.ts";

export const OUTPUT_FORMATS = ["jpeg", "png", "webp", "avif", "gif", "tiff"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Every name a client may use for a format (`?format=`, `/content.<ext>`). */
export const FORMAT_NAMES: Readonly<Record<string, OutputFormat>> = {
	jpg: "jpeg",
	jpeg: "jpeg",
	png: "png",
	webp: "webp",
	avif: "avif",
	gif: "gif",
	tiff: "tiff"
};

export const FITS = ["cover", "contain", "inside", "outside", "fill"] as const;
export type Fit = (typeof FITS)[number];

/** The largest width or height we produce (WebP's own limit is 16383). */
export const MAX_DIMENSION = 16383;
export const MAX_DPR = 4;

/** Formats where `q` means something; the others are lossless here and ignore it. */
export const LOSSY: ReadonlySet<OutputFormat> = new Set(["jpeg", "webp", "avif"]);
export const DEFAULT_QUALITY: Readonly<Partial<Record<OutputFormat, number>>> = { jpeg: 80, webp: 80, avif: 50 };

const CONTENT_TYPES: Readonly<Record<OutputFormat, string>> = {
	jpeg: "image/jpeg",
	png: "image/png",
	webp: "image/webp",
	avif: "image/avif",
	gif: "image/gif",
	tiff: "image/tiff"
};
const EXTENSIONS: Readonly<Record<OutputFormat, string>> = { jpeg: "jpg", png: "png", webp: "webp", avif: "avif", gif: "gif", tiff: "tiff" };

export interface TransformSpec {
	format: OutputFormat;
	/** Target box in output pixels (dpr applied); null = follow the other side's scale. */
	width: number | null;
	height: number | null;
	/** How the image meets a box of both width and height; "inside" when only one side is given. */
	fit: Fit;
	/** Encoder quality for lossy formats; null for lossless ones. */
	quality: number | null;
}

/** The transform parameters of a request, as the action's validator let them through. */
export interface TransformQuery {
	/** A preset's name (presets.ts): instead of the parameters below. */
	preset?: string;
	/** A signature of the parameters, and its expiry (signing.ts). */
	sig?: string;
	exp?: number;
	format?: string;
	/** The extension of `/content.<ext>`. */
	ext?: string;
	w?: number;
	h?: number;
	fit?: string;
	q?: number;
	dpr?: number;
}

export interface SourceImage {
	format: string;
	width: number;
	height: number;
}

export const TRANSFORM_KEYS = ["format", "ext", "w", "h", "fit", "q", "dpr"] as const;

/** True when the query asks for anything but the original bytes. */
export function wantsTransform(query: TransformQuery): boolean {
	return TRANSFORM_KEYS.some(key => query[key] !== undefined);
}

function formatNamed(name: string, what: string): OutputFormat {
	const format = FORMAT_NAMES[name.toLowerCase()];
	if (!format) throw new BadRequestError(`Unknown ${what} "${name}"`, "UNKNOWN_FORMAT", { allowed: [...Object.keys(FORMAT_NAMES), "auto"] });
	return format;
}

/** Media types the client accepts with q > 0 (RFC 9110 §12.5.1), lower-cased. */
function acceptedTypes(accept: string | undefined): Set<string> {
	const types = new Set<string>();
	for (const part of (accept ?? "").split(",")) {
		const [type, ...params] = part.split(";").map(item => item.trim().toLowerCase());
		const q = params.find(param => param.startsWith("q="));
		if (type && !(q && Number(q.slice(2)) === 0)) types.add(type);
	}
	return types;
}

/**
 * `format=auto`: the smallest format the client says it decodes (AVIF, then WebP); otherwise PNG
 * for sources that may carry transparency and JPEG for the rest, which every client decodes.
 */
export function negotiateFormat(accept: string | undefined, source: SourceImage): OutputFormat {
	const types = acceptedTypes(accept);
	if (types.has("image/avif")) return "avif";
	if (types.has("image/webp")) return "webp";
	return ["png", "gif", "webp", "avif", "tiff"].includes(source.format) ? "png" : "jpeg";
}

function outputFormat(query: TransformQuery, accept: string | undefined, source: SourceImage): OutputFormat {
	const fromExt = query.ext === undefined ? undefined : formatNamed(query.ext, "extension");
	if (query.format === undefined || query.format.toLowerCase() === "auto") {
		if (fromExt) {
			if (query.format !== undefined) throw new BadRequestError("format=auto contradicts the extension", "FORMAT_CONFLICT");
			return fromExt;
		}
		if (query.format !== undefined) return negotiateFormat(accept, source);
		return FORMAT_NAMES[source.format] ?? "jpeg";
	}
	const fromParam = formatNamed(query.format, "format");
	if (fromExt && fromExt !== fromParam) throw new BadRequestError(`format=${query.format} contradicts the extension .${query.ext}`, "FORMAT_CONFLICT");
	return fromParam;
}

function scaled(value: number | undefined, dpr: number): number | null {
	if (value === undefined) return null;
	const pixels = Math.round(value * dpr);
	if (pixels < 1 || pixels > MAX_DIMENSION) {
		throw new BadRequestError(`A side of ${pixels} px is out of bounds (1-${MAX_DIMENSION})`, "DIMENSION_OUT_OF_BOUNDS", { max: MAX_DIMENSION });
	}
	return pixels;
}

/**
 * The most pixels the output can have. Images are never enlarged: a scale above 1 is capped at
 * 1; cover, contain and fill with both sides give at most the box (cropped or padded to it).
 */
export function outputPixels(spec: Pick<TransformSpec, "width" | "height" | "fit">, source: SourceImage): number {
	const { width, height, fit } = spec;
	if (width !== null && height !== null && (fit === "cover" || fit === "contain" || fit === "fill")) return width * height;
	const scales = [width === null ? null : width / source.width, height === null ? null : height / source.height].filter(s => s !== null);
	const wanted = scales.length === 0 ? 1 : fit === "outside" ? Math.max(...scales) : Math.min(...scales);
	const scale = Math.min(wanted, 1);
	return Math.max(1, Math.round(source.width * scale)) * Math.max(1, Math.round(source.height * scale));
}

export interface NormalizeOptions {
	/** The request's Accept header, for format=auto. */
	accept?: string;
	maxOutputPixels: number;
}

/** Checks a request's parameters against the source and reduces them to the canonical spec. */
export function normalizeTransform(query: TransformQuery, source: SourceImage, options: NormalizeOptions): TransformSpec {
	const format = outputFormat(query, options.accept, source);
	const dpr = query.dpr ?? 1;
	if (!(dpr > 0 && dpr <= MAX_DPR)) throw new BadRequestError(`dpr must be in (0, ${MAX_DPR}]`, "DPR_OUT_OF_BOUNDS");
	const width = scaled(query.w, dpr);
	const height = scaled(query.h, dpr);
	if (query.fit !== undefined && !(FITS as readonly string[]).includes(query.fit)) {
		throw new BadRequestError(`Unknown fit "${query.fit}"`, "UNKNOWN_FIT", { allowed: FITS });
	}
	// With one side (or none) every fit gives the same image: one spelling, one cache entry.
	const fit: Fit = width !== null && height !== null ? ((query.fit as Fit | undefined) ?? "cover") : "inside";
	const quality = LOSSY.has(format) ? (query.q ?? DEFAULT_QUALITY[format]!) : null;
	const spec: TransformSpec = { format, width, height, fit, quality };
	checkOutputPixels(spec, source, options.maxOutputPixels);
	return spec;
}

/** Refuses (400) a spec whose output would exceed `maxOutputPixels`. */
export function checkOutputPixels(spec: TransformSpec, source: SourceImage, maxOutputPixels: number): void {
	const pixels = outputPixels(spec, source);
	if (pixels > maxOutputPixels) {
		throw new BadRequestError(`The output would have ${pixels} pixels; the limit is ${maxOutputPixels}`, "OUTPUT_TOO_LARGE", { maxOutputPixels });
	}
}

/** What a variant's bytes come with. */
export interface VariantInfo {
	format: OutputFormat;
	width: number;
	height: number;
	size: number;
}

/** The stored original a variant is made from. */
export interface VariantSource {
	/** Storage key of the original. */
	key: string;
	sha256: string;
	encrypted: boolean;
}

/** The variant source of an image document. */
export function sourceOf(doc: { blob: string; sha256: string; encrypted: boolean }): VariantSource {
	return { key: doc.blob, sha256: doc.sha256, encrypted: doc.encrypted };
}

/**
 * The cache key (and ETag) of a variant: the source's SHA-256, whether it is stored encrypted (a
 * variant of an encrypted original is cached encrypted, so the two never share an entry), the
 * spec, and the encoder settings that change the bytes beyond it (the AVIF effort).
 */
export function variantKey(source: Pick<VariantSource, "sha256" | "encrypted">, spec: TransformSpec, avifEffort: number): string {
	const encoder = spec.format === "avif" ? avifEffort : null;
	const material = JSON.stringify([1, source.sha256, source.encrypted, spec.format, spec.width, spec.height, spec.fit, spec.quality, encoder]);
	return createHash("sha256").update(material).digest("hex");
}

/**
 * The cache key (and ETag) of an original's stripped copy (render.ts renderStripped), apart from
 * every variant key: the source alone decides it. The version changes when stripping does.
 */
export function strippedKey(source: Pick<VariantSource, "sha256" | "encrypted">): string {
	return createHash("sha256").update(JSON.stringify(["stripped", 1, source.sha256, source.encrypted])).digest("hex");
}

export function contentTypeOf(format: OutputFormat): string {
	return CONTENT_TYPES[format];
}

/**
 * The download name of bytes in `format` (a variant, or the original in its sniffed format): the
 * uploaded name's base with the extension of the format, never the uploaded extension, which
 * could name anything (`poly.html`).
 */
export function variantFilename(filename: string, format: OutputFormat): string {
	const dot = filename.lastIndexOf(".");
	const base = dot > 0 ? filename.slice(0, dot) : filename;
	return `${base || "image"}.${EXTENSIONS[format]}`;
}
