import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseRange } from "../../../models/http/range.ts";

describe("parseRange", () => {
	const size = 1000;
	for (const [header, expected] of [
		[undefined, null],
		["bytes=0-99", { start: 0, end: 99 }],
		["bytes=900-", { start: 900, end: 999 }],
		["bytes=900-5000", { start: 900, end: 999 }],
		["bytes=-100", { start: 900, end: 999 }],
		["bytes=-5000", { start: 0, end: 999 }],
		["bytes=1000-", "unsatisfiable"],
		["bytes=-0", "unsatisfiable"],
		["bytes=5-1", null],
		["bytes=0-1,5-9", null],
		["items=0-1", null],
		["bytes=abc", null],
		["bytes=-", null],
		["bytes=1e3-", null]
	] as const) {
		it(`${header ?? "no header"} -> ${JSON.stringify(expected)}`, () => {
			assert.deepEqual(parseRange(header, size), expected);
		});
	}
});
