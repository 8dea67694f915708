/**
 * One password hashing thread (password-pool.ts): scryptSync here, so scrypt never takes one of
 * libuv's four shared threads, which file I/O, sharp and DNS need.
 *
 * Protocol: the pool sends one `DeriveRequest` at a time and gets its `DeriveReply`.
 */
import { scryptSync } from "node:crypto";
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort } from "node:worker_threads";

/**
 * This thread runs at a lower CPU priority (nice 10) than the rest of the node, so on a busy
 * machine a login flood's hashing gives way to the event loop, file I/O and sharp instead of
 * taking an equal share of the cores. Linux only (a thread's id from /proc/thread-self); best
 * effort elsewhere.
 */
export const HASHING_NICE = 10;
try {
	const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
	if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, HASHING_NICE);
} catch {
	// not Linux, or not allowed: same priority as the rest
}

export interface DeriveRequest {
	password: string;
	salt: Uint8Array;
	N: number;
	r: number;
	p: number;
	keyLength: number;
	maxmem: number;
}
export type DeriveReply = { key: Uint8Array } | { error: string };

const port = parentPort!;
port.on("message", (request: DeriveRequest) => {
	let reply: DeriveReply;
	try {
		const { password, salt, N, r, p, keyLength, maxmem } = request;
		const key = scryptSync(password, salt, keyLength, { N, r, p, maxmem });
		reply = { key: new Uint8Array(key.buffer, key.byteOffset, key.byteLength) };
	} catch (err) {
		reply = { error: (err as Error).message };
	}
	port.postMessage(reply);
});
