/**
 * Graceful stop on SIGINT/SIGTERM for every process that runs a broker (main.ts, repl.ts): one
 * broker.stop() however many signals arrive, then exit. Moleculer's own handlers are off
 * (skipProcessEventRegistration in moleculer.config.ts): with both, one signal stopped the broker
 * twice, and the second stop failed on stores the first had already closed.
 */
import type { ServiceBroker } from "moleculer";

export function stopOnSignals(broker: ServiceBroker): void {
	let stopping = false;
	const stop = async (): Promise<void> => {
		if (stopping) return;
		stopping = true;
		await broker.stop();
		process.exit(0);
	};
	process.on("SIGINT", stop);
	process.on("SIGTERM", stop);
}
