/**
 * Metadata removal without re-encoding, for the copies guests get of an original
 * (docs/sharing.md): the same pixels, minus whatever could say where, when and with what a photo
 * was taken (EXIF with GPS and camera serials, XMP, IPTC, comments, text chunks). Pure functions
 * over the whole file, bytes in and bytes out; the parsers read only within the buffer and fail
 * with StripError on anything malformed, so a hostile file is refused rather than copied with
 * its metadata. Formats without a stripper here (GIF, AVIF, TIFF) answer null: the transform
 * service re-encodes those.
 *
 * Kept on purpose: JPEG's APP0 JFIF header (without its thumbnail), APP2 ICC profiles and APP14 Adobe (colour transform),
 * PNG's and WebP's colour chunks. Without them colours shift; none of them describes the scene.
 * Bytes after the image's end (a JPEG after EOI, a PNG after IEND) are dropped: they are a
 * classic hiding place and no decoder reads them.
 *
 * The EXIF orientation is the one piece of metadata that changes how the pixels are shown: a
 * JPEG gets a new EXIF block holding the orientation alone; a rotated PNG or WebP (rare) is left
 * to the re-encode, which applies the rotation to the pixels.
 */

export class StripError extends Error {}

function fail(format: string, why: string): never {
	throw new StripError(`Malformed ${format}: ${why}`);
}

// ---------------------------------------------------------------------------------------------
// JPEG: a marker stream. Every segment before and between scans has a 16-bit length; scans are
// entropy-coded data, where 0xFF is followed by 0x00 (stuffing) or a restart marker.

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const COM = 0xfe;
const APP0 = 0xe0;
const APP2 = 0xe2;
const APP14 = 0xee;

/** APPn segments kept, by marker: the identifier their payload must start with. */
const KEPT_APP: Readonly<Record<number, string>> = { [APP0]: "JFIF\0", [APP2]: "ICC_PROFILE\0", [APP14]: "Adobe" };

/** JFIF's header without the thumbnail it may embed (its size bytes zeroed): a thumbnail can show what a crop removed. */
const JFIF_HEADER_LENGTH = 14;

function withoutJfifThumbnail(marker: number, payload: Buffer, whole: Buffer): Buffer {
	if (marker !== APP0 || payload.length <= JFIF_HEADER_LENGTH) return whole;
	const header = Buffer.from(payload.subarray(0, JFIF_HEADER_LENGTH));
	header[12] = 0;
	header[13] = 0;
	return segment(APP0, header);
}

function isMetadataSegment(marker: number, payload: Buffer): boolean {
	if (marker === COM) return true;
	if (marker < APP0 || marker > 0xef) return false;
	const kept = KEPT_APP[marker];
	return kept === undefined || payload.toString("latin1", 0, kept.length) !== kept;
}

/** Where the entropy-coded data that starts at `at` ends: at the next marker that is not RSTn. */
function scanEnd(input: Buffer, at: number): number {
	for (let i = at; i + 1 < input.length; i++) {
		if (input[i] !== 0xff) continue;
		const next = input[i + 1]!;
		if (next === 0x00 || next === 0xff || (next >= 0xd0 && next <= 0xd7)) continue;
		return i;
	}
	return fail("JPEG", "a scan runs past the end of the file");
}

/** An APP1 EXIF segment with one IFD entry: Orientation (0x0112, SHORT) = `orientation`. */
function orientationSegment(orientation: number): Buffer {
	const tiff = Buffer.alloc(26);
	tiff.write("MM\0*", 0, "latin1");
	tiff.writeUInt32BE(8, 4);
	tiff.writeUInt16BE(1, 8);
	tiff.writeUInt16BE(0x0112, 10);
	tiff.writeUInt16BE(3, 12);
	tiff.writeUInt32BE(1, 14);
	tiff.writeUInt16BE(orientation, 18);
	// Bytes 20-21 pad the value; 22-25: no next IFD.
	return segment(0xe1, Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff]));
}

function segment(marker: number, payload: Buffer): Buffer {
	const head = Buffer.from([0xff, marker, 0, 0]);
	head.writeUInt16BE(payload.length + 2, 2);
	return Buffer.concat([head, payload]);
}

function stripJpeg(input: Buffer, orientation: number): Buffer {
	if (input.length < 4 || input[0] !== 0xff || input[1] !== SOI) fail("JPEG", "no start of image");
	const kept: Buffer[] = [input.subarray(0, 2)];
	if (orientation !== 1) kept.push(orientationSegment(orientation));
	let at = 2;
	for (;;) {
		// Fill bytes (0xFF runs) may precede a marker.
		while (at < input.length && input[at] === 0xff && input[at + 1] === 0xff) at++;
		if (at + 1 >= input.length || input[at] !== 0xff) fail("JPEG", "a marker is missing or cut off");
		const marker = input[at + 1]!;
		if (marker === EOI) {
			kept.push(input.subarray(at, at + 2));
			return Buffer.concat(kept);
		}
		if (marker === SOI || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01 || marker === 0x00) fail("JPEG", `unexpected marker 0x${marker.toString(16)}`);
		if (at + 4 > input.length) fail("JPEG", "a segment length is cut off");
		const length = input.readUInt16BE(at + 2);
		const end = at + 2 + length;
		if (length < 2 || end > input.length) fail("JPEG", "a segment length points outside the file");
		const payload = input.subarray(at + 4, end);
		if (!isMetadataSegment(marker, payload)) kept.push(withoutJfifThumbnail(marker, payload, input.subarray(at, end)));
		at = end;
		if (marker === SOS) {
			const dataEnd = scanEnd(input, at);
			kept.push(input.subarray(at, dataEnd));
			at = dataEnd;
		}
	}
}

// ---------------------------------------------------------------------------------------------
// PNG: a signature, then chunks (length, type, data, CRC) up to IEND.

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PNG_METADATA = new Set(["eXIf", "tEXt", "zTXt", "iTXt", "tIME"]);

function stripPng(input: Buffer): Buffer {
	if (input.length < 8 || !input.subarray(0, 8).equals(PNG_SIGNATURE)) fail("PNG", "no PNG signature");
	const kept: Buffer[] = [PNG_SIGNATURE];
	let at = 8;
	for (;;) {
		if (at + 8 > input.length) fail("PNG", "a chunk header is cut off");
		const length = input.readUInt32BE(at);
		const type = input.toString("latin1", at + 4, at + 8);
		const end = at + 12 + length;
		if (end > input.length) fail("PNG", `chunk ${JSON.stringify(type)} runs past the end of the file`);
		if (!PNG_METADATA.has(type)) kept.push(input.subarray(at, end));
		at = end;
		if (type === "IEND") return Buffer.concat(kept);
	}
}

// ---------------------------------------------------------------------------------------------
// WebP: a RIFF container of chunks (FourCC, little-endian size, data padded to even length). The
// extended format's VP8X header flags which of EXIF and XMP follow; both flags are cleared.

const WEBP_METADATA = new Set(["EXIF", "XMP "]);
const VP8X_EXIF_FLAG = 0x08;
const VP8X_XMP_FLAG = 0x04;

function stripWebp(input: Buffer): Buffer {
	if (input.length < 12 || input.toString("latin1", 0, 4) !== "RIFF" || input.toString("latin1", 8, 12) !== "WEBP") fail("WebP", "no RIFF WEBP header");
	const riffEnd = 8 + input.readUInt32LE(4);
	if (riffEnd > input.length) fail("WebP", "the RIFF size points past the end of the file");
	const kept: Buffer[] = [];
	let at = 12;
	while (at < riffEnd) {
		if (at + 8 > riffEnd) fail("WebP", "a chunk header is cut off");
		const type = input.toString("latin1", at, at + 4);
		const size = input.readUInt32LE(at + 4);
		const end = at + 8 + size + (size % 2);
		if (end > riffEnd) fail("WebP", `chunk ${JSON.stringify(type)} runs past the end of the file`);
		if (WEBP_METADATA.has(type)) {
			at = end;
			continue;
		}
		const copy = Buffer.from(input.subarray(at, end));
		if (type === "VP8X") {
			if (size < 1) fail("WebP", "an empty VP8X chunk");
			copy[8] = copy[8]! & ~(VP8X_EXIF_FLAG | VP8X_XMP_FLAG);
		}
		kept.push(copy);
		at = end;
	}
	const body = Buffer.concat(kept);
	const header = Buffer.alloc(12);
	header.write("RIFF", 0, "latin1");
	header.writeUInt32LE(body.length + 4, 4);
	header.write("WEBP", 8, "latin1");
	return Buffer.concat([header, body]);
}

/**
 * The file without its metadata, in the same format and with the same pixels; null when the
 * format (as the sniffer names it) has no byte-level stripper, or the image is rotated by an
 * EXIF `orientation` (1-8) that only a JPEG keeps here. Throws StripError on a malformed file.
 */
export function stripMetadata(input: Buffer, format: string, orientation = 1): Buffer | null {
	switch (format) {
		case "jpeg":
			return stripJpeg(input, orientation >= 1 && orientation <= 8 ? orientation : 1);
		case "png":
			return orientation === 1 ? stripPng(input) : null;
		case "webp":
			return orientation === 1 ? stripWebp(input) : null;
		default:
			return null;
	}
}
