/**
 * scrypt in worker threads of its own. node:crypto's async scrypt runs on libuv's thread pool,
 * four threads shared with every file read and write, sharp and DNS: 64 wrong-password logins in
 * flight held all four and a download waited 46 s instead of 18 ms. Here at most `workers`
 * derivations run at once, each on its own thread (password-worker.ts); up to `maxQueue` more
 * wait, and past that the pool refuses at once with 429 PASSWORD_QUEUE_FULL rather than queueing
 * without end. Threads start on first use, hold the process open only while they work, and a
 * thread that dies fails only the derivation it ran and is replaced on the next one. A thread idle
 * for `idleMs` stops: each holds about 18 MiB (its own V8 heap, and scrypt's 16 MiB that glibc
 * keeps in the thread's arena), half of which only its exit gives back to the node, and logins
 * are rare next to the uploads a node's memory must fit around.
 */
import { Worker } from "node:worker_threads";
import { TooManyRequestsError } from "../shared/errors.ts";
import type { DeriveReply, DeriveRequest } from "./password-worker.ts";

const WORKER_FILE = new URL("./password-worker.ts", import.meta.url);

export interface ScryptCost {
	N: number;
	r: number;
	p: number;
}

export interface PasswordPoolOptions {
	/** Derivations at once, one thread each. */
	workers: number;
	/** Derivations waiting for a thread; more are refused. */
	maxQueue: number;
	/** A thread with no derivation for this long stops; the next check starts one (~30 ms). */
	idleMs?: number;
}

/** Long enough for a burst of logins to share threads. */
export const PASSWORD_THREAD_IDLE_MS = 10_000;

interface Task {
	request: DeriveRequest;
	resolve(key: Buffer): void;
	reject(err: Error): void;
}

interface Slot {
	worker: Worker;
	task: Task | null;
	/** Stops the idle thread (set while it has no task). */
	idleTimer: NodeJS.Timeout | null;
}

export class PasswordPool {
	private readonly options: PasswordPoolOptions;
	private readonly slots: Slot[] = [];
	private readonly queue: Task[] = [];
	private closed = false;
	private counters = { derived: 0, refused: 0, maxRunning: 0 };

	constructor(options: PasswordPoolOptions) {
		if (!(options.workers >= 1) || !(options.maxQueue >= 0)) throw new Error("A password pool needs at least one worker and a queue size of 0 or more");
		this.options = options;
	}

	derive(password: string, salt: Uint8Array, cost: ScryptCost, keyLength = 32, maxmem = 64 * 1024 * 1024): Promise<Buffer> {
		if (this.closed) return Promise.reject(new Error("Password hashing is shutting down"));
		if (this.queue.length >= this.options.maxQueue && this.idleSlot() === undefined && this.slots.length >= this.options.workers) {
			this.counters.refused++;
			return Promise.reject(
				new TooManyRequestsError("Too many password checks in progress on this node: try again in a moment", "PASSWORD_QUEUE_FULL", {
					limit: this.options.maxQueue,
					retryAfter: 1
				})
			);
		}
		return new Promise((resolve, reject) => {
			this.queue.push({ request: { password, salt, ...cost, keyLength, maxmem }, resolve, reject });
			this.dispatch();
		});
	}

	stats() {
		const running = this.slots.filter(slot => slot.task).length;
		return { workers: this.slots.length, running, queued: this.queue.length, ...this.counters };
	}

	async close(): Promise<void> {
		this.closed = true;
		for (const task of this.queue.splice(0)) task.reject(new Error("Password hashing is shutting down"));
		await Promise.all(this.slots.splice(0).map(slot => slot.worker.terminate()));
	}

	private idleSlot(): Slot | undefined {
		return this.slots.find(slot => !slot.task);
	}

	private dispatch(): void {
		while (this.queue.length > 0) {
			const slot = this.idleSlot() ?? (this.slots.length < this.options.workers ? this.spawn() : undefined);
			if (!slot) return;
			const task = this.queue.shift()!;
			slot.task = task;
			if (slot.idleTimer) clearTimeout(slot.idleTimer);
			slot.idleTimer = null;
			slot.worker.ref();
			slot.worker.postMessage(task.request);
			const running = this.slots.filter(other => other.task).length;
			this.counters.maxRunning = Math.max(this.counters.maxRunning, running);
		}
	}

	/** An idle thread leaves the pool before it stops, so no derivation is handed to it meanwhile. */
	private retire(slot: Slot): void {
		const index = this.slots.indexOf(slot);
		if (index < 0 || slot.task) return;
		this.slots.splice(index, 1);
		void slot.worker.terminate();
	}

	private spawn(): Slot {
		const worker = new Worker(WORKER_FILE);
		const slot: Slot = { worker, task: null, idleTimer: null };
		this.slots.push(slot);
		worker.on("message", (reply: DeriveReply) => {
			const task = slot.task;
			slot.task = null;
			worker.unref();
			if (task) {
				if ("key" in reply) {
					this.counters.derived++;
					task.resolve(Buffer.from(reply.key.buffer, reply.key.byteOffset, reply.key.byteLength));
				} else task.reject(new Error(`scrypt failed: ${reply.error}`));
			}
			this.dispatch();
			if (!slot.task) slot.idleTimer = setTimeout(() => this.retire(slot), this.options.idleMs ?? PASSWORD_THREAD_IDLE_MS).unref();
		});
		const lose = (err: Error) => {
			if (slot.idleTimer) clearTimeout(slot.idleTimer);
			const index = this.slots.indexOf(slot);
			if (index < 0) return;
			this.slots.splice(index, 1);
			slot.task?.reject(err);
			slot.task = null;
			if (!this.closed) this.dispatch();
		};
		worker.on("error", lose);
		worker.on("exit", code => lose(new Error(`A password hashing thread stopped (exit code ${code})`)));
		return slot;
	}
}
