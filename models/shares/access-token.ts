/**
 * Access tokens of unlocked share links: short-lived HS256 JWTs, signed with the users' JWT
 * secret but for an audience of their own, so a user's token never opens a link and an access
 * token never signs anyone in (it has no user as subject: users.identify refuses it). Each is
 * bound to one link (its subject) and to that link's password at the time (a stamp of the
 * password's hash): a new password shuts out everyone who unlocked the link with the old one.
 */
import jwt from "jsonwebtoken";
import { createHash, createSecretKey, type KeyObject } from "node:crypto";
import type { ShareDoc } from "./share.ts";

const ALGORITHM = "HS256";
const AUDIENCE = "imgmesh-share";

/** Enough of the password hash's digest to tell two passwords apart; it reveals nothing of either. */
function passwordStamp(share: Pick<ShareDoc, "passwordHash">): string {
	return createHash("sha256").update(share.passwordHash ?? "").digest("base64url").slice(0, 16);
}

export class ShareAccessSigner {
	readonly #key: KeyObject;
	readonly expiresInSeconds: number;

	constructor(secret: string, expiresInSeconds: number) {
		this.#key = createSecretKey(Buffer.from(secret));
		this.expiresInSeconds = expiresInSeconds;
	}

	issue(share: Pick<ShareDoc, "id" | "passwordHash">): string {
		return jwt.sign({ pw: passwordStamp(share) }, this.#key, { algorithm: ALGORITHM, audience: AUDIENCE, subject: share.id, expiresIn: this.expiresInSeconds });
	}

	/** Whether `token` is a valid, unexpired access token of this link with its current password. */
	opens(token: string, share: Pick<ShareDoc, "id" | "passwordHash">): boolean {
		try {
			const payload = jwt.verify(token, this.#key, { algorithms: [ALGORITHM], audience: AUDIENCE, subject: share.id });
			return typeof payload === "object" && payload.pw === passwordStamp(share);
		} catch {
			return false;
		}
	}
}
