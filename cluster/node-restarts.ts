/**
 * Calls to a node that restarted fail at once instead of waiting for REQUEST_TIMEOUT_MS.
 *
 * A node killed and started again with the same NODE_ID before its heartbeat timed out (a
 * container restarted by its orchestrator) is never "disconnected" for Moleculer: the new
 * process's INFO packet only updates the registry entry. The requests sent to the dead process
 * stay pending until their timeout (120 s by default), holding the callers (a worker's job, an
 * upload) that long. A new instance id on a known node means the process behind it is gone: its
 * pending requests are rejected (RequestRejectedError, retryable), as Moleculer does on a
 * disconnect.
 */
import type { Middleware, ServiceBroker } from "moleculer";

interface NodeEvent {
	node: { id: string; instanceID: string | null; local?: boolean };
}

export function nodeRestartsMiddleware(): Middleware {
	const instances = new Map<string, string | null>();
	let broker: ServiceBroker;
	return {
		name: "NodeRestarts",
		created(created: ServiceBroker) {
			broker = created;
		},
		broadcastLocal(next: (event: string, payload?: unknown, opts?: unknown) => Promise<void>) {
			return (event: string, payload?: unknown, opts?: unknown) => {
				if (event === "$node.connected" || event === "$node.updated") {
					const { node } = payload as NodeEvent;
					const known = instances.get(node.id);
					instances.set(node.id, node.instanceID);
					if (!node.local && known !== undefined && known !== node.instanceID) {
						broker.logger.warn(`Node '${node.id}' restarted: its calls still pending are rejected.`);
						broker.transit?.removePendingRequestByNodeID(node.id);
					}
				}
				return next(event, payload, opts);
			};
		}
		// Moleculer's typings declare broadcastLocal's hook as returning a promise; at run time it
		// wraps the method, as written here (moleculer/src/middleware.js).
	} as unknown as Middleware;
}
