import assert from "node:assert/strict";
import { randomBytes, scryptSync } from "node:crypto";
import { after, describe, it } from "node:test";
import { closePasswordPool, dummyHash, hashPassword, verifyPassword } from "../../../models/users/password.ts";

/** scheme $ N $ r $ p $ 16-byte salt $ 32-byte key, both base64url without padding. */
const FORMAT = /^scrypt\$16384\$8\$1\$([A-Za-z0-9_-]{22})\$([A-Za-z0-9_-]{43})$/;

/** A stored hash made independently of the module, with the given cost parameters. */
function storedWith(password: string, N: number, r: number, p: number): string {
	const salt = randomBytes(16);
	const key = scryptSync(password, salt, 32, { N, r, p });
	return ["scrypt", N, r, p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

/** `stored` with field `index` (0 = scheme ... 5 = hash) replaced. */
function withField(stored: string, index: number, value: string): string {
	const fields = stored.split("$");
	fields[index] = value;
	return fields.join("$");
}

describe("password hashing", () => {
	after(() => closePasswordPool());

	it("stores scrypt, its cost parameters, a salt and the key", async () => {
		const stored = await hashPassword("correct horse battery staple");
		const [, salt, key] = FORMAT.exec(stored) ?? [];
		assert.equal(Buffer.from(salt!, "base64url").length, 16);
		assert.equal(Buffer.from(key!, "base64url").length, 32);
		assert.equal(stored.includes("correct horse"), false);
	});

	it("verifies the right password and refuses wrong ones", async () => {
		const stored = await hashPassword("correct horse battery staple");
		assert.equal(await verifyPassword("correct horse battery staple", stored), true);
		for (const wrong of ["Correct horse battery staple", "correct horse battery staple ", "correct horse battery", ""]) {
			assert.equal(await verifyPassword(wrong, stored), false, JSON.stringify(wrong));
		}
	});

	it("hashes the empty password and long, non-ASCII passwords", async () => {
		for (const password of ["", "пароль 密码 🔑", "x".repeat(1000)]) {
			assert.equal(await verifyPassword(password, await hashPassword(password)), true, password.slice(0, 20));
		}
	});

	it("treats the composed and decomposed forms of a character as the same password", async () => {
		const stored = await hashPassword("caf\u00e9");
		assert.equal(await verifyPassword("cafe\u0301", stored), true);
		assert.equal(await verifyPassword("cafe", stored), false);
	});

	it("uses a new salt for every hash", async () => {
		const hashes = await Promise.all([1, 2, 3].map(() => hashPassword("same password")));
		const salts = hashes.map(stored => FORMAT.exec(stored)![1]);
		assert.equal(new Set(salts).size, 3);
		assert.equal(new Set(hashes).size, 3);
		for (const stored of hashes) assert.equal(await verifyPassword("same password", stored), true);
	});

	it("verifies with the cost parameters stored with the hash, not the current ones", async () => {
		const stored = storedWith("old account", 1024, 4, 2);
		assert.equal(await verifyPassword("old account", stored), true);
		assert.equal(await verifyPassword("old account!", stored), false);
		// Changing any stored parameter derives another key.
		assert.equal(await verifyPassword("old account", withField(stored, 1, "2048")), false);
		assert.equal(await verifyPassword("old account", withField(stored, 2, "8")), false);
		assert.equal(await verifyPassword("old account", withField(stored, 3, "1")), false);
	});

	it("refuses a stored hash whose salt or key was altered", async () => {
		const stored = await hashPassword("secret");
		const [, salt, key] = FORMAT.exec(stored)!;
		const flip = (text: string) => (text[0] === "A" ? "B" : "A") + text.slice(1);
		assert.equal(await verifyPassword("secret", withField(stored, 4, flip(salt!))), false);
		assert.equal(await verifyPassword("secret", withField(stored, 5, flip(key!))), false);
		assert.equal(await verifyPassword("secret", withField(stored, 5, key!.slice(0, 20))), false, "shorter key");
		assert.equal(await verifyPassword("secret", withField(stored, 5, `${key}AAAA`)), false, "longer key");
	});

	it("refuses malformed stored hashes without throwing", async () => {
		const stored = await hashPassword("secret");
		for (const malformed of ["", "secret", "$$$$$", "scrypt", withField(stored, 0, "bcrypt"), withField(stored, 0, "SCRYPT"), withField(stored, 4, ""), withField(stored, 5, ""), stored.split("$").slice(0, 5).join("$")]) {
			assert.equal(await verifyPassword("secret", malformed), false, JSON.stringify(malformed));
		}
	});

	it("has a dummy hash that no likely guess matches", async () => {
		const dummy = await dummyHash();
		assert.match(dummy, FORMAT);
		for (const guess of ["", "password", "admin", "undefined"]) assert.equal(await verifyPassword(guess, dummy), false);
	});

	// A stored hash whose cost parameters are not a valid scrypt cost (not a number, N not a power
	// of two, more memory than maxmem) is refused like any other malformed hash, not with a 500.
	it("refuses stored hashes with invalid cost parameters without throwing", async () => {
		const stored = await hashPassword("secret");
		for (const malformed of [withField(stored, 1, "abc"), withField(stored, 1, "1000"), withField(stored, 1, "1048576")]) {
			assert.equal(await verifyPassword("secret", malformed), false, malformed.slice(0, 20));
		}
	});
});
