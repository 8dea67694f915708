/**
 * JSON request bodies as the gateway parses them (moleculer-web's `bodyParsers.json`, which is
 * body-parser's). A body nested too deep is refused before JSON.parse: parsing it is cheap, but
 * everything that walks the result afterwards (validation, cloning, serialising to another node)
 * recurses, and a stack overflow there is a 500 for a malformed request.
 */
import { BadRequestError } from "../shared/errors.ts";

/** Far deeper than any body of this API (an import request is 2 levels). */
export const MAX_JSON_DEPTH = 64;

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const CLOSE_OBJECT = 0x7d; // }
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/** True when `body` (JSON text, UTF-8) opens more than `max` objects or arrays inside each other; brackets in strings do not count. */
export function nestedDeeperThan(body: Uint8Array, max: number): boolean {
	let depth = 0;
	let inString = false;
	for (let i = 0; i < body.length; i++) {
		const byte = body[i];
		if (inString) {
			if (byte === BACKSLASH) i++;
			else if (byte === QUOTE) inString = false;
		} else if (byte === QUOTE) {
			inString = true;
		} else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
			if (++depth > max) return true;
		} else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
			depth--;
		}
	}
	return false;
}

/**
 * body-parser's `verify` hook: runs on the raw bytes before they are parsed. body-parser wraps
 * what it throws, and moleculer-web answers with the error's `code` (400) and `type`.
 */
function refuseDeepNesting(_req: unknown, _res: unknown, body: Buffer): void {
	if (nestedDeeperThan(body, MAX_JSON_DEPTH)) {
		throw new BadRequestError(`The JSON body is nested more than ${MAX_JSON_DEPTH} levels deep`, "JSON_TOO_DEEP", { maxDepth: MAX_JSON_DEPTH });
	}
}

/** The options of moleculer-web's JSON body parser: objects and arrays only, at most `limit`, bounded nesting. */
export function jsonBody(limit: string) {
	return { strict: true, limit, verify: refuseDeepNesting };
}
