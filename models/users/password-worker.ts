/**
 * One password hashing thread (password-pool.ts): scryptSync here, so scrypt never takes one of
 * libuv's four shared threads, which file I/O, sharp and DNS need.
 *
 * Protocol: the pool sends one `DeriveRequest` at a time and gets its `DeriveReply`.
 */
import { scryptSync } from "node:crypto";
import { parentPort } from "node:worker_threads";

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
