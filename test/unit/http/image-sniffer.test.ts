import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { describe, it } from "node:test";
import { crc32 } from "node:zlib";
import sharp from "sharp";
import { ImageSniffer, type ImageProbe, type SnifferOptions } from "../../../models/http/image-sniffer.ts";
import { InvalidImageError, PayloadTooLargeError, UnsupportedMediaError } from "../../../models/shared/errors.ts";

const PHOTOS = new URL("../../../../shared/images/", import.meta.url);
const LIMITS: SnifferOptions = { maxBytes: 10 * 1024 * 1024, maxPixels: 40_000_000 };
const HEAD_BYTES = 256 * 1024;

const photo = (name: string) => readFileSync(new URL(name, PHOTOS));

/** Streams `bytes` through a sniffer in `chunkSize` pieces; returns what came out and the probe. */
async function sniff(bytes: Buffer, options: Partial<SnifferOptions> = {}, chunkSize = 64 * 1024) {
	const pieces: Buffer[] = [];
	for (let offset = 0; offset < bytes.length; offset += chunkSize) pieces.push(bytes.subarray(offset, offset + chunkSize));
	const sniffer = new ImageSniffer({ ...LIMITS, ...options });
	const output = await buffer(Readable.from(pieces).pipe(sniffer));
	return { output, probe: sniffer.probe };
}

/** The sniffer refuses `bytes` with this typed error: class, HTTP status and type. */
async function refuses(bytes: Buffer, errorClass: Function, code: number, type: string, options: Partial<SnifferOptions> = {}) {
	let caught: (Error & { code?: number; type?: string; data?: unknown }) | undefined;
	await sniff(bytes, options).catch(err => (caught = err));
	assert.ok(caught instanceof errorClass, `expected ${errorClass.name}, got ${String(caught)}`);
	assert.equal(caught.code, code);
	assert.equal(caught.type, type);
	return caught;
}

const solid = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: "#c33" } });
const noise = (width: number, height: number) => sharp(randomBytes(width * height * 3), { raw: { width, height, channels: 3 } });

function probeOf(format: string, width: number, height: number, pages = 1): ImageProbe {
	return { format, contentType: `image/${format}`, width, height, pages };
}

describe("ImageSniffer", () => {
	for (const [name, probe] of [
		["dog.jpg", probeOf("jpeg", 1080, 1080)],
		["dog-gps-exif.jpg", probeOf("jpeg", 1080, 1080)],
		["hummingbird.jpg", probeOf("jpeg", 450, 450)],
		["binoculars-cc0.jpeg", probeOf("jpeg", 1125, 750)],
		["mug-cc0.jpeg", probeOf("jpeg", 1125, 750)],
		["chelsea.png", probeOf("png", 451, 300)],
		["kitten_224.png", probeOf("png", 224, 224)]
	] as const) {
		it(`probes the photo ${name} and passes its bytes through unchanged`, async () => {
			const bytes = photo(name);
			const result = await sniff(bytes, {}, 10_000);
			assert.deepEqual(result.probe, probe);
			assert.ok(result.output.equals(bytes));
		});
	}

	it("probes every accepted format sharp writes", async () => {
		const image = solid(40, 30);
		const cases = { png: image.clone().png(), jpeg: image.clone().jpeg(), webp: image.clone().webp(), gif: image.clone().gif(), tiff: image.clone().tiff(), avif: image.clone().avif() };
		for (const [format, encoder] of Object.entries(cases)) {
			const bytes = await encoder.toBuffer();
			const { probe, output } = await sniff(bytes);
			assert.deepEqual(probe, probeOf(format, 40, 30), format);
			assert.ok(output.equals(bytes), format);
		}
	});

	it("streams a file larger than its probed head, in small chunks, unchanged", async () => {
		const bytes = await noise(600, 600).png().toBuffer();
		assert.ok(bytes.length > 3 * HEAD_BYTES);
		const { probe, output } = await sniff(bytes, {}, 7_000);
		assert.deepEqual(probe, probeOf("png", 600, 600));
		assert.ok(output.equals(bytes));
	});

	it("refuses unknown magic bytes with 415", async () => {
		const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
		for (const bytes of [svg, Buffer.from("%PDF-1.7\n%\u00e2\u00e3"), Buffer.from("GIF90a"), Buffer.from([0xff, 0xd8]), Buffer.from("plain text, ".repeat(200))]) {
			await refuses(bytes, UnsupportedMediaError, 415, "UNSUPPORTED_MEDIA_TYPE");
		}
	});

	it("refuses an empty file with 422", async () => {
		await refuses(Buffer.alloc(0), InvalidImageError, 422, "EMPTY_FILE");
	});

	it("refuses known magic followed by garbage as corrupt", async () => {
		const png = await solid(40, 30).png().toBuffer();
		const corrupt = Buffer.concat([png.subarray(0, 8), Buffer.alloc(200, 0x5a)]);
		const error = await refuses(corrupt, InvalidImageError, 422, "CORRUPT_IMAGE");
		assert.equal(typeof (error.data as { reason: unknown }).reason, "string");
		await refuses(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]), InvalidImageError, 422, "CORRUPT_IMAGE");
	});

	it("refuses truncated JPEG, PNG and GIF files by their missing end marker", async () => {
		const dog = photo("dog.jpg");
		const chelsea = photo("chelsea.png");
		const large = await noise(600, 600).png().toBuffer();
		const gif = await solid(300, 300).gif().toBuffer();
		const gifCut = gif.subarray(0, gif.length - 1);
		assert.equal(gifCut.subarray(-16).includes(0x3b), false, "no trailer byte left in the last 16 bytes");
		for (const [format, bytes] of [
			["JPEG", dog.subarray(0, dog.length - 2)],
			["JPEG", dog.subarray(0, 150_000)],
			["PNG", chelsea.subarray(0, chelsea.length - 20)],
			["PNG", large.subarray(0, large.length - 1000)],
			["GIF", gifCut]
		] as const) {
			const error = await refuses(bytes, InvalidImageError, 422, "TRUNCATED_IMAGE");
			assert.equal(error.message, `The ${format} file is truncated`);
		}
	});

	it("refuses a truncated WebP with 422 (sharp already cannot read it)", async () => {
		const webp = await sharp(photo("dog.jpg")).webp().toBuffer();
		await refuses(webp.subarray(0, webp.length - 1), InvalidImageError, 422, "CORRUPT_IMAGE");
		assert.deepEqual((await sniff(webp)).probe, probeOf("webp", 1080, 1080));
	});

	it("refuses a decompression bomb from its header alone", async () => {
		// A real 40x30 PNG whose IHDR (with a valid CRC) claims 50000 x 50000 pixels.
		const bomb = Buffer.from(await solid(40, 30).png().toBuffer());
		bomb.writeUInt32BE(50_000, 16);
		bomb.writeUInt32BE(50_000, 20);
		bomb.writeUInt32BE(crc32(bomb.subarray(12, 29)), 29);
		const error = await refuses(bomb, InvalidImageError, 422, "TOO_MANY_PIXELS");
		assert.deepEqual(error.data, { width: 50_000, height: 50_000, pages: 1, maxPixels: LIMITS.maxPixels });
	});

	it("counts every frame of an animation against maxPixels", async () => {
		const frames = await Promise.all(["#f00", "#0f0", "#00f"].map(background => sharp({ create: { width: 10, height: 10, channels: 3, background } }).png().toBuffer()));
		const gif = await sharp(frames, { join: { animated: true } }).gif().toBuffer();
		assert.deepEqual((await sniff(gif, { maxPixels: 300 })).probe, probeOf("gif", 10, 10, 3));
		const error = await refuses(gif, InvalidImageError, 422, "TOO_MANY_PIXELS", { maxPixels: 299 });
		assert.deepEqual(error.data, { width: 10, height: 10, pages: 3, maxPixels: 299 });
	});

	it("refuses more than maxBytes with 413, and accepts exactly maxBytes", async () => {
		const bytes = photo("kitten_224.png");
		const error = await refuses(bytes, PayloadTooLargeError, 413, "PAYLOAD_TOO_LARGE", { maxBytes: bytes.length - 1 });
		assert.deepEqual(error.data, { limitBytes: bytes.length - 1 });
		assert.equal((await sniff(bytes, { maxBytes: bytes.length })).output.length, bytes.length);
		// Also once the head has been probed and bytes are flowing.
		const large = await noise(600, 600).png().toBuffer();
		await refuses(large, PayloadTooLargeError, 413, "PAYLOAD_TOO_LARGE", { maxBytes: HEAD_BYTES + 1000 });
	});

	it("has no probe until the stream has finished", () => {
		const sniffer = new ImageSniffer(LIMITS);
		assert.throws(() => sniffer.probe, /not been probed yet/);
		sniffer.destroy();
	});

	// Larger than the first 256 KB, as uploads arrive over HTTP in pieces: the header is read again
	// from more bytes, and a GIF's frames are counted over the whole file.
	it("accepts a WebP photo larger than the probed head", async () => {
		const webp = await sharp(photo("dog.jpg")).resize(2400).webp({ quality: 90 }).toBuffer();
		assert.ok(webp.length > HEAD_BYTES);
		assert.deepEqual((await sniff(webp)).probe, probeOf("webp", 2400, 2400));
	});

	it("accepts a GIF larger than the probed head", async () => {
		const gif = await sharp(photo("dog.jpg")).resize(800).gif().toBuffer();
		assert.ok(gif.length > HEAD_BYTES);
		assert.deepEqual((await sniff(gif)).probe, probeOf("gif", 800, 800));
	});

	it("counts every frame of an animated GIF larger than the probed head", async () => {
		const frames = await Promise.all(Array.from({ length: 8 }, () => noise(200, 200).png().toBuffer()));
		const gif = await sharp(frames, { join: { animated: true } }).gif().toBuffer();
		assert.ok(gif.length > HEAD_BYTES);
		await refuses(gif, InvalidImageError, 422, "TOO_MANY_PIXELS", { maxPixels: 7 * 200 * 200 });
	});

	it("accepts a valid JPEG with more than 256 KB of metadata before its frame header", async () => {
		const dog = photo("dog.jpg");
		const app15 = () => Buffer.concat([Buffer.from([0xff, 0xef, 0xfd, 0xe8]), Buffer.alloc(65_000 - 2, 0x41)]);
		const bytes = Buffer.concat([dog.subarray(0, 2), ...Array.from({ length: 5 }, app15), dog.subarray(2)]);
		assert.equal((await sharp(bytes).metadata()).width, 1080);
		assert.deepEqual((await sniff(bytes)).probe, probeOf("jpeg", 1080, 1080));
	});
});
