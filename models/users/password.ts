/**
 * Password hashing with scrypt: a random salt per user, the cost parameters stored with the hash
 * so they can be raised later, and a constant-time comparison. scrypt runs in the password pool's
 * own threads (password-pool.ts), never on libuv's thread pool that file I/O and sharp share, and
 * never on the event loop. The pool is bounded: past its queue, hashing and verifying reject with
 * 429 PASSWORD_QUEUE_FULL.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { PasswordPool, type PasswordPoolOptions, type ScryptCost } from "./password-pool.ts";

const COST: ScryptCost = { N: 16384, r: 8, p: 1 };
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;
const MAX_MEMORY = 64 * 1024 * 1024;

let pool: PasswordPool | undefined;
let poolOptions: PasswordPoolOptions = { workers: 1, maxQueue: 32 };

/** Sets the pool's size (config PASSWORD_HASH_WORKERS, PASSWORD_HASH_QUEUE) before its first use. */
export function configurePasswordPool(options: PasswordPoolOptions): void {
	poolOptions = options;
	if (pool) {
		const old = pool;
		pool = undefined;
		void old.close();
	}
}

export function passwordPool(): PasswordPool {
	pool ??= new PasswordPool(poolOptions);
	return pool;
}

/** Stops the pool's threads (service stop); the next use starts a new pool. */
export async function closePasswordPool(): Promise<void> {
	const old = pool;
	pool = undefined;
	await old?.close();
}

/** Cost parameters scrypt accepts within our memory bound (128·N·r·p plus 128·r·N ≤ maxmem). */
function validCost({ N, r, p }: ScryptCost): boolean {
	const integers = [N, r, p].every(value => Number.isSafeInteger(value) && value >= 1);
	return integers && N > 1 && (N & (N - 1)) === 0 && 128 * r * (N + p + 2) <= MAX_MEMORY;
}

function derive(password: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
	return passwordPool().derive(password.normalize("NFC"), salt, cost, KEY_LENGTH, MAX_MEMORY);
}

/** Returns `scrypt$N$r$p$<salt b64url>$<hash b64url>`. */
export async function hashPassword(password: string): Promise<string> {
	const salt = randomBytes(SALT_LENGTH);
	const key = await derive(password, salt, COST);
	return ["scrypt", COST.N, COST.r, COST.p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
	const [scheme, n, r, p, salt, hash] = stored.split("$");
	if (scheme !== "scrypt" || !salt || !hash) return false;
	const cost = { N: Number(n), r: Number(r), p: Number(p) };
	if (!validCost(cost)) return false;
	const expected = Buffer.from(hash, "base64url");
	const actual = await derive(password, Buffer.from(salt, "base64url"), cost);
	return actual.length === expected.length && timingSafeEqual(actual, expected);
}

let dummy: Promise<string> | undefined;
/**
 * A hash of a random password, for verifying against when the user does not exist, so a login
 * for an unknown username takes as long as one with a wrong password. Made on first use.
 */
export function dummyHash(): Promise<string> {
	if (!dummy) {
		dummy = hashPassword(randomBytes(16).toString("hex"));
		// A refusal (pool full) is not kept: the next login makes it again.
		dummy.catch(() => (dummy = undefined));
	}
	return dummy;
}
