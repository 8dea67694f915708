/**
 * Login throttling over REST (issue 12): after LOGIN_FAILURES_PER_ACCOUNT wrong passwords for a
 * username, or LOGIN_FAILURES_PER_ADDRESS from one client address, further attempts are refused
 * at once with 429 LOGIN_THROTTLED and a Retry-After, the right password included, until the
 * delay passes; other accounts and addresses are not affected; a success resets the account's
 * count. Small thresholds and delays via the environment; the client address comes from
 * X-Forwarded-For (TRUST_PROXY=true), so each test uses addresses of its own.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Client, type ApiResponse } from "../helpers/client.ts";
import { startServer, type RunningServer } from "../helpers/server.ts";

const PER_ACCOUNT = 3;
const PER_ADDRESS = 8;
const RIGHT = "correct horse battery";

describe("login throttling", () => {
	let server: RunningServer;
	let anon: Client;

	const login = (username: string, password: string, address: string): Promise<ApiResponse> =>
		anon.request("POST", "/api/auth/login", { username, password }, { "x-forwarded-for": address });

	/** A 429 from the throttle, with its Retry-After (seconds) matching the body's. */
	function assertThrottled(res: ApiResponse, limit: number): number {
		assert.equal(res.status, 429, JSON.stringify(res.body));
		assert.equal(res.body.type, "LOGIN_THROTTLED");
		assert.equal(res.body.data.limit, limit);
		const retryAfter = Number(res.headers.get("retry-after"));
		assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After: ${res.headers.get("retry-after")}`);
		assert.equal(res.body.data.retryAfter, retryAfter);
		return retryAfter;
	}

	before(async () => {
		server = await startServer({
			TRUST_PROXY: "true",
			LOGIN_FAILURES_PER_ACCOUNT: String(PER_ACCOUNT),
			LOGIN_FAILURES_PER_ADDRESS: String(PER_ADDRESS),
			LOGIN_THROTTLE_BASE_MS: "2000",
			LOGIN_THROTTLE_MAX_MS: "8000"
		});
		anon = new Client(server.url);
		for (const name of ["alice", "bob", "carol"]) await anon.register(name, RIGHT);
	});
	after(() => server.stop());

	it("refuses an account with 429 and Retry-After after the threshold, while another account signs in", async () => {
		for (let i = 0; i < PER_ACCOUNT; i++) assert.equal((await login("alice", `wrong-${i}-password`, "10.1.0.1")).status, 401);
		// A burst, from several addresses: every attempt refused at once.
		const burst = await Promise.all(Array.from({ length: 6 }, (_, i) => login("alice", `wrong-burst-${i}`, `10.1.0.${10 + i}`)));
		for (const res of burst) assertThrottled(res, PER_ACCOUNT);
		// Another account, even from the address the guesses came from, is not affected.
		const bob = await login("bob", RIGHT, "10.1.0.1");
		assert.equal(bob.status, 200, JSON.stringify(bob.body));
		assert.ok(bob.body.token);
	});

	it("refuses the right password of a throttled account until the delay passes; a success resets the count", async () => {
		// The previous test locked alice; if that lock ran out meanwhile (a busy machine), one more
		// wrong guess locks her again, for twice as long.
		await login("alice", "wrong-relock", "10.1.1.1");
		const refused = await login("alice", RIGHT, "10.1.1.1");
		const retryAfter = assertThrottled(refused, PER_ACCOUNT);
		await sleep(retryAfter * 1000 + 100);
		const accepted = await login("alice", RIGHT, "10.1.1.1");
		assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
		// Counting starts again from zero.
		for (let i = 0; i < PER_ACCOUNT; i++) assert.equal((await login("alice", `wrong-again-${i}`, "10.1.1.2")).status, 401);
		assertThrottled(await login("alice", RIGHT, "10.1.1.2"), PER_ACCOUNT);
	});

	it("lets no more than the threshold of a concurrent burst reach the password check", async () => {
		const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => login("carol", `wrong-concurrent-${i}`, `10.1.2.${i}`)));
		const statuses = burst.map(res => res.status).toSorted();
		assert.deepEqual(statuses, [...Array(PER_ACCOUNT).fill(401), ...Array(10 - PER_ACCOUNT).fill(429)]);
	});

	it("refuses an address after its threshold across usernames, other addresses still sign in", async () => {
		for (let i = 0; i < PER_ADDRESS; i++) assert.equal((await login(`nobody${i}`, "wrong-password", "10.1.3.1")).status, 401);
		assertThrottled(await login("nobody-else", "wrong-password", "10.1.3.1"), PER_ADDRESS);
		// Even the right password of an untouched account is refused from that address...
		assertThrottled(await login("bob", RIGHT, "10.1.3.1"), PER_ADDRESS);
		// ...and accepted from any other.
		assert.equal((await login("bob", RIGHT, "10.1.3.2")).status, 200);
	});
});
