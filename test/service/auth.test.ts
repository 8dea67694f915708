/** Accounts and tokens over REST: register, login, profile, admin, and every bad credential. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import jwt from "jsonwebtoken";
import { Client } from "../helpers/client.ts";
import { ADMIN_PASSWORD, startServer, type RunningServer } from "../helpers/server.ts";

const JWT_SECRET = "test-secret-that-is-long-enough-0123456789";

describe("auth", () => {
	let server: RunningServer;
	let anon: Client;

	before(async () => {
		server = await startServer({ JWT_SECRET });
		anon = new Client(server.url);
	});
	after(() => server.stop());

	it("registers a user and returns a token with the user", async () => {
		const res = await anon.post("/api/auth/register", { username: "alice", password: "password123", name: "Alice" });
		assert.equal(res.status, 201);
		assert.equal(res.body.user.username, "alice");
		assert.equal(res.body.user.name, "Alice");
		assert.equal(res.body.user.role, "user");
		assert.equal(res.body.user.passwordHash, undefined);
		const claims = jwt.verify(res.body.token, JWT_SECRET) as jwt.JwtPayload;
		assert.equal(claims.sub, res.body.user.id);
	});

	it("refuses a taken username with 409", async () => {
		const res = await anon.post("/api/auth/register", { username: "alice", password: "password456" });
		assert.equal(res.status, 409);
		assert.equal(res.body.type, "USERNAME_TAKEN");
	});

	for (const [label, body] of [
		["short username", { username: "al", password: "password123" }],
		["upper-case username", { username: "Alice2", password: "password123" }],
		["username with a slash", { username: "a/b/c", password: "password123" }],
		["short password", { username: "bob", password: "short" }],
		["missing password", { username: "bob" }],
		["unknown field", { username: "bob", password: "password123", role: "admin" }],
		["$-prefixed field", { username: "bob", password: "password123", $where: "1" }],
		["non-string username", { username: { $gt: "" }, password: "password123" }]
	] as const) {
		it(`answers 400 with a JSON error for ${label}`, async () => {
			const res = await anon.post("/api/auth/register", body);
			assert.equal(res.status, 400);
			assert.equal(res.body.name, "ValidationError");
			assert.equal(res.body.code, 400);
			assert.ok(res.body.message);
		});
	}

	it("logs in with JSON and with a form, and refuses bad credentials alike", async () => {
		const json = await anon.post("/api/auth/login", { username: "alice", password: "password123" });
		assert.equal(json.status, 200);
		assert.ok(json.body.token);
		assert.ok(json.body.expiresIn > 0);
		assert.equal(json.body.user.username, "alice");

		const form = await anon.request("POST", "/api/auth/login", "username=alice&password=password123", {
			"content-type": "application/x-www-form-urlencoded"
		});
		assert.equal(form.status, 200);

		const wrongPassword = await anon.post("/api/auth/login", { username: "alice", password: "nope-nope-nope" });
		const unknownUser = await anon.post("/api/auth/login", { username: "nobody", password: "nope-nope-nope" });
		assert.equal(wrongPassword.status, 401);
		assert.equal(unknownUser.status, 401);
		assert.equal(wrongPassword.body.message, unknownUser.body.message);
	});

	it("shows and updates the profile, and the new password works", async () => {
		const alice = await anon.login("alice", "password123");
		const me = await alice.get("/api/auth/me");
		assert.equal(me.status, 200);
		assert.equal(me.body.username, "alice");

		const patched = await alice.patch("/api/auth/me", { name: "Alice A.", password: "new-password-1" });
		assert.equal(patched.status, 200);
		assert.equal(patched.body.name, "Alice A.");
		await assert.rejects(anon.login("alice", "password123"));
		await anon.login("alice", "new-password-1");
	});

	it("answers 401 for missing, malformed, forged and expired tokens", async () => {
		const alice = await anon.login("alice", "new-password-1");
		const sub = (jwt.decode(alice.token!) as jwt.JwtPayload).sub!;
		const forged = jwt.sign({ role: "admin" }, "some-other-secret-that-is-long-enough", { subject: sub });
		const expired = jwt.sign({}, JWT_SECRET, { subject: sub, expiresIn: -10 });
		const noneAlg = jwt.sign({}, "", { subject: sub, algorithm: "none" });
		const cases: [string, Record<string, string>][] = [
			["missing", {}],
			["not bearer", { authorization: `Basic ${alice.token}` }],
			["garbage", { authorization: "Bearer not.a.jwt" }],
			["forged", { authorization: `Bearer ${forged}` }],
			["alg none", { authorization: `Bearer ${noneAlg}` }],
			["expired", { authorization: `Bearer ${expired}` }]
		];
		for (const [label, headers] of cases) {
			const res = await anon.get("/api/auth/me", headers);
			assert.equal(res.status, 401, label);
			assert.equal(res.body.code, 401, label);
		}
		const res = await anon.get("/api/auth/me", { authorization: `Bearer ${expired}` });
		assert.equal(res.body.type, "TOKEN_EXPIRED");
	});

	it("creates the configured admin, who manages users; others cannot", async () => {
		const admin = await anon.login("admin", ADMIN_PASSWORD);
		const alice = await anon.login("alice", "new-password-1");
		assert.equal((await alice.get("/api/users")).status, 403);

		const list = await admin.get("/api/users");
		assert.equal(list.status, 200);
		const aliceRow = list.body.items.find((user: { username: string }) => user.username === "alice");
		assert.ok(aliceRow);

		const disabled = await admin.patch(`/api/users/${aliceRow.id}`, { disabled: true });
		assert.equal(disabled.status, 200);
		assert.equal(disabled.body.disabled, true);
		// The token alice already holds stops working at once, and she cannot log in.
		assert.equal((await alice.get("/api/auth/me")).status, 401);
		assert.equal((await anon.post("/api/auth/login", { username: "alice", password: "new-password-1" })).status, 401);
		await admin.patch(`/api/users/${aliceRow.id}`, { disabled: false });
		// Enabling the account again does not bring back the tokens issued before it was disabled.
		assert.equal((await alice.get("/api/auth/me")).status, 401);
		assert.equal((await (await anon.login("alice", "new-password-1")).get("/api/auth/me")).status, 200);
	});

	it("refuses every token issued before a password change, and takes the next login at once", async () => {
		const dave = await anon.register("dave");
		const otherSession = await anon.login("dave", "correct horse battery");
		const changed = await dave.patch("/api/auth/me", { password: "a-brand-new-password" });
		assert.equal(changed.status, 200);
		// Both old tokens were issued within the same second as the change: neither survives it.
		assert.equal((await dave.get("/api/auth/me")).status, 401);
		const refused = await otherSession.get("/api/auth/me");
		assert.equal(refused.status, 401);
		assert.equal(refused.body.type, "TOKEN_REVOKED");
		// A login right after the change (same second) works.
		const fresh = await anon.login("dave", "a-brand-new-password");
		assert.equal((await fresh.get("/api/auth/me")).status, 200);
		// A profile change without a password keeps the tokens.
		assert.equal((await fresh.patch("/api/auth/me", { name: "Dave" })).status, 200);
		assert.equal((await fresh.get("/api/auth/me")).status, 200);
	});

	it("signs out everywhere: POST /api/auth/logout-all revokes every token of the caller only", async () => {
		const erin = await anon.register("erin");
		const phone = await anon.login("erin", "correct horse battery");
		const frank = await anon.register("frank");
		const res = await erin.post("/api/auth/logout-all");
		assert.equal(res.status, 204);
		assert.equal((await erin.get("/api/auth/me")).status, 401);
		assert.equal((await phone.get("/api/auth/me")).status, 401);
		assert.equal((await frank.get("/api/auth/me")).status, 200, "other users keep their tokens");
		const again = await anon.login("erin", "correct horse battery");
		assert.equal((await again.get("/api/auth/me")).status, 200);
		assert.equal((await anon.post("/api/auth/logout-all")).status, 401);
	});

	it("deletes the account, after which its token is refused", async () => {
		const carol = await anon.register("carol");
		const res = await carol.delete("/api/auth/me");
		assert.equal(res.status, 204);
		assert.equal((await carol.get("/api/auth/me")).status, 401);
		assert.equal((await anon.post("/api/auth/login", { username: "carol", password: "correct horse battery" })).status, 401);
	});
});
