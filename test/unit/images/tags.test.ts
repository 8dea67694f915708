import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hashtagsOf, tagList } from "../../../models/images/tags.ts";

describe("tags", () => {
	it("normalizes a comma list: trimmed, lower-case, distinct, no empties", () => {
		assert.deepEqual(tagList(" Dog, dog ,,Red  Car, "), ["dog", "red car"]);
		assert.deepEqual(tagList(["A", "b", "a"]), ["a", "b"]);
		assert.deepEqual(tagList(undefined), []);
	});

	it("caps label length and count", () => {
		assert.equal(tagList("x".repeat(80))[0]!.length, 50);
		assert.equal(tagList(Array.from({ length: 80 }, (_, i) => `t${i}`)).length, 50);
	});

	it("finds #hashtags in Unicode text", () => {
		assert.deepEqual(hashtagsOf("Sunset at the #Beach, #été and #beach again; not#a-tag? #"), ["beach", "été", "a-tag"]);
	});

	it("scans hostile input in linear time", () => {
		assert.equal(hashtagsOf("#".repeat(100_000)).length, 0);
		assert.equal(hashtagsOf(`#${"a".repeat(100_000)}`).length, 1);
	});
});
