/** Helpers for the records every repository writes. */

/** Patches may carry keys set to undefined (absent request fields): those change nothing. */
export function definedFields<T extends object>(patch: T): Partial<T> {
	return Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/**
 * A copy of exactly `keys` of `source`: what a document store keeps beside a record (search
 * fields, revisions, anything unknown) never leaks out with it.
 */
export function pick<T extends object, K extends keyof T>(source: T, keys: readonly K[]): Pick<T, K> {
	const copy = {} as Pick<T, K>;
	for (const key of keys) copy[key] = source[key];
	return copy;
}
