/**
 * Login throttling per username and per client address, in memory. After `perAccount` failed
 * logins for a username (existing or not: the answer must not tell which usernames exist), or
 * `perAddress` from one address, further attempts are refused at once with 429 LOGIN_THROTTLED
 * for `baseMs`, doubling with each further failure up to `maxMs`; once a delay has passed one
 * attempt at a time goes through. Refused attempts cost no password check and count nothing.
 * Attempts in flight count ahead: a burst of 64 at once lets at most the failures left before
 * the threshold reach scrypt.
 *
 * A success resets the account's count, not the address's (one valid account of his own would
 * otherwise let a guesser clear his address between guesses). Failures are forgotten `maxMs`
 * after the last one. At most `maxEntries` usernames and as many addresses are remembered, the
 * least recently failed forgotten first, so a flood of made-up names cannot exhaust memory.
 *
 * State is per users node: in a cluster each users node counts on its own (docs/configuration.md).
 */
import { TooManyRequestsError } from "../shared/errors.ts";

export interface LoginThrottleOptions {
	perAccount: number;
	perAddress: number;
	baseMs: number;
	maxMs: number;
	maxEntries?: number;
	now?: () => number;
	/** How a refusal names itself: what was tried and the error type (share-link unlocks reuse this throttle). */
	refusal?: { attempts: string; type: string };
}

interface Entry {
	failures: number;
	/** Attempts let through and not finished yet. */
	pending: number;
	lockedUntil: number;
	lastFailure: number;
}

type Scope = "account" | "address";

export interface LoginAttempt {
	/** Wrong password, unknown user or disabled account: counts a failure for both keys. */
	failed(): void;
	/** Right password: the account's count starts again. */
	succeeded(): void;
	/** The password could not be checked (pool full, store down): counts nothing. */
	abandoned(): void;
}

class Counter {
	private readonly entries = new Map<string, Entry>();
	readonly scope: Scope;
	readonly threshold: number;
	private readonly options: Required<LoginThrottleOptions>;

	constructor(scope: Scope, threshold: number, options: Required<LoginThrottleOptions>) {
		this.scope = scope;
		this.threshold = threshold;
		this.options = options;
	}

	get size(): number {
		return this.entries.size;
	}

	/** The live entry for `key`, or undefined; an expired one is dropped. */
	private find(key: string, now: number): Entry | undefined {
		const entry = this.entries.get(key);
		if (entry && entry.pending === 0 && now >= entry.lockedUntil && now - entry.lastFailure > this.options.maxMs) {
			this.entries.delete(key);
			return undefined;
		}
		return entry;
	}

	/** Milliseconds the next attempt is refused for, or 0 when it may go through. */
	refusal(key: string, now: number): number {
		const entry = this.find(key, now);
		if (!entry) return 0;
		if (now < entry.lockedUntil) return entry.lockedUntil - now;
		// Attempts in flight may each fail: let through only as many as failures are left.
		return entry.pending < Math.max(1, this.threshold - entry.failures) ? 0 : this.options.baseMs;
	}

	reserve(key: string, now: number): Entry {
		let entry = this.find(key, now);
		if (!entry) {
			if (this.entries.size >= this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
			entry = { failures: 0, pending: 0, lockedUntil: 0, lastFailure: now };
			this.entries.set(key, entry);
		}
		entry.pending++;
		return entry;
	}

	fail(key: string, entry: Entry, now: number): void {
		entry.pending--;
		entry.failures++;
		entry.lastFailure = now;
		if (entry.failures >= this.threshold) {
			entry.lockedUntil = now + Math.min(this.options.maxMs, this.options.baseMs * 2 ** (entry.failures - this.threshold));
		}
		// Most recently failed last: eviction takes the front.
		if (this.entries.get(key) === entry) {
			this.entries.delete(key);
			this.entries.set(key, entry);
		}
	}

	release(key: string, entry: Entry, reset: boolean): void {
		entry.pending--;
		if (reset) {
			entry.failures = 0;
			entry.lockedUntil = 0;
		}
		if (entry.pending === 0 && entry.failures === 0 && this.entries.get(key) === entry) this.entries.delete(key);
	}
}

export class LoginThrottle {
	private readonly accounts: Counter;
	private readonly addresses: Counter;
	private readonly now: () => number;
	private readonly refusal: { attempts: string; type: string };

	constructor(options: LoginThrottleOptions) {
		const full: Required<LoginThrottleOptions> = { maxEntries: 100_000, now: Date.now, refusal: { attempts: "logins", type: "LOGIN_THROTTLED" }, ...options };
		this.refusal = full.refusal;
		this.accounts = new Counter("account", full.perAccount, full);
		this.addresses = new Counter("address", full.perAddress, full);
		this.now = full.now;
	}

	/** Usernames and addresses remembered. */
	size(): number {
		return this.accounts.size + this.addresses.size;
	}

	/** Lets an attempt through (the caller reports how it ended) or throws 429 (LOGIN_THROTTLED unless `refusal` says otherwise). */
	begin(username: string, address?: string): LoginAttempt {
		const now = this.now();
		const keys: [Counter, string][] = [[this.accounts, username]];
		if (address) keys.push([this.addresses, address]);
		let worst: { counter: Counter; ms: number } | undefined;
		for (const [counter, key] of keys) {
			const ms = counter.refusal(key, now);
			if (ms > 0 && (!worst || ms > worst.ms)) worst = { counter, ms };
		}
		if (worst) {
			const retryAfter = Math.ceil(worst.ms / 1000);
			throw new TooManyRequestsError(`Too many failed ${this.refusal.attempts}: try again in ${retryAfter} s`, this.refusal.type, {
				limit: worst.counter.threshold,
				scope: worst.counter.scope,
				retryAfter,
				retryAfterMs: worst.ms
			});
		}
		const held = keys.map(([counter, key]) => ({ counter, key, entry: counter.reserve(key, now) }));
		let done = false;
		const finish = (how: (item: (typeof held)[number]) => void) => {
			if (done) return;
			done = true;
			held.forEach(how);
		};
		return {
			failed: () => finish(({ counter, key, entry }) => counter.fail(key, entry, this.now())),
			succeeded: () => finish(({ counter, key, entry }) => counter.release(key, entry, counter === this.accounts)),
			abandoned: () => finish(({ counter, key, entry }) => counter.release(key, entry, false))
		};
	}
}
