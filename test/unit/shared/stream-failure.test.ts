import assert from "node:assert/strict";
import { PassThrough, Readable, Transform } from "node:stream";
import { buffer } from "node:stream/consumers";
import { describe, it } from "node:test";
import { holdFailure } from "../../../models/shared/stream-failure.ts";

const tick = () => new Promise(resolve => setImmediate(resolve));

describe("holdFailure", () => {
	it("passes the bytes of a stream that ends well", async () => {
		assert.equal((await buffer(holdFailure(Readable.from([Buffer.from("abc"), Buffer.from("def")])))).toString(), "abcdef");
	});

	it("gives a reader that comes late the failure of a source destroyed before it was even wrapped", async () => {
		const source = new PassThrough();
		source.on("error", () => undefined);
		source.destroy(new Error("refused"));
		const held = holdFailure(source);
		await tick();
		await assert.rejects(buffer(held), /refused/);
	});

	it("keeps an 'error' emitted before any reader from throwing, and from being lost to the end that follows it", async () => {
		// What Moleculer's transit does with a remote caller's failure: emit 'error', then end().
		const source = new Transform({ transform: (chunk, _encoding, done) => done(null, chunk) });
		const held = holdFailure(source);
		source.write("partial");
		source.emit("error", new Error("caller failed"));
		source.end();
		await tick();
		await assert.rejects(buffer(held), /caller failed/);
	});
});
