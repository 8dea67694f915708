/**
 * A JSON body parser for big requests (POST /api/imports: up to 100,000 URLs, ≈ 15 MB) that never
 * holds the event loop for long. moleculer-web's parser (body-parser) runs one JSON.parse over the
 * whole body: hundreds of milliseconds for 15 MB, during which the node answers nothing. Here the
 * body is read as it arrives (with the same limit), then parsed by a resumable parser that works
 * in slices of a few milliseconds and yields to the event loop (setImmediate) between them.
 *
 * What it accepts and builds is exactly JSON.parse's (strings with escapes go through JSON.parse
 * itself; a `__proto__` key is an own property), with body-parser's strict mode: the body must be
 * an object or an array. Errors are moleculer-web's: 400 for malformed JSON, 413 over the limit,
 * 415 for a charset or encoding it cannot read (gzip and deflate are inflated, within the limit).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { Readable } from "node:stream";
import { createGunzip, createInflate } from "node:zlib";
import { Errors } from "moleculer";
import { BadRequestError } from "../shared/errors.ts";
import { yieldToEventLoop } from "../shared/event-loop.ts";
import { MAX_JSON_DEPTH } from "./json-body.ts";

const { MoleculerClientError } = Errors;

/** How long one slice of parsing may run before yielding to the event loop. */
export const SLICE_MS = 5;

export class JsonSyntaxError extends MoleculerClientError {
	constructor(message: string) {
		super(message, 400, "entity.parse.failed");
	}
}

type Frame = { array: unknown[] } | { object: Record<string, unknown>; key: string };
type Mode = "value" | "firstValue" | "key" | "firstKey" | "after";

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
/** A string without escapes or control characters: the common case, taken as is. */
const PLAIN_STRING = /"([^"\\\u0000-\u001f]*)"/y;
const WHITESPACE = /[ \t\n\r]*/y;

/**
 * JSON.parse in resumable steps: `step(deadline)` parses until done (true) or until the clock
 * passes `deadline` (false; call again). An explicit stack instead of recursion, so no nesting
 * depth overflows it.
 */
export class SlicedJsonParser {
	private pos = 0;
	private mode: Mode = "value";
	private readonly stack: Frame[] = [];
	private done = false;
	private readonly text: string;
	result: unknown;

	constructor(text: string, strict = true) {
		this.text = text;
		this.skipWhitespace();
		const first = text[this.pos];
		if (strict && first !== "{" && first !== "[") throw this.unexpected();
	}

	step(deadline: number): boolean {
		let tokens = 0;
		while (!this.done) {
			if (++tokens % 256 === 0 && performance.now() > deadline) return false;
			this.token();
		}
		return true;
	}

	private token(): void {
		this.skipWhitespace();
		const text = this.text;
		const ch = text[this.pos];
		if ((this.mode === "firstValue" && ch === "]") || (this.mode === "firstKey" && ch === "}")) return this.close();
		switch (this.mode) {
			case "firstValue":
			case "value":
				return this.value(ch);
			case "firstKey":
			case "key": {
				if (ch !== '"') throw this.unexpected();
				const key = this.string();
				this.skipWhitespace();
				if (text[this.pos] !== ":") throw this.unexpected();
				this.pos++;
				(this.stack.at(-1) as { key: string }).key = key;
				this.mode = "value";
				return;
			}
			case "after": {
				const top = this.stack.at(-1);
				if (!top) {
					if (this.pos !== text.length) throw this.unexpected();
					this.done = true;
					return;
				}
				if (ch === ",") {
					this.pos++;
					this.mode = "array" in top ? "value" : "key";
					return;
				}
				if (ch === ("array" in top ? "]" : "}")) return this.close();
				throw this.unexpected();
			}
		}
	}

	/** One level deeper; as deep as the other JSON routes allow (everything that walks the result recurses). */
	private open(frame: Frame): void {
		if (this.stack.length >= MAX_JSON_DEPTH) {
			throw new BadRequestError(`The JSON body is nested more than ${MAX_JSON_DEPTH} levels deep`, "JSON_TOO_DEEP", { maxDepth: MAX_JSON_DEPTH });
		}
		this.stack.push(frame);
	}

	private value(ch: string | undefined): void {
		const text = this.text;
		switch (ch) {
			case "{":
				this.pos++;
				this.open({ object: {}, key: "" });
				this.mode = "firstKey";
				return;
			case "[":
				this.pos++;
				this.open({ array: [] });
				this.mode = "firstValue";
				return;
			case '"':
				return this.emit(this.string());
			case "t":
			case "f":
			case "n": {
				const word = ch === "t" ? "true" : ch === "f" ? "false" : "null";
				if (!text.startsWith(word, this.pos)) throw this.unexpected();
				this.pos += word.length;
				return this.emit(ch === "t" ? true : ch === "f" ? false : null);
			}
			default: {
				NUMBER.lastIndex = this.pos;
				const match = NUMBER.exec(text);
				if (!match) throw this.unexpected();
				this.pos += match[0].length;
				return this.emit(Number(match[0]));
			}
		}
	}

	/** The string starting at pos (a `"`); escapes are decoded by JSON.parse of that string alone. */
	private string(): string {
		const text = this.text;
		PLAIN_STRING.lastIndex = this.pos;
		const plain = PLAIN_STRING.exec(text);
		if (plain) {
			this.pos = PLAIN_STRING.lastIndex;
			return plain[1]!;
		}
		let end = this.pos;
		for (;;) {
			end = text.indexOf('"', end + 1);
			if (end < 0) throw this.unexpected(text.length);
			let backslashes = 0;
			while (text[end - 1 - backslashes] === "\\") backslashes++;
			if (backslashes % 2 === 0) break;
		}
		let value: string;
		try {
			value = JSON.parse(text.slice(this.pos, end + 1));
		} catch {
			throw new JsonSyntaxError(`Invalid string in JSON at position ${this.pos}`);
		}
		this.pos = end + 1;
		return value;
	}

	private emit(value: unknown): void {
		this.mode = "after";
		const top = this.stack.at(-1);
		if (!top) this.result = value;
		else if ("array" in top) top.array.push(value);
		// JSON.parse makes "__proto__" an own property; plain assignment would set the prototype.
		else if (top.key === "__proto__") Object.defineProperty(top.object, "__proto__", { value, writable: true, enumerable: true, configurable: true });
		else top.object[top.key] = value;
	}

	private close(): void {
		this.pos++;
		const frame = this.stack.pop()!;
		this.emit("array" in frame ? frame.array : frame.object);
	}

	private skipWhitespace(): void {
		// Most tokens follow one another directly (JSON.stringify writes no whitespace).
		const code = this.text.charCodeAt(this.pos);
		if (code !== 0x20 && code !== 0x0a && code !== 0x0d && code !== 0x09) return;
		WHITESPACE.lastIndex = this.pos;
		WHITESPACE.exec(this.text);
		this.pos = WHITESPACE.lastIndex;
	}

	private unexpected(at = this.pos): JsonSyntaxError {
		return at >= this.text.length
			? new JsonSyntaxError("Unexpected end of JSON input")
			: new JsonSyntaxError(`Unexpected token ${JSON.stringify(this.text[at])} in JSON at position ${at}`);
	}
}

/** JSON.parse, in slices of about `sliceMs`, yielding to the event loop between them. */
export async function parseJsonInSlices(text: string, { strict = true, sliceMs = SLICE_MS } = {}): Promise<unknown> {
	const parser = new SlicedJsonParser(text, strict);
	while (!parser.step(performance.now() + sliceMs)) await yieldToEventLoop();
	return parser.result;
}

/** Reads a request body as UTF-8 text, inflating gzip/deflate, refusing more than `limit` bytes. */
export async function readTextBody(req: IncomingMessage, limit: number): Promise<string> {
	const declared = Number(req.headers["content-length"]);
	const tooLarge = () => new MoleculerClientError("request entity too large", 413, "entity.too.large", { limit });
	const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase();
	let source: Readable = req;
	if (encoding === "gzip") source = req.pipe(createGunzip());
	else if (encoding === "deflate") source = req.pipe(createInflate());
	else if (encoding !== "identity") throw new MoleculerClientError(`unsupported content encoding "${encoding}"`, 415, "encoding.unsupported");
	if (encoding === "identity" && declared > limit) {
		req.resume();
		throw tooLarge();
	}
	source.setEncoding("utf8");
	const parts: string[] = [];
	let bytes = 0;
	try {
		for await (const chunk of source as AsyncIterable<string>) {
			bytes += Buffer.byteLength(chunk);
			if (bytes > limit) throw tooLarge();
			parts.push(chunk);
		}
	} catch (err) {
		// Whatever the client still sends is read and dropped, so that the error can be answered.
		req.resume();
		if ((err as { code?: unknown }).code === 413) throw err;
		if ((err as { code?: string }).code?.startsWith("Z_")) throw new MoleculerClientError("invalid compressed body", 400, "entity.parse.failed");
		throw err;
	}
	return parts.join("");
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * A connect-style middleware for a moleculer-web route (`use: [jsonBodyInSlices({ limit })]`,
 * with `bodyParsers: false`): sets `req.body` as moleculer-web's JSON parser would, without a
 * long turn of the event loop. Bodies that are not JSON are left unread (`req.body` = {}).
 */
export function jsonBodyInSlices({ limit }: { limit: number }) {
	return function jsonBody(req: IncomingMessage & { body?: unknown }, _res: ServerResponse, next: (err?: unknown) => void): void {
		const type = req.headers["content-type"] ?? "";
		if (req.body !== undefined || !JSON_TYPE.test(type)) {
			req.body ??= {};
			return next();
		}
		const charset = /;\s*charset=["']?([\w-]+)/i.exec(type)?.[1]?.toLowerCase();
		if (charset && charset !== "utf-8" && charset !== "utf8") {
			req.resume();
			return next(new MoleculerClientError(`unsupported charset "${charset.toUpperCase()}"`, 415, "charset.unsupported"));
		}
		readTextBody(req, limit)
			.then(text => (text.trim() === "" ? {} : parseJsonInSlices(text)))
			.then(
				body => {
					req.body = body;
					next();
				},
				next
			);
	};
}
