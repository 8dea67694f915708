/** Access tokens: a token verified once is taken from memory after, but never past its expiry nor with another signature. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TokenSigner } from "../../../models/users/token.ts";

const user = { id: "u1", username: "alice", role: "user" as const, tokenVersion: 3 };

describe("TokenSigner", () => {
	it("answers a token verified before with the same claims, and still refuses a tampered copy", () => {
		const signer = new TokenSigner("a-secret-of-enough-length-for-hs256", 3600);
		const { token } = signer.issue(user);
		assert.deepEqual(signer.verify(token), { userId: "u1", tokenVersion: 3 });
		assert.deepEqual(signer.verify(token), { userId: "u1", tokenVersion: 3 });
		const [header, payload, signature] = token.split(".");
		const tampered = `${header}.${payload}.${signature!.slice(0, -2)}${signature!.endsWith("AA") ? "BB" : "AA"}`;
		assert.throws(() => signer.verify(tampered), { type: "INVALID_TOKEN" });
		const other = new TokenSigner("another-secret-of-enough-length-for-it", 3600);
		assert.throws(() => other.verify(token), { type: "INVALID_TOKEN" }, "another secret never takes it from the first's memory");
	});

	it("refuses a token it verified before once it has expired", async () => {
		const signer = new TokenSigner("a-secret-of-enough-length-for-hs256", 1);
		const { token } = signer.issue(user);
		assert.deepEqual(signer.verify(token), { userId: "u1", tokenVersion: 3 });
		const { exp } = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { exp: number };
		await new Promise(resolve => setTimeout(resolve, exp * 1000 - Date.now() + 20));
		assert.throws(() => signer.verify(token), { type: "TOKEN_EXPIRED" });
	});
});
