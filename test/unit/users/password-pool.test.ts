/**
 * The password hashing pool (models/users/password-pool.ts): scrypt runs in worker threads of its
 * own, never on libuv's thread pool (which fs and sharp need), at most `workers` at once, with a
 * bounded queue past which hashing is refused with a typed 429 instead of waiting forever.
 */
import assert from "node:assert/strict";
import { randomBytes, scryptSync } from "node:crypto";
import { after, describe, it } from "node:test";
import { setTimeout } from "node:timers/promises";
import { PasswordPool } from "../../../models/users/password-pool.ts";

const COST = { N: 16384, r: 8, p: 1 };

describe("password pool", () => {
	const pools: PasswordPool[] = [];
	const open = (workers: number, maxQueue: number, idleMs?: number) => {
		const pool = new PasswordPool({ workers, maxQueue, idleMs });
		pools.push(pool);
		return pool;
	};
	after(() => Promise.all(pools.map(pool => pool.close())));

	it("derives the same key as scrypt on this thread, with the given cost parameters", async () => {
		const pool = open(1, 4);
		const salt = randomBytes(16);
		for (const cost of [COST, { N: 1024, r: 4, p: 2 }]) {
			const key = await pool.derive("pässword", salt, cost);
			assert.deepEqual(key, scryptSync("pässword", salt, 32, cost));
		}
	});

	it("runs at most `workers` derivations at once, queues up to `maxQueue`, and refuses the rest with 429", async () => {
		const pool = open(1, 2);
		const salt = randomBytes(16);
		const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => pool.derive(`p${i}`, salt, COST)));
		const refused = results.filter(result => result.status === "rejected").map(result => (result as PromiseRejectedResult).reason);
		// One running, two waiting; the other three refused at once.
		assert.equal(results.filter(result => result.status === "fulfilled").length, 3);
		assert.equal(refused.length, 3);
		for (const err of refused) {
			assert.equal(err.code, 429);
			assert.equal(err.type, "PASSWORD_QUEUE_FULL");
			assert.equal(err.data.limit, 2);
			assert.ok(err.data.retryAfter >= 1);
		}
		assert.equal(pool.stats().maxRunning, 1);
		// Once the queue drained the pool takes work again.
		assert.deepEqual(await pool.derive("again", salt, COST), scryptSync("again", salt, 32, COST));
	});

	it("uses up to `workers` threads in parallel", async () => {
		const pool = open(2, 8);
		const salt = randomBytes(16);
		await Promise.all(Array.from({ length: 6 }, (_, i) => pool.derive(`p${i}`, salt, COST)));
		assert.equal(pool.stats().maxRunning, 2);
		assert.equal(pool.stats().workers, 2);
	});

	it("rejects invalid cost parameters without losing its worker", async () => {
		const pool = open(1, 2);
		await assert.rejects(pool.derive("x", randomBytes(16), { N: 1000, r: 8, p: 1 }));
		const salt = randomBytes(16);
		assert.deepEqual(await pool.derive("y", salt, COST), scryptSync("y", salt, 32, COST));
	});

	it("stops a thread idle for `idleMs` (its memory goes back to the node) and starts one again on the next check", async () => {
		const pool = open(1, 2, 50);
		const salt = randomBytes(16);
		await pool.derive("x", salt, COST);
		assert.equal(pool.stats().workers, 1);
		await setTimeout(300);
		assert.equal(pool.stats().workers, 0);
		assert.deepEqual(await pool.derive("y", salt, COST), scryptSync("y", salt, 32, COST));
	});
});
