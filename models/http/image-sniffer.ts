/**
 * Checks that an upload is a supported, complete, sane image while it streams through, in
 * constant memory (a 200 MB upload is never held whole):
 * - the first bytes decide the format: unknown magic -> 415; sharp then reads the header from
 *   the first HEAD_BYTES -> 422 if it cannot (corrupt), 415 if sharp reads it but the format is
 *   not one we accept (SVG, PDF, ...), 422 if the pixel count is over the limit
 *   (decompression bombs are refused before any decode). A header sharp cannot read from the
 *   first bytes (a WebP or a JPEG whose metadata comes first) is read again from twice as many,
 *   up to MAX_HEAD_BYTES or the whole file; a GIF's frames are counted over the whole file (up
 *   to MAX_HEAD_BYTES), as they follow each other to its end;
 * - the last bytes must hold the format's end marker, so a truncated upload -> 422;
 * - the byte count is capped -> 413.
 * Decoding every pixel is left to the processing step; here the point is refusing bad input
 * early and cheaply.
 */
import sharp, { type Metadata } from "sharp";
import { pipeline, type Readable, Transform, type TransformCallback } from "node:stream";
import { InvalidImageError, PayloadTooLargeError, UnsupportedMediaError } from "../shared/errors.ts";

const HEAD_BYTES = 256 * 1024;
/** The most an upload holds while its header is being read: 16 MiB, bounded whatever the file's size. */
const MAX_HEAD_BYTES = 16 * 1024 * 1024;
const TAIL_BYTES = 1024;

export interface ImageProbe {
	format: string;
	contentType: string;
	width: number;
	height: number;
	pages: number;
}

interface FormatRule {
	format: string;
	contentType: string;
	magic(head: Buffer): boolean;
	/** True when the last bytes show a complete file; `size` is the total byte count. */
	complete(tail: Buffer, size: number, head: Buffer): boolean;
}

const startsWith = (head: Buffer, bytes: number[], offset = 0) => bytes.every((byte, i) => head[offset + i] === byte);
const tailHas = (tail: Buffer, marker: Buffer) => tail.includes(marker);

const JPEG_EOI = Buffer.from([0xff, 0xd9]);
const PNG_IEND = Buffer.from("IEND", "latin1");

const FORMATS: FormatRule[] = [
	{
		format: "jpeg",
		contentType: "image/jpeg",
		magic: head => startsWith(head, [0xff, 0xd8, 0xff]),
		complete: tail => tailHas(tail, JPEG_EOI)
	},
	{
		format: "png",
		contentType: "image/png",
		magic: head => startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
		complete: tail => tailHas(tail, PNG_IEND)
	},
	{
		format: "webp",
		contentType: "image/webp",
		magic: head => head.toString("latin1", 0, 4) === "RIFF" && head.toString("latin1", 8, 12) === "WEBP",
		// The RIFF header states the file length: fewer bytes means a cut-off upload.
		complete: (_tail, size, head) => size >= head.readUInt32LE(4) + 8
	},
	{
		format: "gif",
		contentType: "image/gif",
		magic: head => head.toString("latin1", 0, 6) === "GIF87a" || head.toString("latin1", 0, 6) === "GIF89a",
		complete: tail => tail.subarray(-16).includes(0x3b)
	},
	{
		format: "avif",
		contentType: "image/avif",
		magic: head => head.toString("latin1", 4, 8) === "ftyp" && ["avif", "avis"].includes(head.toString("latin1", 8, 12)),
		complete: () => true
	},
	{
		format: "tiff",
		contentType: "image/tiff",
		magic: head => startsWith(head, [0x49, 0x49, 0x2a, 0x00]) || startsWith(head, [0x4d, 0x4d, 0x00, 0x2a]),
		complete: () => true
	}
];

/** Formats sharp may report for a file whose magic bytes we recognised. */
const SHARP_FORMATS: Record<string, string[]> = { avif: ["heif", "avif"] };

export interface SnifferOptions {
	maxBytes: number;
	maxPixels: number;
}

export class ImageSniffer extends Transform {
	private readonly options: SnifferOptions;
	private headChunks: Buffer[] = [];
	private headLength = 0;
	/** The first bytes, once probed. */
	private head: Buffer | undefined;
	private tail = Buffer.alloc(0);
	private bytes = 0;
	private rule: FormatRule | undefined;
	private probed: ImageProbe | undefined;
	/** Buffered bytes at which the header is read next. */
	private probeAt = HEAD_BYTES;

	constructor(options: SnifferOptions) {
		super();
		this.options = options;
	}

	/** The probe result; only valid after the stream has finished without error. */
	get probe(): ImageProbe {
		if (!this.probed) throw new Error("ImageSniffer: the stream has not been probed yet");
		return this.probed;
	}

	override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
		this.bytes += chunk.length;
		if (this.bytes > this.options.maxBytes) return callback(new PayloadTooLargeError(this.options.maxBytes));
		this.tail = Buffer.concat([this.tail, chunk.subarray(-TAIL_BYTES)]).subarray(-TAIL_BYTES);
		if (this.head) return callback(null, chunk);
		this.headChunks.push(chunk);
		this.headLength += chunk.length;
		if (this.headLength < this.probeAt) return callback();
		this.probeHead(false).then(head => callback(null, head ?? undefined), callback);
	}

	override _flush(callback: TransformCallback): void {
		const finish = async () => {
			if (!this.head) this.push(await this.probeHead(true));
			if (!this.rule!.complete(this.tail, this.bytes, this.head!)) {
				throw new InvalidImageError(`The ${this.rule!.format.toUpperCase()} file is truncated`, "TRUNCATED_IMAGE");
			}
		};
		finish().then(() => callback(), callback);
	}

	/**
	 * Checks the buffered first bytes; returns them so they can flow on, or null to read more
	 * first (`whole`: the file has ended, this is all there is).
	 */
	private async probeHead(whole: boolean): Promise<Buffer | null> {
		const head = Buffer.concat(this.headChunks);
		this.headChunks = [head];
		if (head.length === 0) throw new InvalidImageError("The file is empty", "EMPTY_FILE");
		this.rule = FORMATS.find(rule => rule.magic(head));
		if (!this.rule) throw new UnsupportedMediaError();
		const final = whole || head.length >= MAX_HEAD_BYTES;
		if (!final && this.rule.format === "gif") return this.readMore();
		const meta = await readHeader(head).catch((err: unknown) => {
			if (final) throw err;
			return null;
		});
		if (!meta) return this.readMore();
		this.headChunks = [];
		const accepted = SHARP_FORMATS[this.rule.format] ?? [this.rule.format];
		if (!accepted.includes(meta.format ?? "")) throw new UnsupportedMediaError(`Unsupported image format: ${meta.format}`);
		const { width, height } = meta;
		if (!width || !height) throw new InvalidImageError("The image has no dimensions", "CORRUPT_IMAGE");
		const pages = meta.pages ?? 1;
		if (width * height * pages > this.options.maxPixels) {
			throw new InvalidImageError(`The image has more than ${this.options.maxPixels} pixels`, "TOO_MANY_PIXELS", {
				width,
				height,
				pages,
				maxPixels: this.options.maxPixels
			});
		}
		this.probed = { format: this.rule.format, contentType: this.rule.contentType, width, height, pages };
		this.head = head;
		return head;
	}

	/** The header is read again once twice as many bytes (or the whole file) are in. */
	private readMore(): null {
		this.probeAt = Math.min(MAX_HEAD_BYTES, this.probeAt * 2);
		return null;
	}
}

async function readHeader(head: Buffer): Promise<Metadata> {
	try {
		// Header only: `metadata()` decodes no pixels. No pixel limit here; ours is checked above.
		return await sharp(head, { limitInputPixels: false }).metadata();
	} catch (err) {
		throw new InvalidImageError("The image is corrupt or unreadable", "CORRUPT_IMAGE", { reason: (err as Error).message });
	}
}

/**
 * `source` piped through a new sniffer. pipeline, not pipe: an upload's stream may already be
 * destroyed (the request was refused while its handler was starting), and pipe() on a destroyed
 * stream never ends the sniffer, leaving its reader (and the temp file it writes) waiting forever.
 */
export function sniff(source: Readable, options: SnifferOptions): ImageSniffer {
	const sniffer = new ImageSniffer(options);
	// The sniffer carries any failure (its own verdict or the source's) to its reader.
	pipeline(source, sniffer, () => undefined);
	return sniffer;
}
