/**
 * Broker options for every imgmesh node. Embedded mode (the default) has no transporter: all
 * services run in one process and calls are local function calls. With TRANSPORTER=redis://…
 * the node joins the cluster of its NAMESPACE: Moleculer's built-in discovery (heartbeats over
 * Redis) finds the other nodes, and calls are balanced over every node hosting the action.
 */
import { Validators, type BrokerOptions, type Errors } from "moleculer";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { getConfig, type Config } from "./config/index.ts";
import { channelsMiddleware } from "./cluster/channels.ts";
import pkg from "./package.json" with { type: "json" };

/**
 * Errors proving that the call never reached a handler: only those are retried, so no retry can
 * run an action twice (uploads, deletes and view counts are not idempotent). A timeout or a lost
 * answer (CALL_INTERRUPTED, REQUEST_REJECTED) may hide a call that did run: never retried.
 */
const NEVER_STARTED = new Set(["BrokerDisconnectedError", "QueueIsFullError", "ServiceNotAvailableError"]);

const judged = new WeakSet<object>();

/**
 * The retry middleware wraps local actions too, so an error that exhausted its retries in a
 * nested call is judged again by every action it passes through on its way out (the gateway's
 * `api.rest` included, which must never re-run). Only the first judgement of an error may retry.
 */
export function retryable(err: Errors.MoleculerError | undefined): boolean {
	if (!err || judged.has(err)) return false;
	judged.add(err);
	return !!err.retryable && NEVER_STARTED.has(err.name);
}

/**
 * Errors that say the endpoint itself is sick (its store is down, it times out, it crashes):
 * they count towards opening its circuit. A lost connection is the cluster's fault, not the
 * endpoint's, and client errors (4xx) are the caller's.
 */
export function endpointFault(err: Errors.MoleculerError | undefined): boolean {
	return !!err && typeof err.code === "number" && err.code >= 500 && err.type !== "CALL_INTERRUPTED";
}

function transporter(config: Config): BrokerOptions["transporter"] {
	if (!config.transporter) return null;
	if (!config.transporter.startsWith("redis")) throw new Error(`TRANSPORTER must be a redis:// or rediss:// URL, got "${config.transporter}"`);
	// Moleculer's own class is `{ type: "Redis", options }`; this subclass fixes moleculer#1363.
	// Loaded only here: ioredis costs an embedded node ~8 MiB of RSS it would never use.
	const { SafeRedisTransporter } = createRequire(import.meta.url)("./cluster/redis-transporter.ts") as typeof import("./cluster/redis-transporter.ts");
	return new SafeRedisTransporter({ url: config.transporter });
}

function metrics(config: Config): BrokerOptions["metrics"] {
	if (config.metricsPort === undefined) return { enabled: false };
	return {
		enabled: true,
		reporter: { type: "Prometheus", options: { port: config.metricsPort, path: "/metrics", defaultLabels: (registry: { broker: { namespace: string; nodeID: string } }) => ({ namespace: registry.broker.namespace, nodeID: registry.broker.nodeID }) } }
	};
}

export function brokerOptions(config: Config): BrokerOptions {
	return {
		nodeID: config.nodeId,
		// Clusters sharing one Redis stay apart; the job streams use the same name as their prefix.
		namespace: config.namespace,
		transporter: transporter(config),
		// Shared with the other nodes in INFO packets: the REPL's `cluster` command shows it.
		metadata: { imgmesh: pkg.version },
		// Buffers travel as base64 instead of JSON's array of numbers: with 1 MiB chunks (below)
		// a streamed upload crosses Redis about 3x faster (docs/distributed.md). Otherwise plain JSON.
		serializer: "JSONExt",
		logger: { type: "Console", options: { level: config.logLevel, formatter: "short", colors: process.stdout.isTTY } },
		logLevel: config.logLevel,
		requestTimeout: config.requestTimeoutMs,
		retryPolicy: { enabled: true, retries: 3, delay: 100, maxDelay: 1000, factor: 2, check: retryable as (err: Error) => boolean },
		// Per endpoint (node + action): half the calls of the last 30 s failing (at least 10 calls)
		// opens it; callers then go to other nodes, or get 503 at once when none is left. After
		// 5 s one call tests it again.
		circuitBreaker: { enabled: true, threshold: 0.5, minRequestCount: 10, windowTime: 30, halfOpenTime: 5000, check: endpointFault as (err: Error) => boolean },
		// Off by default. CPU-heavy actions (image transforms, classification) opt in with
		// `bulkhead: { enabled: true, concurrency, maxQueueSize }` on the action: past their queue
		// they refuse at once with QueueIsFullError (429, retried on another node). The default
		// queue is unbounded because embedded mode's job queue (the channels Fake adapter) is a
		// bulkheaded event per channel that sets only its concurrency: a bound of 100 waiting
		// would drop a burst's jobs (an import of 400 images enqueues 400 at once; jobs are {id}).
		bulkhead: { enabled: false, concurrency: availableParallelism(), maxQueueSize: 0 },
		// Every action validates its params: unknown fields are rejected by `$$strict`.
		// fastest-validator's own enumValue message shows the allowed values as if they were the
		// rejected one ("field value 'a, b, c' does not match"): say which is which.
		validator: new Validators.Fastest({ messages: { enumValue: "The '{field}' field value '{actual}' is not one of the allowed values: {expected}." } }),
		// Caches actions that opt in (`cache:`), e.g. the gateway's per-request identity look-up.
		cacher: { type: "Memory", options: { ttl: 30, clone: false } },
		// Graceful stop: the node first tells the others it has no services (they stop sending),
		// waits `stopDelay` for that to arrive, then waits up to SHUTDOWN_TIMEOUT_MS for calls in
		// flight (cluster/signals.ts exits by then in any case).
		tracking: { enabled: true, shutdownTimeout: config.shutdownTimeoutMs },
		// main.ts and repl.ts handle SIGINT/SIGTERM: with Moleculer's own handlers too, one signal
		// stopped the broker twice ("Unable to stop all services: database is not open").
		skipProcessEventRegistration: true,
		heartbeatInterval: config.heartbeatInterval,
		heartbeatTimeout: config.heartbeatTimeout,
		// Streams (uploads, downloads) cross Redis in 1 MiB chunks, one in flight per stream.
		transit: { maxChunkSize: 1024 * 1024 },
		registry: { strategy: "RoundRobin", preferLocal: true, stopDelay: 500, discoverer: { type: "Local" } },
		metrics: metrics(config),
		tracing: { enabled: false },
		middlewares: [channelsMiddleware(config)]
	};
}

export default brokerOptions(getConfig());
