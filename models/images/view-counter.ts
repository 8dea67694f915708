/**
 * Views counted in memory and written in batches: a write per view was a database write on every
 * non-owner GET and 304 (issue 17), where a batch writes each viewed image once a second. A clean
 * stop writes what is waiting (flush); a crash loses at most the last second's views.
 */
/** How long views wait in memory before they are written together. */
const VIEW_FLUSH_MS = 1000;

export class ViewCounter {
	/** Views not written yet: image id → how many. */
	readonly #pending = new Map<string, number>();
	/** Batches being written: a stop waits for them before the repository closes. */
	readonly #writing = new Set<Promise<void>>();
	#timer: NodeJS.Timeout | undefined;
	/** Stopped: the repository is closing, nothing is scheduled any more. */
	#stopped = false;

	readonly #write: (id: string, by: number) => Promise<unknown>;
	readonly #logger: { warn(...args: unknown[]): void };

	constructor(write: (id: string, by: number) => Promise<unknown>, logger: { warn(...args: unknown[]): void }) {
		this.#write = write;
		this.#logger = logger;
	}

	/** One more view of the image, written with the next batch. */
	count(id: string): void {
		this.#pending.set(id, (this.#pending.get(id) ?? 0) + 1);
		this.#schedule();
	}

	/** Writes what is waiting, once and for the last time: the service is stopping. */
	async stop(): Promise<void> {
		this.#stopped = true;
		await this.#flush();
	}

	#schedule(): void {
		// unref: a pending batch must not keep a process alive that is otherwise done.
		if (!this.#stopped) this.#timer ??= setTimeout(() => void this.#flush(), VIEW_FLUSH_MS).unref();
	}

	/** Writes the views waiting in memory, and waits for every batch still being written. */
	async #flush(): Promise<void> {
		clearTimeout(this.#timer);
		this.#timer = undefined;
		const batch = [...this.#pending];
		this.#pending.clear();
		if (batch.length > 0) {
			const writing = this.#writeBatch(batch);
			this.#writing.add(writing);
			void writing.finally(() => this.#writing.delete(writing));
		}
		await Promise.all(this.#writing);
	}

	async #writeBatch(batch: [string, number][]): Promise<void> {
		const results = await Promise.allSettled(batch.map(([id, by]) => this.#write(id, by)));
		for (const [index, result] of results.entries()) {
			if (result.status === "fulfilled") continue;
			// Kept for the next batch: a store that is briefly unavailable must not lose the views.
			const [id, by] = batch[index]!;
			this.#pending.set(id, (this.#pending.get(id) ?? 0) + by);
			this.#schedule();
			this.#logger.warn(`Writing ${by} views of image ${id} failed, kept for the next batch:`, result.reason);
		}
	}
}
