/** Transform parameters: normalization, bounds, format negotiation and the variant key. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BadRequestError } from "../../../models/shared/errors.ts";
import { compressName, renditionByName, renditionEdgeOf, renditionSpec } from "../../../models/pipeline/renditions.ts";
import { negotiateFormat, normalizeTransform, outputPixels, variantFilename, variantKey, type TransformQuery } from "../../../models/transform/spec.ts";

const PHOTO = { format: "jpeg", width: 2000, height: 1333 };
const OPTIONS = { maxOutputPixels: 10_000_000 };
const normalize = (query: TransformQuery, accept?: string) => normalizeTransform(query, PHOTO, { ...OPTIONS, accept });

function refused(query: TransformQuery, type: string): void {
	assert.throws(() => normalize(query), (err: unknown) => err instanceof BadRequestError && err.type === type, JSON.stringify(query));
}

describe("normalizeTransform", () => {
	it("keeps the source format and its default quality when only a size is asked", () => {
		assert.deepEqual(normalize({ w: 512 }), { format: "jpeg", width: 512, height: null, fit: "inside", quality: 80 });
	});

	it("spells each request one way: aliases, fit without a box, q of lossless formats", () => {
		assert.deepEqual(normalize({ ext: "jpg", w: 100, fit: "fill" }), normalize({ format: "jpeg", w: 100 }));
		assert.deepEqual(normalize({ format: "png", q: 30 }), { format: "png", width: null, height: null, fit: "inside", quality: null });
		assert.equal(normalize({ w: 100, h: 100 }).fit, "cover", "sharp's default when both sides are given");
		assert.equal(normalize({ w: 100, h: 100, fit: "contain" }).fit, "contain");
	});

	it("applies dpr to the box", () => {
		assert.deepEqual(normalize({ w: 300, h: 200, dpr: 2, format: "webp", q: 60 }), { format: "webp", width: 600, height: 400, fit: "cover", quality: 60 });
		assert.equal(normalize({ w: 333, dpr: 1.5 }).width, 500);
	});

	it("refuses unknown values, contradictions and sizes out of bounds", () => {
		refused({ format: "bmp" }, "UNKNOWN_FORMAT");
		refused({ ext: "exe" }, "UNKNOWN_FORMAT");
		refused({ ext: "png", format: "webp" }, "FORMAT_CONFLICT");
		refused({ ext: "png", format: "auto" }, "FORMAT_CONFLICT");
		refused({ w: 100, h: 100, fit: "squash" }, "UNKNOWN_FIT");
		refused({ w: 10_000, dpr: 2 }, "DIMENSION_OUT_OF_BOUNDS");
		refused({ w: 100, dpr: 5 }, "DPR_OUT_OF_BOUNDS");
		refused({ w: 4000, h: 3000, fit: "fill" }, "OUTPUT_TOO_LARGE");
	});

	it("allows a large box that cannot enlarge the image past the limit", () => {
		// inside/outside never enlarge: the output is at most the 2.7 MP source.
		assert.equal(normalize({ w: 4000, h: 3000, fit: "inside" }).width, 4000);
		assert.equal(outputPixels({ width: 4000, height: 3000, fit: "inside" }, PHOTO), 2000 * 1333);
		assert.equal(outputPixels({ width: 100, height: 100, fit: "outside" }, PHOTO), 150 * 100);
		assert.equal(outputPixels({ width: 500, height: null, fit: "inside" }, PHOTO), 500 * 333);
	});

	it("refuses a plain conversion of a source above the output limit", () => {
		const huge = { format: "png", width: 5000, height: 5000 };
		assert.throws(() => normalizeTransform({ format: "webp" }, huge, OPTIONS), /limit is 10000000/);
		assert.equal(normalizeTransform({ format: "webp", w: 1000 }, huge, OPTIONS).width, 1000);
	});
});

describe("negotiateFormat", () => {
	it("prefers AVIF, then WebP, then what every client decodes", () => {
		assert.equal(negotiateFormat("image/avif,image/webp,*/*", PHOTO), "avif");
		assert.equal(negotiateFormat("image/webp,image/*;q=0.8", PHOTO), "webp");
		assert.equal(negotiateFormat("image/avif;q=0, image/webp", PHOTO), "webp", "q=0 means not acceptable");
		assert.equal(negotiateFormat(undefined, PHOTO), "jpeg");
		assert.equal(negotiateFormat("*/*", { ...PHOTO, format: "png" }), "png", "transparency survives");
		assert.equal(normalize({ format: "auto" }, "image/webp").format, "webp");
	});
});

describe("variantKey", () => {
	const source = { sha256: "a".repeat(64), encrypted: false };
	it("is the same for the same bytes and spec, and differs with anything that changes the output", () => {
		const key = variantKey(source, normalize({ w: 512, format: "webp" }), 3);
		assert.match(key, /^[0-9a-f]{64}$/);
		assert.equal(variantKey(source, normalize({ w: 512, format: "webp", fit: "fill" }), 3), key);
		assert.equal(variantKey(source, normalize({ w: 512, format: "webp" }), 9), key, "the AVIF effort only keys AVIF");
		assert.notEqual(variantKey({ ...source, encrypted: true }, normalize({ w: 512, format: "webp" }), 3), key);
		assert.notEqual(variantKey({ ...source, sha256: "b".repeat(64) }, normalize({ w: 512, format: "webp" }), 3), key);
		assert.notEqual(variantKey(source, normalize({ w: 512, format: "webp", q: 81 }), 3), key);
		const avif = normalize({ w: 512, format: "avif" });
		assert.notEqual(variantKey(source, avif, 3), variantKey(source, avif, 4));
	});
});

describe("renditions and names", () => {
	it("makes the shortest edge the rendition size, as WebP", () => {
		assert.deepEqual(renditionSpec(240), { format: "webp", width: 240, height: 240, fit: "outside", quality: 80 });
	});
	it("names compressed renditions so that each name stands for exactly one spec", () => {
		for (const query of [{ format: "webp", q: 70 }, { format: "jpg", q: 100 }, { format: "avif", q: 1 }, { format: "png", q: 5 }, { format: "tiff" }]) {
			const spec = normalize(query);
			assert.deepEqual(renditionByName(compressName(spec)), spec, JSON.stringify(query));
		}
		assert.equal(compressName(normalize({ format: "webp", q: 70 })), "compress-q70-webp");
		assert.equal(compressName(normalize({ format: "png", q: 70 })), "compress-png");
		assert.deepEqual(renditionByName("240"), renditionSpec(240));
		assert.equal(renditionEdgeOf(renditionSpec(720)), 720);
		assert.equal(renditionEdgeOf(normalize({ format: "webp", w: 240, h: 240, fit: "outside", q: 81 })), null);
		assert.equal(renditionEdgeOf(normalize({ format: "webp", w: 240 })), null);
		for (const name of ["0240", "241", "compress-q70-jpg", "compress-q101-webp", "compress-q07-webp", "compress-webp", "compress-q5-png", "compress-q5-bmp", "x"]) {
			assert.equal(renditionByName(name), null, name);
		}
	});

	it("names a variant after the original with the output's extension", () => {
		assert.equal(variantFilename("holiday.photo.JPG", "webp"), "holiday.photo.webp");
		assert.equal(variantFilename("noext", "jpeg"), "noext.jpg");
	});
});
