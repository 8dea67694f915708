/**
 * Keeps the gateway's REST routes honest about a changing cluster, mixed into the api service.
 * moleculer-web rebuilds its auto-aliases a moment (debounced) after the services change, and they
 * go away with the last node of their service: while a required service has no live node, or the
 * routes lag behind the services, an unknown /api path may well be a real route, so it answers
 * 503 (try again) rather than 404. Readiness asks `routesCurrent`.
 */
import type { ServiceBroker, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import type { IncomingMessage, ServerResponse } from "node:http";
import { liveServiceNames } from "../cluster/live-services.ts";
import { REQUIRED_SERVICES } from "../config/index.ts";
import { UnavailableError } from "../models/shared/errors.ts";
import { WebAppMixin } from "./web-app.mixin.ts";

type Gateway = {
	name: string;
	broker: ServiceBroker;
	/** Names of the live services, as last seen. */
	liveServices?: string;
	/** Changes of that list seen so far. */
	servicesChanges?: number;
	/** How many of them the current REST aliases reflect. */
	aliasedChanges?: number;
	sendError(req: IncomingMessage, res: ServerResponse, err: Error): void;
};

const webAppSend404 = (WebAppMixin.methods as { send404(this: unknown, req: IncomingMessage, res: ServerResponse): void }).send404;
const generateAliases = (ApiGateway as unknown as { methods: { regenerateAutoAliases(this: Gateway, route: unknown): void } }).methods.regenerateAutoAliases;

function liveServices(broker: ServiceBroker): string {
	return liveServiceNames(broker).join(",");
}

/**
 * moleculer-web rebuilds the auto-aliases a moment (debounced) after the services change; until
 * then the routes of a service that just (re)appeared are missing. A counter of changes tells.
 */
function routesCurrent(gateway: Gateway): boolean {
	return gateway.aliasedChanges === (gateway.servicesChanges ?? 0);
}

/**
 * moleculer-web's answer to a path that matches no route. Auto-aliases go away with the last node
 * of their service and come back after it returns, e.g. around a Redis restart. While a required
 * service has no live node, or the routes lag behind the services, the path may well be a real
 * route: the answer is 503 (try again), not 404. (Outside the API the web app answers.)
 */
function send404(this: Gateway, req: IncomingMessage & { originalUrl?: string; $next?: () => void }, res: ServerResponse): void {
	if (req.$next) return req.$next();
	const live = liveServices(this.broker).split(",");
	const missing = REQUIRED_SERVICES.filter(name => !live.includes(name));
	const apiPath = /^\/(api|p|s)(\/|$)/.test(new URL(req.originalUrl ?? req.url ?? "/", "http://x").pathname);
	if (apiPath && (missing.length || !routesCurrent(this))) {
		return this.sendError(req, res, new UnavailableError("Part of the cluster is unavailable; try again shortly", { missing }));
	}
	// Everything else as the web app answers it (its client routes, or 404).
	webAppSend404.call(this, req, res);
}

export const LiveRoutesMixin: Partial<ServiceSchema> = {
	actions: {
		/** Whether this gateway's REST routes reflect the live services (readiness; never on REST). */
		routesCurrent: {
			visibility: "public",
			params: { $$strict: true },
			handler() {
				return routesCurrent(this as unknown as Gateway);
			}
		}
	},

	events: {
		// Only a change of which services are live changes the routes (not a node joining with
		// services already served, nor the REPL's service-less node).
		"$services.changed"(this: Gateway) {
			const live = liveServices(this.broker);
			if (live === this.liveServices) return;
			this.liveServices = live;
			this.servicesChanges = (this.servicesChanges ?? 0) + 1;
		}
	},

	methods: {
		send404,
		regenerateAutoAliases(this: Gateway, route: unknown) {
			const changes = this.servicesChanges ?? 0;
			generateAliases.call(this, route);
			this.aliasedChanges = changes;
		}
	}
};
