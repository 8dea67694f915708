import assert from "node:assert/strict";
import { describe, it } from "node:test";
import jwt from "jsonwebtoken";
import { ShareAccessSigner } from "../../../models/shares/access-token.ts";
import { TokenSigner } from "../../../models/users/token.ts";

const SECRET = "a-secret-of-the-tests-a-secret-of-the-tests";

describe("share access tokens", () => {
	const signer = new ShareAccessSigner(SECRET, 60);
	const link = { id: "share-1", passwordHash: "scrypt$16384$8$1$salt$hash" };

	it("open the link they were issued for, with its password, nothing else", () => {
		const token = signer.issue(link);
		assert.equal(signer.opens(token, link), true);
		assert.equal(signer.opens(token, { ...link, id: "share-2" }), false, "another link");
		assert.equal(signer.opens(token, { ...link, passwordHash: "scrypt$16384$8$1$salt$other" }), false, "a new password");
		assert.equal(new ShareAccessSigner("another-secret-another-secret-another", 60).opens(token, link), false, "another secret");
		assert.equal(signer.opens("garbage", link), false);
	});

	it("user tokens open no link", () => {
		const users = new TokenSigner(SECRET, 60);
		const userToken = users.issue({ id: link.id, username: "alice", role: "user", tokenVersion: 0 }).token;
		assert.equal(signer.opens(userToken, link), false);
	});

	it("expire, and refuse other algorithms", () => {
		const expired = jwt.sign({ pw: "x" }, SECRET, { algorithm: "HS256", audience: "imgmesh-share", subject: link.id, expiresIn: -10 });
		assert.equal(signer.opens(expired, link), false);
		const unsigned = jwt.sign({ pw: "x" }, "", { algorithm: "none", audience: "imgmesh-share", subject: link.id });
		assert.equal(signer.opens(unsigned, link), false);
	});
});
