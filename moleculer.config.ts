/**
 * Broker options for every imgmesh node. Embedded mode (the default) has no transporter: all
 * services run in one process and calls are local function calls.
 */
import type { BrokerOptions } from "moleculer";
import { getConfig, type Config } from "./config/index.ts";
import { channelsMiddleware } from "./mixins/channels.ts";

export function brokerOptions(config: Config): BrokerOptions {
	return {
		nodeID: config.nodeId,
		// Clusters sharing one Redis stay apart; the job streams use the same name as their prefix.
		namespace: config.namespace,
		// Distributed mode: nodes talk over Redis (TRANSPORTER); embedded mode has none.
		// (A URL string is accepted at run time; the typings only list the transporter names.)
		transporter: (config.transporter ?? null) as BrokerOptions["transporter"],
		logger: { type: "Console", options: { level: config.logLevel, formatter: "short", colors: process.stdout.isTTY } },
		logLevel: config.logLevel,
		requestTimeout: config.requestTimeoutMs,
		// Every action validates its params: unknown fields are rejected by `$$strict`.
		validator: true,
		// Caches actions that opt in (`cache:`), e.g. the gateway's per-request identity look-up.
		cacher: { type: "Memory", options: { ttl: 30, clone: false } },
		tracking: { enabled: true, shutdownTimeout: 30_000 },
		// Embedded mode's job queue (the channels Fake adapter) is a bulkheaded event per channel:
		// Moleculer's default bound of 100 waiting would drop a burst's jobs (an import of 400
		// images enqueues 400 at once). Jobs are tiny ({id}), so the queue is unbounded; bulkheads
		// stay off unless an action or event enables its own (with its own bound).
		bulkhead: { enabled: false, maxQueueSize: 0 },
		registry: { strategy: "RoundRobin", preferLocal: true },
		metrics: { enabled: false },
		tracing: { enabled: false },
		middlewares: [channelsMiddleware(config)]
	};
}

export default brokerOptions(getConfig());
