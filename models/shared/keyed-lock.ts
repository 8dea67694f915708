/** Runs async work one at a time per key, in call order, within this process. */
export class KeyedLock {
	readonly #tails = new Map<string, Promise<void>>();

	async run<T>(key: string, work: () => Promise<T>): Promise<T> {
		const result = (this.#tails.get(key) ?? Promise.resolve()).then(work);
		const tail = result.then(
			() => undefined,
			() => undefined
		);
		this.#tails.set(key, tail);
		try {
			return await result;
		} finally {
			if (this.#tails.get(key) === tail) this.#tails.delete(key);
		}
	}
}
