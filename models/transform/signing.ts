/**
 * Signed transform URLs, as imgproxy signs its paths: an HMAC-SHA256, under a key the operator
 * configures, of the image's path and the normalized transform parameters (and the expiry, if
 * any). Whoever may see an image gets one from GET /api/images/:id/url and hands it to guests,
 * who may then fetch exactly that variant and nothing else: change one parameter, the image or
 * the expiry and the signature no longer matches (docs/sharing.md).
 *
 * The signature is `<key id>.<base64url MAC>` in `?sig=`; the expiry (Unix seconds) in `?exp=`.
 * Several keys make rotation possible: the first signs, all verify. The signed path is the
 * image's (`/images/<id>`), not the route's, so one URL's parameters are valid on every route
 * that serves that image to guests (/p/, /api/images/:id/content, share links).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { ForbiddenError } from "../shared/errors.ts";
import { TRANSFORM_KEYS, type TransformQuery } from "./spec.ts";

export interface SigningKey {
	id: string;
	secret: string;
}

/** How a request carries its signature. */
export interface Signature {
	sig?: string;
	exp?: number;
}

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const MIN_SECRET_LENGTH = 32;

/** TRANSFORM_SIGNING_KEYS: `kid:secret` pairs, comma-separated, the signing key first. */
export function parseSigningKeys(raw: string): SigningKey[] {
	const keys = raw
		.split(",")
		.map(pair => pair.trim())
		.filter(Boolean)
		.map(pair => {
			const colon = pair.indexOf(":");
			const id = colon > 0 ? pair.slice(0, colon) : "";
			const secret = pair.slice(colon + 1);
			if (!KEY_ID.test(id)) throw new Error(`TRANSFORM_SIGNING_KEYS: each key is kid:secret with a key id of A-Z, a-z, 0-9, _ and -, got "${id}"`);
			if (secret.length < MIN_SECRET_LENGTH) throw new Error(`TRANSFORM_SIGNING_KEYS: the secret of key "${id}" must be at least ${MIN_SECRET_LENGTH} characters`);
			return { id, secret };
		});
	if (keys.length === 0) throw new Error("TRANSFORM_SIGNING_KEYS needs at least one kid:secret");
	return keys;
}

/**
 * What is signed: the image's path, then each transform parameter present in a fixed order, as
 * the validator converted it (numbers as numbers: `w=0480` and `w=480` are the same request) and
 * the format in lower case, then the expiry. Never anything the caller may add unsigned.
 */
function canonical(id: string, query: TransformQuery, exp: number | undefined): string {
	const params = TRANSFORM_KEYS.filter(key => query[key] !== undefined).map(key => {
		const value = query[key]!;
		return `${key}=${typeof value === "string" ? value.toLowerCase() : String(value)}`;
	});
	if (exp !== undefined) params.push(`exp=${exp}`);
	return `/images/${id}?${params.join("&")}`;
}

function mac(secret: string, message: string): Buffer {
	return createHmac("sha256", secret).update(message).digest();
}

/** The signature (with the first key) of these parameters of image `id`, valid until `exp` if given. */
export function signTransform(keys: readonly SigningKey[], id: string, query: TransformQuery, exp?: number): Required<Pick<Signature, "sig">> & Signature {
	const key = keys[0]!;
	const sig = `${key.id}.${mac(key.secret, canonical(id, query, exp)).toString("base64url")}`;
	return exp === undefined ? { sig } : { sig, exp };
}

/**
 * Refuses (403) parameters whose signature does not match them under any of `keys`
 * (SIGNATURE_INVALID), or whose expiry is before `now` (Unix seconds; SIGNATURE_EXPIRED).
 */
export function verifyTransform(keys: readonly SigningKey[], id: string, query: TransformQuery & Signature, now: number): void {
	const invalid = new ForbiddenError("The transform's signature does not match its parameters", "SIGNATURE_INVALID");
	const dot = query.sig?.indexOf(".") ?? -1;
	if (!query.sig || dot < 0) throw invalid;
	const key = keys.find(candidate => candidate.id === query.sig!.slice(0, dot));
	const given = Buffer.from(query.sig.slice(dot + 1), "base64url");
	const expected = key && mac(key.secret, canonical(id, query, query.exp));
	if (!expected || given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid;
	if (query.exp !== undefined && query.exp < now) throw new ForbiddenError("The signed transform URL has expired", "SIGNATURE_EXPIRED");
}
