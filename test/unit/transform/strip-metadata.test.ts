/**
 * The byte-level metadata strippers: what they remove (EXIF, XMP, IPTC, comments, text chunks),
 * what they keep (the pixels, colour profiles), and that hostile or truncated input fails with
 * StripError or yields a well-formed file, never anything else.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import sharp from "sharp";
import { StripError, stripMetadata } from "../../../models/transform/strip-metadata.ts";
import { SHARED_IMAGES } from "../../helpers/server.ts";

const GPS_PHOTO = readFileSync(join(SHARED_IMAGES, "dog-gps-exif.jpg"));

async function pixels(bytes: Buffer): Promise<Buffer> {
	return sharp(bytes).raw().toBuffer();
}

/** A JPEG segment: marker, big-endian length (which counts itself), payload. */
function segment(marker: number, payload: Buffer): Buffer {
	const head = Buffer.from([0xff, marker, 0, 0]);
	head.writeUInt16BE(payload.length + 2, 2);
	return Buffer.concat([head, payload]);
}

/** A PNG chunk with a (not checked here) zero CRC. */
function chunk(type: string, data: Buffer): Buffer {
	const head = Buffer.alloc(8);
	head.writeUInt32BE(data.length, 0);
	head.write(type, 4, "latin1");
	return Buffer.concat([head, data, Buffer.alloc(4)]);
}

function pngChunkTypes(bytes: Buffer): string[] {
	const types: string[] = [];
	for (let at = 8; at + 8 <= bytes.length; at += 12 + bytes.readUInt32BE(at)) types.push(bytes.toString("latin1", at + 4, at + 8));
	return types;
}

function riffChunkTypes(bytes: Buffer): string[] {
	const types: string[] = [];
	for (let at = 12; at + 8 <= bytes.length; at += 8 + bytes.readUInt32LE(at + 4) + (bytes.readUInt32LE(at + 4) % 2)) types.push(bytes.toString("latin1", at, at + 4));
	return types;
}

/** Every prefix of `bytes` gives StripError or a buffer: no other exception, no hang. */
function survivesTruncation(bytes: Buffer, format: string): void {
	for (let length = 0; length < bytes.length; length++) {
		try {
			stripMetadata(bytes.subarray(0, length), format);
		} catch (err) {
			assert.ok(err instanceof StripError, `${format} cut at ${length}: ${(err as Error).message}`);
		}
	}
}

describe("stripMetadata: JPEG", () => {
	it("removes EXIF with GPS, XMP and comments without re-encoding: the same pixels", async () => {
		assert.ok((await sharp(GPS_PHOTO).metadata()).exif, "the test photo carries EXIF");
		const xmp = segment(0xe1, Buffer.from("http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>secret place</x:xmpmeta>"));
		const comment = segment(0xfe, Buffer.from("shot at 12 Secret Street"));
		const iptc = segment(0xed, Buffer.from("Photoshop 3.0\0IPTC secret"));
		const input = Buffer.concat([GPS_PHOTO.subarray(0, 2), xmp, comment, iptc, GPS_PHOTO.subarray(2)]);
		const stripped = stripMetadata(input, "jpeg")!;
		const meta = await sharp(stripped).metadata();
		assert.equal(meta.exif, undefined);
		assert.equal(meta.xmp, undefined);
		assert.equal(meta.iptc, undefined);
		assert.equal(meta.comments, undefined);
		for (const secret of ["secret place", "Secret Street", "IPTC secret", "Exif\0"]) assert.equal(stripped.indexOf(secret), -1, secret);
		assert.ok((await pixels(stripped)).equals(await pixels(GPS_PHOTO)), "not re-encoded");
	});

	it("keeps JFIF, the ICC profile and Adobe segments, and drops other APP2 and trailing bytes", async () => {
		const withIcc = await sharp(GPS_PHOTO).withIccProfile("p3").keepExif().jpeg().toBuffer();
		const mpf = segment(0xe2, Buffer.from("MPF\0second picture"));
		const adobe = segment(0xee, Buffer.from("Adobe\0\x64\0\0\0\0\x01"));
		const input = Buffer.concat([withIcc.subarray(0, 2), adobe, mpf, withIcc.subarray(2), Buffer.from("appended secret")]);
		const stripped = stripMetadata(input, "jpeg")!;
		const meta = await sharp(stripped).metadata();
		assert.ok(meta.icc, "the colour profile stays: colours would shift without it");
		assert.equal(meta.exif, undefined);
		assert.notEqual(stripped.indexOf("Adobe"), -1);
		assert.equal(stripped.indexOf("second picture"), -1);
		assert.equal(stripped.indexOf("appended secret"), -1);
		assert.deepEqual([...stripped.subarray(-2)], [0xff, 0xd9], "ends at EOI");
		assert.ok((await pixels(stripped)).equals(await pixels(input)));
	});

	it("drops the thumbnail a JFIF header may embed: it can show what a crop removed", async () => {
		const thumbnail = Buffer.alloc(3 * 2 * 2, 0x7f);
		const jfif = segment(0xe0, Buffer.concat([Buffer.from("JFIF\0\x01\x02\0\0\x01\0\x01\x02\x02", "latin1"), thumbnail]));
		const plain = await sharp(GPS_PHOTO).jpeg().toBuffer();
		const sos = plain.indexOf(Buffer.from([0xff, 0xdb]));
		const input = Buffer.concat([plain.subarray(0, 2), jfif, plain.subarray(sos)]);
		const stripped = stripMetadata(input, "jpeg")!;
		assert.deepEqual([...stripped.subarray(2, 20)], [0xff, 0xe0, 0, 16, ...Buffer.from("JFIF\0\x01\x02\0\0\x01\0\x01\0\0", "latin1")]);
		assert.ok((await pixels(stripped)).equals(await pixels(input)));
	});

	it("strips every scan of a progressive JPEG, and segments between scans", async () => {
		const progressive = await sharp(GPS_PHOTO).keepExif().jpeg({ progressive: true }).toBuffer();
		const sos = progressive.lastIndexOf(Buffer.from([0xff, 0xda]));
		const input = Buffer.concat([progressive.subarray(0, sos), segment(0xe1, Buffer.from("Exif\0\0between scans")), progressive.subarray(sos)]);
		const stripped = stripMetadata(input, "jpeg")!;
		assert.equal(stripped.indexOf("between scans"), -1);
		assert.equal((await sharp(stripped).metadata()).exif, undefined);
		assert.ok((await pixels(stripped)).equals(await pixels(progressive)));
	});

	it("keeps a rotated photo upright: an EXIF block with the orientation alone", async () => {
		const rotated = await sharp(GPS_PHOTO).keepExif().withExifMerge({ IFD0: { Copyright: "Secret Owner" } }).jpeg().toBuffer();
		const input = await sharp(rotated).keepExif().withMetadata({ orientation: 6 }).jpeg().toBuffer();
		assert.equal((await sharp(input).metadata()).orientation, 6);
		const stripped = stripMetadata(input, "jpeg", 6)!;
		const meta = await sharp(stripped).metadata();
		assert.equal(meta.orientation, 6);
		assert.ok(meta.exif!.length < 64, "nothing but the orientation");
		assert.equal(stripped.indexOf("Secret Owner"), -1);
		assert.ok((await pixels(stripped)).equals(await pixels(input)));
	});

	it("refuses what is not a JPEG and survives every truncation", () => {
		assert.throws(() => stripMetadata(Buffer.from("not a jpeg at all"), "jpeg"), StripError);
		assert.throws(() => stripMetadata(Buffer.from([0xff, 0xd8, 0xff, 0xe1, 0x00, 0x01]), "jpeg"), StripError, "a length below 2");
		assert.throws(() => stripMetadata(Buffer.from([0xff, 0xd8, 0xff, 0xe1, 0xff, 0xff, 0, 0]), "jpeg"), StripError, "a length past the end");
		survivesTruncation(GPS_PHOTO.subarray(0, 4000), "jpeg");
	});
});

describe("stripMetadata: PNG", () => {
	it("drops eXIf, tEXt, zTXt, iTXt and tIME and keeps the image chunks", async () => {
		const plain = await sharp({ create: { width: 8, height: 8, channels: 4, background: "#c03060" } }).png().toBuffer();
		const iend = plain.length - 12;
		const extra = [chunk("tEXt", Buffer.from("Comment\0secret")), chunk("iTXt", Buffer.from("XML:com.adobe.xmp\0\0\0\0\0secret xmp")), chunk("zTXt", Buffer.from("x\0\0zz")), chunk("tIME", Buffer.alloc(7)), chunk("eXIf", Buffer.from("MM\0*secret exif"))];
		const input = Buffer.concat([plain.subarray(0, iend), ...extra, plain.subarray(iend), Buffer.from("trailing")]);
		const stripped = stripMetadata(input, "png")!;
		assert.deepEqual(pngChunkTypes(stripped), pngChunkTypes(plain));
		assert.equal(stripped.indexOf("secret"), -1);
		assert.ok((await pixels(stripped)).equals(await pixels(plain)));
	});

	it("strips the shared PNG's XMP", async () => {
		const chelsea = readFileSync(join(SHARED_IMAGES, "chelsea.png"));
		const stripped = stripMetadata(chelsea, "png")!;
		assert.equal((await sharp(stripped).metadata()).xmp, undefined);
		assert.ok((await pixels(stripped)).equals(await pixels(chelsea)));
	});

	it("refuses a bad signature and survives every truncation", async () => {
		assert.throws(() => stripMetadata(Buffer.from("\x89PNG\r\n\x1a\x00"), "png"), StripError);
		const huge = Buffer.concat([Buffer.from("\x89PNG\r\n\x1a\n", "latin1"), Buffer.from([0x7f, 0xff, 0xff, 0xff]), Buffer.from("tEXt")]);
		assert.throws(() => stripMetadata(huge, "png"), StripError, "a chunk longer than the file");
		survivesTruncation(readFileSync(join(SHARED_IMAGES, "chelsea.png")).subarray(0, 3000), "png");
	});
});

describe("stripMetadata: WebP", () => {
	it("drops the EXIF and XMP chunks and clears their VP8X flags", async () => {
		const input = await sharp(GPS_PHOTO).resize(64).keepMetadata().webp().toBuffer();
		assert.ok((await sharp(input).metadata()).exif, "sharp wrote EXIF into the WebP");
		const stripped = stripMetadata(input, "webp")!;
		assert.deepEqual(riffChunkTypes(stripped).filter(type => type === "EXIF" || type === "XMP "), []);
		assert.equal(stripped[20]! & 0x0c, 0, "no EXIF or XMP flag");
		assert.equal(stripped.readUInt32LE(4), stripped.length - 8, "the RIFF size is rewritten");
		assert.equal((await sharp(stripped).metadata()).exif, undefined);
		assert.ok((await pixels(stripped)).equals(await pixels(input)));
	});

	it("leaves a rotated PNG or WebP to a re-encode: their orientation lives in the EXIF dropped", () => {
		assert.equal(stripMetadata(Buffer.from("anything"), "webp", 6), null);
		assert.equal(stripMetadata(Buffer.from("anything"), "png", 3), null);
	});

	it("refuses what is not a WebP and survives every truncation", async () => {
		assert.throws(() => stripMetadata(Buffer.from("RIFF\0\0\0\0WAVEfmt "), "webp"), StripError);
		survivesTruncation(await sharp(GPS_PHOTO).resize(32).keepMetadata().webp().toBuffer(), "webp");
	});
});

describe("stripMetadata: other formats", () => {
	it("answers null: those are re-encoded instead", () => {
		for (const format of ["gif", "avif", "tiff"]) assert.equal(stripMetadata(Buffer.from("anything"), format), null);
	});
});
