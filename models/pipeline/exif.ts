/**
 * The few EXIF fields imgmesh records (camera make and model, when the photo was taken, whether
 * it carries GPS coordinates), read from the raw EXIF block sharp returns. A small TIFF IFD
 * reader instead of a dependency: it only follows the IFD0 → Exif/GPS pointers and reads ASCII
 * values, and every offset is bounds-checked because the block comes from an untrusted upload.
 */

export interface ExifSummary {
	cameraMake: string | null;
	cameraModel: string | null;
	/** DateTimeOriginal (or DateTime) as "YYYY-MM-DDTHH:MM:SS", camera local time. */
	takenAt: string | null;
	hasGps: boolean;
}

const NONE: ExifSummary = { cameraMake: null, cameraModel: null, takenAt: null, hasGps: false };

const TAG = {
	make: 0x010f,
	model: 0x0110,
	dateTime: 0x0132,
	exifIfd: 0x8769,
	gpsIfd: 0x8825,
	dateTimeOriginal: 0x9003
} as const;
const ASCII = 2;
const LONG = 4;
const ENTRY_SIZE = 12;
/** A hostile block cannot make the reader loop: no IFD is read with more entries than this. */
const MAX_ENTRIES = 1000;

interface Entry {
	type: number;
	count: number;
	/** Offset of the 4-byte value field within the TIFF block. */
	at: number;
}

class TiffReader {
	private readonly tiff: Buffer;
	private readonly little: boolean;

	constructor(tiff: Buffer) {
		this.tiff = tiff;
		this.little = tiff.toString("latin1", 0, 2) === "II";
	}

	u16(at: number): number {
		return this.little ? this.tiff.readUInt16LE(at) : this.tiff.readUInt16BE(at);
	}

	u32(at: number): number {
		return this.little ? this.tiff.readUInt32LE(at) : this.tiff.readUInt32BE(at);
	}

	/** The entries of the IFD at `offset`, by tag; empty when the offset is out of bounds. */
	ifd(offset: number): Map<number, Entry> {
		const entries = new Map<number, Entry>();
		if (offset < 8 || offset + 2 > this.tiff.length) return entries;
		const count = Math.min(this.u16(offset), MAX_ENTRIES);
		for (let i = 0; i < count; i++) {
			const at = offset + 2 + i * ENTRY_SIZE;
			if (at + ENTRY_SIZE > this.tiff.length) break;
			entries.set(this.u16(at), { type: this.u16(at + 2), count: this.u32(at + 4), at: at + 8 });
		}
		return entries;
	}

	ascii(entry: Entry | undefined): string | null {
		if (!entry || entry.type !== ASCII || entry.count === 0) return null;
		// Values longer than 4 bytes live at the offset the value field holds.
		const start = entry.count > 4 ? this.u32(entry.at) : entry.at;
		if (start + entry.count > this.tiff.length) return null;
		const text = this.tiff.toString("latin1", start, start + entry.count).replace(/\0.*$/s, "").trim();
		return text || null;
	}

	pointer(entry: Entry | undefined): number | null {
		return entry && entry.type === LONG ? this.u32(entry.at) : null;
	}
}

/** "2024:05:01 12:30:00" → "2024-05-01T12:30:00"; anything else (e.g. blank "    :  :  ") → null. */
function exifDate(text: string | null): string | null {
	const match = text?.match(/^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})$/);
	return match ? `${match[1]}-${match[2]}-${match[3]}T${match[4]}:${match[5]}:${match[6]}` : null;
}

/** Reads the summary from sharp's `metadata().exif` ("Exif\0\0" + TIFF); a broken block gives what was readable. */
export function readExif(block: Buffer | undefined): ExifSummary {
	if (!block || block.length < 14) return NONE;
	const tiff = block.toString("latin1", 0, 4) === "Exif" ? block.subarray(6) : block;
	const order = tiff.toString("latin1", 0, 2);
	if (order !== "II" && order !== "MM") return NONE;
	const reader = new TiffReader(tiff);
	try {
		const ifd0 = reader.ifd(reader.u32(4));
		const exifOffset = reader.pointer(ifd0.get(TAG.exifIfd));
		const exif = exifOffset === null ? new Map<number, Entry>() : reader.ifd(exifOffset);
		return {
			cameraMake: reader.ascii(ifd0.get(TAG.make)),
			cameraModel: reader.ascii(ifd0.get(TAG.model)),
			takenAt: exifDate(reader.ascii(exif.get(TAG.dateTimeOriginal))) ?? exifDate(reader.ascii(ifd0.get(TAG.dateTime))),
			hasGps: ifd0.has(TAG.gpsIfd)
		};
	} catch {
		// A RangeError from an offset past the end: the block is truncated or lies.
		return NONE;
	}
}
