/**
 * Durable work queues: @moleculer/channels as a broker middleware. Embedded mode (no
 * transporter) uses its in-process Fake adapter; distributed mode uses Redis Streams with
 * consumer groups on the transporter's Redis. Services declare `channels:` in their schema and
 * send with `broker.sendToChannel(name, payload)`.
 */
import Channels from "@moleculer/channels";
import type { Middleware } from "moleculer";
import type { Config } from "../config/index.ts";

export function channelsMiddleware(config: Config): Middleware {
	const adapter = config.transporter?.startsWith("redis")
		? { type: "Redis", options: { redis: config.transporter, prefix: `${config.namespace}.` } }
		: { type: "Fake", options: {} };
	// The typings demand every adapter option; the middleware fills in defaults for the rest.
	return Channels.Middleware({ adapter } as unknown as Parameters<typeof Channels.Middleware>[0]) as unknown as Middleware;
}
