/** The sliced JSON parser: the same values and the same refusals as JSON.parse, in slices. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseJsonInSlices, SlicedJsonParser } from "../../../models/http/sliced-json-body.ts";

const VALID = [
	"{}",
	"[]",
	' { "a" : 1 , "b" : [ true , false , null , -0.5e3 , 1E-2 , 0 ] } ',
	'{"s":"plain","e":"tab\\t quote\\" slash\\\\ \\/ \\u00e9 \\ud83d\\ude00","k\\u0041":"x"}',
	'["\\\\", "a\\\\\\"b", "", "ünïcødé 😀"]',
	'{"dup":1,"dup":2}',
	'{"__proto__":{"polluted":true},"constructor":1}',
	'[[[[[[[[[[{"deep":[[]]}]]]]]]]]]]',
	'{"source":"urls","urls":["http://e.com/a?x=1&y=2#f","http://e.com/b"]}',
	"[1.5, -2, 3e10, 12345678901234567890]"
];

const INVALID = ["", "   ", "{", "[", '{"a"}', '{"a":}', "[1,]", '{"a":1,}', "[01]", "[1.]", "[.5]", "[+1]", '["\\x"]', '["a\nb"]', '["open', "[tru]", "[nul]", "{} {}", "[1 2]", '{a:1}', "{'a':1}", "[-]"];

describe("SlicedJsonParser", () => {
	it("builds exactly what JSON.parse builds", async () => {
		for (const text of VALID) {
			const parsed = (await parseJsonInSlices(text)) as object;
			assert.deepEqual(parsed, JSON.parse(text), text);
			assert.equal(Object.getPrototypeOf(parsed), Object.getPrototypeOf(JSON.parse(text)), text);
		}
		const proto = (await parseJsonInSlices('{"__proto__":{"polluted":true}}')) as Record<string, unknown>;
		assert.ok(Object.hasOwn(proto, "__proto__"), "an own property, as with JSON.parse");
		assert.equal(({} as Record<string, unknown>).polluted, undefined);
	});

	it("refuses what JSON.parse refuses, with a 400", async () => {
		for (const text of INVALID) {
			assert.throws(() => JSON.parse(text), text);
			await assert.rejects(parseJsonInSlices(text, { strict: false }), (err: { code: number; type: string }) => err.code === 400 && err.type === "entity.parse.failed", text);
		}
	});

	it("takes only an object or an array in strict mode, as body-parser", async () => {
		for (const text of ['"a"', "1", "true", "null"]) await assert.rejects(parseJsonInSlices(text), { code: 400 }, text);
		assert.equal(await parseJsonInSlices('"a"', { strict: false }), "a");
	});

	it("parses a 15 MB import body in many slices", async () => {
		const body = JSON.stringify({ source: "urls", urls: Array.from({ length: 100_000 }, (_, i) => `http://example.com/images/${i}/photo-${"x".repeat(100)}.jpg?i=${i}`) });
		assert.ok(body.length > 14_000_000);
		const parser = new SlicedJsonParser(body);
		let slices = 1;
		while (!parser.step(0)) slices++;
		assert.ok(slices > 100, `${slices} slices`);
		assert.deepEqual(parser.result, JSON.parse(body));
	});
});
