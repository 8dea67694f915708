/**
 * Durable work queues: @moleculer/channels as a broker middleware. Embedded mode (no
 * transporter) uses its in-process Fake adapter (no persistence and no retries: the reconciler
 * in services/worker.service.ts re-enqueues what a restart lost). Distributed mode uses Redis
 * Streams with consumer groups on the transporter's Redis, through DurableRedisAdapter (upstream
 * 0.1.8 with its consumer-removal and retry-cap defects fixed). Services declare `channels:` in
 * their schema and send with `broker.sendToChannel(name, payload)`.
 */
import Channels from "@moleculer/channels";
import type { Middleware, ServiceBroker } from "moleculer";
import type { Config } from "../config/index.ts";
import { DurableRedisAdapter } from "./durable-redis-adapter.ts";

export function channelsAdapter(config: Config): InstanceType<typeof Channels.Adapters.Base> {
	if (!config.transporter?.startsWith("redis")) return new Channels.Adapters.Fake({ prefix: config.namespace });
	return new DurableRedisAdapter({
		prefix: config.namespace,
		maxInFlight: config.workerMaxInFlight,
		maxRetries: config.jobMaxAttempts,
		stopGraceMs: config.jobStopGraceMs,
		redis: {
			url: config.transporter,
			consumerOptions: {
				// A job whose worker died (or failed it) is claimed by another worker after this long.
				minIdleTime: config.jobRedeliverAfterMs,
				claimInterval: config.jobClaimIntervalMs,
				// A group created after jobs were sent (the first worker ever starting) still sees them.
				startID: "0"
			}
		}
	});
}

/**
 * The node is told to stop: its job channels take no new job from now on, and the jobs in flight
 * get JOB_STOP_GRACE_MS before they are handed back to other workers (DurableRedisAdapter). A
 * no-op in embedded mode, whose in-process queue the reconciler refills at the next start.
 */
export function stopTakingJobs(broker: ServiceBroker): void {
	const adapter = (broker as ServiceBroker & { channelAdapter?: unknown }).channelAdapter;
	if (adapter instanceof DurableRedisAdapter) adapter.stopTakingJobs();
}

/** Per broker: settles once its channels are subscribed (the middleware's own `started`). */
const subscribed = new WeakMap<ServiceBroker, Promise<void>>();

/**
 * Resolves once this broker's job channels are subscribed. The middleware subscribes only after
 * every service has started, so a job a service sends from its own `started` (the reconciler's
 * first pass) would reach no consumer: embedded mode's in-process queue drops it.
 */
export function whenChannelsSubscribed(broker: ServiceBroker): Promise<void> {
	return subscribed.get(broker) ?? Promise.resolve();
}

export function channelsMiddleware(config: Config): Middleware {
	// The typings demand every middleware option; the middleware fills in defaults for the rest.
	const options = { adapter: channelsAdapter(config) } as unknown as Parameters<typeof Channels.Middleware>[0];
	const middleware = Channels.Middleware(options) as unknown as Middleware & { created(broker: ServiceBroker): void; started(): Promise<void> };
	const { created, started } = middleware;
	let markSubscribed: () => void = () => undefined;
	middleware.created = function (this: unknown, broker: ServiceBroker) {
		subscribed.set(broker, new Promise(resolve => (markSubscribed = resolve)));
		return created.call(this, broker);
	};
	middleware.started = async function (this: unknown) {
		await started.call(this);
		markSubscribed();
	};
	return middleware;
}
