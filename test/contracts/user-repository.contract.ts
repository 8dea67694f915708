/**
 * The behaviour every UserRepository backend must have. A backend's test file calls
 * userRepositoryContract with a factory for fresh, empty repositories; every test gets its own.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { ConflictError } from "../../models/shared/errors.ts";
import type { UserRecord, UserRepository } from "../../models/users/user.ts";

export interface UserFixture {
	users: UserRepository;
	/** Removes what the repositories were stored in, once the contract has closed them. */
	cleanup(): Promise<void>;
}

function user(username: string, overrides: Partial<UserRecord> = {}): UserRecord {
	return {
		id: `u-${username}`,
		username,
		name: `${username} name`,
		role: "user",
		disabled: false,
		passwordHash: `hash of ${username}`,
		tokenVersion: 0,
		createdAt: "2024-01-01T00:00:00.000Z",
		updatedAt: "2024-01-01T00:00:00.000Z",
		...overrides
	};
}

export function userRepositoryContract(name: string, make: () => Promise<UserFixture>): void {
	describe(`${name}: user repository contract`, () => {
		let fixture: UserFixture;
		let users: UserRepository;
		beforeEach(async () => {
			fixture = await make();
			users = fixture.users;
		});
		afterEach(async () => {
			await users.close();
			await fixture.cleanup();
		});

		it("stores users and finds them by id and username", async () => {
			const alice = user("alice", { role: "admin", disabled: true });
			await users.insert(alice);
			assert.deepEqual(await users.get(alice.id), alice);
			assert.deepEqual(await users.findByUsername("alice"), alice);
			assert.equal(await users.get("missing"), null);
			assert.equal(await users.findByUsername("ALICE"), null, "usernames match exactly");
			assert.equal(await users.findByUsername('{"$gt": ""}'), null);
		});

		it("rejects a taken username, whatever the id", async () => {
			await users.insert(user("alice"));
			await assert.rejects(users.insert(user("alice", { id: "u-other" })), ConflictError);
			assert.equal(await users.count(), 1);
		});

		it("updates only the patched fields, ignoring undefined ones", async () => {
			const alice = user("alice");
			await users.insert(alice);
			const updated = await users.update(alice.id, { role: "admin", disabled: true, name: undefined });
			assert.ok(updated);
			assert.ok(updated.updatedAt > alice.updatedAt, "updatedAt moves forward");
			assert.deepEqual(updated, { ...alice, role: "admin", disabled: true, updatedAt: updated.updatedAt });
			assert.deepEqual(await users.get(alice.id), updated);
			assert.equal(await users.update("missing", { name: "x" }), null);
		});

		it("lists by username, counts and removes", async () => {
			for (const username of ["carol", "alice", "bob"]) await users.insert(user(username));
			assert.deepEqual(
				(await users.list()).map(u => u.username),
				["alice", "bob", "carol"]
			);
			assert.equal(await users.count(), 3);
			assert.equal(await users.remove("u-bob"), true);
			assert.equal(await users.remove("u-bob"), false);
			assert.equal(await users.count(), 2);
			assert.equal(await users.findByUsername("bob"), null);
			await users.insert(user("bob", { id: "u-bob-2" }));
			assert.equal((await users.findByUsername("bob"))?.id, "u-bob-2", "a removed username is free again");
		});

		it("revokes tokens by moving the token version forward, once per revocation", async () => {
			const alice = user("alice");
			await users.insert(alice);
			await users.insert(user("bob"));
			const changed = await users.update(alice.id, { passwordHash: "new hash" }, { revokeTokens: true });
			assert.equal(changed?.tokenVersion, 1);
			assert.equal(changed?.passwordHash, "new hash");
			assert.equal((await users.update(alice.id, { name: "Alice" }))?.tokenVersion, 1, "a plain update keeps the tokens");
			// Concurrent revocations each count: none is lost to a read-modify-write race.
			await Promise.all([1, 2, 3].map(() => users.update(alice.id, {}, { revokeTokens: true })));
			assert.equal((await users.get(alice.id))?.tokenVersion, 4);
			assert.equal((await users.get("u-bob"))?.tokenVersion, 0, "other users are untouched");
			assert.equal(await users.update("missing", {}, { revokeTokens: true }), null);
		});

		it("answers ping", async () => {
			assert.equal(await users.ping(), true);
		});
	});
}
