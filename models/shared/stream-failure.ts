/**
 * Streams that cross a Moleculer stream call (`ctx.call(action, params, { stream })`), whose
 * failures Moleculer 0.15 can lose on either side:
 * - the caller's transit attaches its listeners only once the request packet is published: a
 *   stream that fails before then (a refused upload, destroyed as soon as it started) never
 *   tells the callee, which waits for more bytes until the request timeout;
 * - the callee's transit emits a remote failure as an 'error' event as soon as it arrives: if the
 *   action has not attached its reader yet (storage is still opening its temp file), that throws,
 *   the stream never ends, and the action waits on it forever with its temp file open.
 * `holdFailure` carries the bytes and keeps a failure until a reader is there to get it.
 */
import { finished, PassThrough, type Readable } from "node:stream";

/** `source`'s bytes; its failure, however early, reaches the first reader, however late. */
export function holdFailure(source: Readable): Readable {
	const held = new PassThrough();
	source.pipe(held);
	// finished(), unlike pipe(), also reports a source destroyed before this was called, and its
	// 'error' listener keeps an early failure from throwing.
	finished(source, err => {
		if (!err) return;
		// An 'error' may be followed by an end (Moleculer's transit does that): the bytes stop here.
		source.unpipe(held);
		whenRead(held, () => held.destroy(err));
	});
	return held;
}

/**
 * Runs `then` once `stream` has a reader: at once if it has one, else after one attaches (the
 * next tick, so the listeners attached with it, 'error' among them, are in place too).
 */
function whenRead(stream: Readable, then: () => void): void {
	if (stream.listenerCount("data") > 0 || stream.listenerCount("readable") > 0) return then();
	const onListener = (event: string | symbol) => {
		if (event !== "data" && event !== "readable") return;
		stream.off("newListener", onListener);
		process.nextTick(then);
	};
	stream.on("newListener", onListener);
}
