/** Helpers for the records every repository writes. */

/** Patches may carry keys set to undefined (absent request fields): those change nothing. */
export function definedFields<T extends object>(patch: T): Partial<T> {
	return Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined)) as Partial<T>;
}
