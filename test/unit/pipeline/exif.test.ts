/** The EXIF summary reader on real EXIF blocks (written by sharp) and on hostile, broken ones. */
import assert from "node:assert/strict";
import { it } from "node:test";
import sharp from "sharp";
import { readExif } from "../../../models/pipeline/exif.ts";
import { cameraJpeg } from "../../helpers/jobs.ts";

const exifOf = async (jpeg: Buffer) => (await sharp(jpeg).metadata()).exif!;

it("reads make, model, the time taken and the presence of GPS", async () => {
	assert.deepEqual(readExif(await exifOf(await cameraJpeg(64, 48))), {
		cameraMake: "TestCam",
		cameraModel: "Model 7",
		takenAt: "2023-04-05T06:07:08",
		hasGps: true
	});
});

it("falls back to DateTime without DateTimeOriginal, and reads big-endian blocks", async () => {
	const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: "red" } })
		.jpeg()
		.withExif({ IFD0: { Make: "X", DateTime: "2020:01:02 03:04:05" } })
		.toBuffer();
	const little = await exifOf(jpeg);
	assert.deepEqual(readExif(little), { cameraMake: "X", cameraModel: null, takenAt: "2020-01-02T03:04:05", hasGps: false });
	assert.equal(little.toString("latin1", 6, 8), "II", "sharp writes little-endian; big-endian is checked below");
	assert.deepEqual(readExif(toBigEndian()), { cameraMake: "Nikon", cameraModel: null, takenAt: null, hasGps: true });
});

it("never throws on broken or hostile blocks", async () => {
	const block = await exifOf(await cameraJpeg(64, 48));
	assert.deepEqual(readExif(undefined), { cameraMake: null, cameraModel: null, takenAt: null, hasGps: false });
	for (let length = 0; length < block.length; length += 7) readExif(block.subarray(0, length));
	// Every offset field pointing past the end, and a blank date.
	const lying = Buffer.from(block);
	lying.writeUInt32LE(0xfffffff0, 6 + 4);
	assert.equal(readExif(lying).cameraMake, null);
	assert.equal(readExif(Buffer.from("Exif\0\0XX*\0\0\0\0\0")).cameraMake, null);
});

/** A hand-made big-endian ("MM") block: IFD0 with Make "Nikon" and a GPS pointer. */
function toBigEndian(): Buffer {
	const tiff = Buffer.alloc(64);
	tiff.write("MM", 0, "latin1");
	tiff.writeUInt16BE(42, 2);
	tiff.writeUInt32BE(8, 4);
	tiff.writeUInt16BE(2, 8);
	// Make: ASCII, 6 bytes ("Nikon\0") at offset 40.
	tiff.writeUInt16BE(0x010f, 10);
	tiff.writeUInt16BE(2, 12);
	tiff.writeUInt32BE(6, 14);
	tiff.writeUInt32BE(40, 18);
	// GPS IFD pointer: LONG.
	tiff.writeUInt16BE(0x8825, 22);
	tiff.writeUInt16BE(4, 24);
	tiff.writeUInt32BE(1, 26);
	tiff.writeUInt32BE(50, 30);
	tiff.write("Nikon\0", 40, "latin1");
	return Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff]);
}
