/** Signed transform URLs and presets: what guests may ask of an image besides its original. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ForbiddenError, NotFoundError } from "../../../models/shared/errors.ts";
import { DEFAULT_PRESETS, parsePresets, presetQuery, transformNotAllowed } from "../../../models/transform/presets.ts";
import { parseSigningKeys, signTransform, verifyTransform } from "../../../models/transform/signing.ts";

const KEYS = parseSigningKeys("new:0123456789abcdef0123456789abcdef,old:fedcba9876543210fedcba9876543210");
const NOW = 1_800_000_000;

function refused(run: () => void, type: string): void {
	assert.throws(run, (err: unknown) => err instanceof ForbiddenError && err.type === type, type);
}

describe("signed transforms", () => {
	it("signs with the first key and verifies with any key of the list", () => {
		const query = { w: 480, format: "webp" };
		const signed = signTransform(KEYS, "img1", query);
		assert.match(signed.sig, /^new\.[\w-]{43}$/);
		verifyTransform(KEYS, "img1", { ...query, ...signed }, NOW);
		const byOld = signTransform(KEYS.slice(1), "img1", query);
		verifyTransform(KEYS, "img1", { ...query, ...byOld }, NOW);
	});

	it("normalizes the parameters: order and the spelling of the format do not matter", () => {
		const signed = signTransform(KEYS, "img1", { format: "WEBP", w: 480 });
		verifyTransform(KEYS, "img1", { w: 480, format: "webp", ...signed }, NOW);
	});

	it("refuses a changed parameter, another image, an added parameter, an unknown key and a forged signature", () => {
		const signed = signTransform(KEYS, "img1", { w: 480, format: "webp" });
		refused(() => verifyTransform(KEYS, "img1", { w: 481, format: "webp", ...signed }, NOW), "SIGNATURE_INVALID");
		refused(() => verifyTransform(KEYS, "img2", { w: 480, format: "webp", ...signed }, NOW), "SIGNATURE_INVALID");
		refused(() => verifyTransform(KEYS, "img1", { w: 480, format: "webp", q: 90, ...signed }, NOW), "SIGNATURE_INVALID");
		refused(() => verifyTransform(KEYS, "img1", { w: 480, format: "webp", sig: signed.sig.replace("new.", "gone.") }, NOW), "SIGNATURE_INVALID");
		refused(() => verifyTransform(KEYS, "img1", { w: 480, format: "webp", sig: "new.short" }, NOW), "SIGNATURE_INVALID");
		refused(() => verifyTransform(KEYS, "img1", { w: 480, format: "webp", sig: "no-key-id" }, NOW), "SIGNATURE_INVALID");
	});

	it("signs the expiry: refused once past, or when changed", () => {
		const signed = signTransform(KEYS, "img1", { w: 240 }, NOW + 60);
		assert.equal(signed.exp, NOW + 60);
		verifyTransform(KEYS, "img1", { w: 240, ...signed }, NOW + 60);
		refused(() => verifyTransform(KEYS, "img1", { w: 240, ...signed }, NOW + 61), "SIGNATURE_EXPIRED");
		refused(() => verifyTransform(KEYS, "img1", { w: 240, ...signed, exp: NOW + 6000 }, NOW), "SIGNATURE_INVALID");
	});

	it("refuses a query without a signature", () => {
		refused(() => verifyTransform(KEYS, "img1", { w: 241 }, NOW), "SIGNATURE_INVALID");
	});

	it("reads signing keys as kid:secret pairs, refusing short secrets and bad key ids", () => {
		assert.deepEqual(KEYS.map(key => key.id), ["new", "old"]);
		assert.throws(() => parseSigningKeys("k:short"), /at least 32/);
		assert.throws(() => parseSigningKeys("bad.id:0123456789abcdef0123456789abcdef"), /key id/);
		assert.throws(() => parseSigningKeys(""), /at least one/);
	});
});

describe("presets", () => {
	it("has thumb 240, small 480, medium 1080 and large 2048 on the longest side, format auto", () => {
		assert.deepEqual(presetQuery(DEFAULT_PRESETS, "small"), { w: 480, h: 480, fit: "inside", format: "auto" });
		assert.deepEqual(Object.keys(DEFAULT_PRESETS), ["thumb", "small", "medium", "large"]);
	});

	it("names the presets in the refusal of unsigned parameters", () => {
		const refusal = transformNotAllowed(DEFAULT_PRESETS);
		assert.equal(refusal.type, "TRANSFORM_NOT_ALLOWED");
		assert.match(refusal.message, /thumb, small, medium, large/);
	});

	it("answers 404 for an unknown name, never looking further than the table", () => {
		assert.throws(() => presetQuery(DEFAULT_PRESETS, "huge"), NotFoundError);
		assert.throws(() => presetQuery(DEFAULT_PRESETS, "constructor"), NotFoundError);
		assert.throws(() => presetQuery(DEFAULT_PRESETS, "__proto__"), NotFoundError);
	});

	it("reads TRANSFORM_PRESETS as JSON, checking names and parameters", () => {
		assert.deepEqual(parsePresets('{"hero":{"w":1600,"format":"webp","q":70}}'), { hero: { w: 1600, format: "webp", q: 70 } });
		assert.throws(() => parsePresets('{"../x":{"w":10}}'), /name/);
		assert.throws(() => parsePresets('{"x":{"w":"ten"}}'), /x/);
		assert.throws(() => parsePresets('{"x":{"crop":1}}'), /crop/);
		assert.throws(() => parsePresets('{"x":{"w":100000}}'), /x/);
		assert.throws(() => parsePresets("[1]"), /object/);
	});
});
