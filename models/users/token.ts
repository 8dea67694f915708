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

export interface TokenClaims {
	userId: string;
	tokenVersion: number;
}

export class TokenSigner {
	// Made once: given the secret as a string, jsonwebtoken would build this key on every call.
	readonly #key: KeyObject;
	readonly #expiresInSeconds: number;

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
		try {
			const payload = jwt.verify(token, this.#key, { algorithms: [ALGORITHM] });
			if (typeof payload === "string" || !payload.sub) throw new Error("no subject");
			// Tokens issued before versions existed have none: version 0, every account's first.
			const version = payload.ver ?? 0;
			if (!Number.isSafeInteger(version)) throw new Error("bad version");
			return { userId: payload.sub, tokenVersion: version };
		} catch (err) {
			const expired = err instanceof jwt.TokenExpiredError;
			throw new UnauthorizedError(expired ? "Token expired" : "Invalid token", expired ? "TOKEN_EXPIRED" : "INVALID_TOKEN");
		}
	}
}
