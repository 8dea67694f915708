import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nestedDeeperThan } from "../../../models/http/json-body.ts";

const depth = (text: string, max: number) => nestedDeeperThan(Buffer.from(text), max);

describe("nestedDeeperThan", () => {
	it("counts objects and arrays inside each other", () => {
		assert.equal(depth('{"a":[1,{"b":[]}]}', 4), false);
		assert.equal(depth('{"a":[1,{"b":[]}]}', 3), true);
		assert.equal(depth("[][][][]", 1), false);
	});

	it("ignores brackets inside strings, escaped quotes included", () => {
		assert.equal(depth('{"a":"[[[[{{{{"}', 1), false);
		assert.equal(depth('{"a":"\\"[[[["}', 1), false);
		assert.equal(depth('["\\\\",[[]]]', 2), true);
	});
});
