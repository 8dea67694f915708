/**
 * A pool of inference sessions, each in its own worker thread (worker.ts), with
 * micro-batching. Requests queue here; an idle session takes the oldest of them: one at a time
 * when the model's batch dimension is fixed at 1, otherwise up to `maxBatch` at once. A lone
 * request on a batching model waits up to `batchWindowMs` for company, so bursts share one run.
 *
 * A session whose thread dies fails only the batch it was running and is replaced.
 */
import { Worker } from "node:worker_threads";
import type { LoadedManifest } from "./manifest.ts";
import type { WorkerOptions, WorkerReply, WorkerRequest } from "./worker.ts";

const WORKER_FILE = new URL("./worker.ts", import.meta.url);

export interface PoolOptions {
	sessions: number;
	threads: number;
	maxBatch: number;
	batchWindowMs: number;
}

interface Pending {
	image: Uint8Array;
	resolve(probabilities: Float32Array): void;
	reject(err: Error): void;
}

interface Session {
	worker: Worker;
	/** The batch it is running, if any. */
	running: Pending[] | null;
}

export interface PoolStats {
	sessions: number;
	dynamicBatch: boolean;
	/** Model runs so far, and the images they classified. */
	runs: number;
	images: number;
	largestBatch: number;
	queued: number;
}

export class ClassifierPool {
	private readonly sessions: Session[] = [];
	private readonly queue: Pending[] = [];
	private readonly manifestPath: string;
	private readonly manifest: LoadedManifest;
	private readonly options: PoolOptions;
	private dynamicBatch = false;
	private windowTimer: NodeJS.Timeout | null = null;
	private closed = false;
	private counters = { runs: 0, images: 0, largestBatch: 0 };

	private constructor(manifestPath: string, manifest: LoadedManifest, options: PoolOptions) {
		this.manifestPath = manifestPath;
		this.manifest = manifest;
		this.options = options;
	}

	/** Starts every session; rejects (and stops the others) if one cannot load the model. */
	static async open(manifestPath: string, manifest: LoadedManifest, options: PoolOptions): Promise<ClassifierPool> {
		const pool = new ClassifierPool(manifestPath, manifest, options);
		const started = await Promise.allSettled(Array.from({ length: options.sessions }, () => pool.startSession()));
		const failure = started.find(result => result.status === "rejected");
		if (failure) {
			await pool.close();
			throw (failure as PromiseRejectedResult).reason;
		}
		return pool;
	}

	/** The class probabilities of one decoded image (input.ts's decodeForModel). */
	classify(image: Uint8Array): Promise<Float32Array> {
		if (this.closed) return Promise.reject(new Error("The classifier is shutting down"));
		return new Promise((resolve, reject) => {
			this.queue.push({ image, resolve, reject });
			this.schedule();
		});
	}

	stats(): PoolStats {
		return { sessions: this.sessions.length, dynamicBatch: this.dynamicBatch, ...this.counters, queued: this.queue.length };
	}

	async close(): Promise<void> {
		this.closed = true;
		if (this.windowTimer) clearTimeout(this.windowTimer);
		for (const pending of this.queue.splice(0)) pending.reject(new Error("The classifier is shutting down"));
		await Promise.all(this.sessions.splice(0).map(session => session.worker.terminate()));
	}

	private startSession(): Promise<void> {
		const workerData: WorkerOptions = { manifestPath: this.manifestPath, manifest: this.manifest, threads: this.options.threads };
		const worker = new Worker(WORKER_FILE, { workerData });
		const session: Session = { worker, running: null };
		return new Promise((resolve, reject) => {
			worker.on("message", (reply: WorkerReply) => {
				if (reply.type === "ready") {
					this.dynamicBatch = reply.dynamicBatch;
					this.sessions.push(session);
					resolve();
					this.dispatch();
				} else if (reply.type === "failed") {
					void worker.terminate();
					reject(new Error(reply.message));
				} else {
					this.finish(session, reply);
				}
			});
			worker.on("error", err => {
				reject(err);
				this.lose(session, err);
			});
			worker.on("exit", code => this.lose(session, new Error(`The classifier session stopped (exit code ${code})`)));
		});
	}

	/** A dead session: fail its batch, forget it, and start a replacement unless closing. */
	private lose(session: Session, err: Error): void {
		const index = this.sessions.indexOf(session);
		if (index < 0) return;
		this.sessions.splice(index, 1);
		for (const pending of session.running ?? []) pending.reject(err);
		session.running = null;
		if (this.closed) return;
		this.startSession().catch((restartError: Error) => {
			// No session left and none can start: waiting requests would wait forever.
			if (this.sessions.length === 0) for (const pending of this.queue.splice(0)) pending.reject(restartError);
		});
	}

	private finish(session: Session, reply: Extract<WorkerReply, { type: "result" | "error" }>): void {
		const batch = session.running ?? [];
		session.running = null;
		if (reply.type === "result") batch.forEach((pending, index) => pending.resolve(reply.probabilities[index]!));
		else for (const pending of batch) pending.reject(new Error(`Inference failed: ${reply.message}`));
		this.dispatch();
	}

	/** Dispatches now, or after the batch window when a batching model has a short queue. */
	private schedule(): void {
		const wait = this.dynamicBatch && this.options.batchWindowMs > 0 && this.queue.length < this.options.maxBatch;
		if (!wait) return this.dispatch();
		this.windowTimer ??= setTimeout(() => {
			this.windowTimer = null;
			this.dispatch();
		}, this.options.batchWindowMs);
	}

	private dispatch(): void {
		const batchSize = this.dynamicBatch ? this.options.maxBatch : 1;
		for (const session of this.sessions) {
			if (this.queue.length === 0) return;
			if (session.running) continue;
			const batch = this.queue.splice(0, batchSize);
			session.running = batch;
			this.counters.runs++;
			this.counters.images += batch.length;
			this.counters.largestBatch = Math.max(this.counters.largestBatch, batch.length);
			const request: WorkerRequest = { images: batch.map(pending => pending.image) };
			session.worker.postMessage(request);
		}
	}
}
