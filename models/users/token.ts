/**
 * Access tokens: HS256 JWTs whose subject is the user id, signed by the users service and
 * verified by the gateway, both with the one secret from the configuration. The algorithm is
 * pinned on both sides, so a token signed any other way (`none`, RS256 with the secret as a
 * public key) never verifies. The `ver` claim is the user's token version at issue: the gateway
 * refuses a token whose version is no longer the user's (see UserRecord.tokenVersion).
 */
import jwt from "jsonwebtoken";
import { createSecretKey, type KeyObject } from "node:crypto";
import { UnauthorizedError } from "../shared/errors.ts";
import type { UserRecord } from "./user.ts";

const ALGORITHM = "HS256";

/** Tokens whose verification is remembered, the oldest forgotten first: a few MB at most. */
const VERIFIED_TOKENS = 10_000;

export interface TokenClaims {
	userId: string;
	tokenVersion: number;
}

export class TokenSigner {
	// Made once: given the secret as a string, jsonwebtoken would build this key on every call.
	readonly #key: KeyObject;
	readonly #expiresInSeconds: number;
	/**
	 * Tokens verified already, with their claims and expiry (ms): a client sends the same token
	 * with every request, and checking its signature again was 5 % of a 304's CPU. Keyed by the
	 * whole token, signature included, so only the very token verified is taken from here.
	 */
	readonly #verified = new Map<string, { claims: TokenClaims; expiresAt: number }>();

	constructor(secret: string, expiresInSeconds: number) {
		this.#key = createSecretKey(Buffer.from(secret));
		this.#expiresInSeconds = expiresInSeconds;
	}

	issue(user: Pick<UserRecord, "id" | "username" | "role" | "tokenVersion">): { token: string; expiresIn: number } {
		const token = jwt.sign({ username: user.username, role: user.role, ver: user.tokenVersion }, this.#key, {
			algorithm: ALGORITHM,
			subject: user.id,
			expiresIn: this.#expiresInSeconds
		});
		return { token, expiresIn: this.#expiresInSeconds };
	}

	/** Whom a valid, unexpired token was issued to, and at which token version; UnauthorizedError otherwise. */
	verify(token: string): TokenClaims {
		const known = this.#verified.get(token);
		// Past its expiry it is verified again, which refuses it as expired.
		if (known && Date.now() < known.expiresAt) return known.claims;
		try {
			const payload = jwt.verify(token, this.#key, { algorithms: [ALGORITHM] });
			if (typeof payload === "string" || !payload.sub) throw new Error("no subject");
			// Tokens issued before versions existed have none: version 0, every account's first.
			const version = payload.ver ?? 0;
			if (!Number.isSafeInteger(version)) throw new Error("bad version");
			const claims = { userId: payload.sub, tokenVersion: version };
			if (payload.exp !== undefined) this.#remember(token, claims, payload.exp * 1000);
			return claims;
		} catch (err) {
			const expired = err instanceof jwt.TokenExpiredError;
			throw new UnauthorizedError(expired ? "Token expired" : "Invalid token", expired ? "TOKEN_EXPIRED" : "INVALID_TOKEN");
		}
	}

	#remember(token: string, claims: TokenClaims, expiresAt: number): void {
		this.#verified.delete(token);
		if (this.#verified.size >= VERIFIED_TOKENS) this.#verified.delete(this.#verified.keys().next().value!);
		this.#verified.set(token, { claims, expiresAt });
	}
}
