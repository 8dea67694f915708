/**
 * Long work in slices: a pause between slices lets the event loop answer what is waiting (other
 * requests, timers, I/O), so no one request holds a node for long.
 */

/** Resolves after the event loop has run what is waiting (setImmediate: after pending I/O). */
export const yieldToEventLoop = () => new Promise<void>(resolve => setImmediate(resolve));
