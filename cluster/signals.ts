/**
 * Graceful stop on SIGINT/SIGTERM for every process that runs a broker (main.ts, repl.ts): one
 * broker.stop() however many signals arrive, then exit. Moleculer's own handlers are off
 * (skipProcessEventRegistration in moleculer.config.ts): with both, one signal stopped the broker
 * twice, and the second stop failed on stores the first had already closed.
 *
 * The job channels stop taking jobs at the signal, before the broker's own stop delays, so their
 * grace (JOB_STOP_GRACE_MS) counts from it. The process exits within the broker's
 * shutdownTimeout (SHUTDOWN_TIMEOUT_MS) even when a stop step hangs, and at once on a second
 * signal: an operator who presses Ctrl+C again does not want to wait.
 */
import type { ServiceBroker } from "moleculer";
import { stopTakingJobs } from "./channels.ts";

/** Exit status of a stop that did not finish: the node left, but not cleanly. */
const EXIT_FORCED = 1;

export function stopOnSignals(broker: ServiceBroker): void {
	let stopping = false;
	const stop = async (signal: NodeJS.Signals): Promise<void> => {
		if (stopping) {
			broker.logger.warn(`${signal} again while stopping: exiting now.`);
			process.exit(EXIT_FORCED);
		}
		stopping = true;
		const timeout = broker.options.tracking?.shutdownTimeout ?? 0;
		broker.logger.info(`${signal}: stopping; exiting within ${timeout} ms, or at once on a second signal.`);
		setTimeout(() => {
			broker.logger.error(`The node did not stop within ${timeout} ms: exiting now.`);
			process.exit(EXIT_FORCED);
		}, timeout).unref();
		stopTakingJobs(broker);
		await broker.stop();
		process.exit(0);
	};
	process.on("SIGINT", stop);
	process.on("SIGTERM", stop);
}
