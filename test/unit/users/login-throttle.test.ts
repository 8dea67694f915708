/** The login throttle on its own (models/users/login-throttle.ts), on a fake clock. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LoginThrottle } from "../../../models/users/login-throttle.ts";

function throttle(options: Partial<ConstructorParameters<typeof LoginThrottle>[0]> = {}) {
	const clock = { now: 0 };
	const limiter = new LoginThrottle({ perAccount: 3, perAddress: 10, baseMs: 1000, maxMs: 8000, now: () => clock.now, ...options });
	/** How long the next attempt is refused for (ms), or 0 when it is let through (and failed). */
	const fail = (username: string, address?: string): number => {
		try {
			limiter.begin(username, address).failed();
			return 0;
		} catch (err) {
			return (err as { data: { retryAfterMs: number } }).data.retryAfterMs;
		}
	};
	return { clock, limiter, fail };
}

describe("login throttle", () => {
	it("refuses after the threshold, for a delay that doubles with each further failure up to the cap", () => {
		const { clock, fail } = throttle();
		assert.deepEqual([fail("a"), fail("a"), fail("a")], [0, 0, 0]);
		const delays: number[] = [];
		for (let i = 0; i < 6; i++) {
			const refusedFor = fail("a");
			assert.ok(refusedFor > 0);
			delays.push(refusedFor);
			clock.now += refusedFor;
			assert.equal(fail("a"), 0, "one attempt once the delay passed");
		}
		assert.deepEqual(delays, [1000, 2000, 4000, 8000, 8000, 8000]);
	});

	it("names its refusal as told (share-link unlocks reuse it)", () => {
		const { fail, limiter } = throttle({ refusal: { attempts: "unlocks of this link", type: "UNLOCK_THROTTLED" } });
		for (let i = 0; i < 3; i++) fail("share-1");
		assert.throws(() => limiter.begin("share-1"), { code: 429, type: "UNLOCK_THROTTLED", message: /^Too many failed unlocks of this link: try again in 1 s$/ });
	});

	it("reports the limit, the scope and Retry-After in whole seconds", () => {
		const { fail, limiter } = throttle({ baseMs: 1500 });
		for (let i = 0; i < 3; i++) fail("a");
		assert.throws(
			() => limiter.begin("a", "10.0.0.1"),
			(err: any) => err.code === 429 && err.type === "LOGIN_THROTTLED" && err.data.limit === 3 && err.data.scope === "account" && err.data.retryAfter === 2
		);
	});

	it("resets an account on success, and forgets failures older than the cap", () => {
		const { clock, fail, limiter } = throttle();
		fail("a");
		fail("a");
		limiter.begin("a").succeeded();
		assert.deepEqual([fail("a"), fail("a"), fail("a")], [0, 0, 0]);
		assert.ok(fail("a") > 0);
		fail("b");
		fail("b");
		clock.now += 8001;
		assert.deepEqual([fail("b"), fail("b")], [0, 0], "two old failures forgotten");
		assert.equal(limiter.size(), 2);
	});

	it("counts addresses across usernames, and a refused or abandoned attempt counts nothing", () => {
		const { fail, limiter } = throttle({ perAddress: 4 });
		for (let i = 0; i < 4; i++) assert.equal(fail(`user${i}`, "1.2.3.4"), 0);
		assert.ok(fail("other", "1.2.3.4") > 0);
		assert.equal(fail("other", "1.2.3.5"), 0);
		// Abandoned (the password check could not run): the account is free again.
		limiter.begin("c").abandoned();
		limiter.begin("c").abandoned();
		limiter.begin("c").abandoned();
		assert.equal(fail("c"), 0);
	});

	it("lets at most the remaining failures through at once", () => {
		const { limiter } = throttle();
		const first = limiter.begin("a");
		limiter.begin("a");
		limiter.begin("a");
		assert.throws(() => limiter.begin("a"), (err: any) => err.code === 429);
		first.failed();
		assert.throws(() => limiter.begin("a"), (err: any) => err.code === 429);
	});

	it("keeps at most maxEntries per scope, the least recently failed going first", () => {
		const { limiter, fail } = throttle({ maxEntries: 100 });
		for (let i = 0; i < 250; i++) fail(`u${i}`, `10.0.${i >> 8}.${i & 255}`);
		assert.equal(limiter.size(), 200);
	});
});
