/**
 * The HTTP gateway (moleculer-web): the only way in from outside. REST aliases come from each
 * service's own `rest` definitions; every error leaves as JSON `{name, message, code, type, data}`
 * with `code` as the status.
 */
import type { Context, ServiceBroker, ServiceSchema } from "moleculer";
import ApiGateway, { type ApiSettingsSchema } from "moleculer-web";
import type { IncomingMessage, ServerResponse } from "node:http";
import { getConfig } from "../config/index.ts";
import { AuthMixin } from "../mixins/auth.mixin.ts";
import { UnavailableError } from "../models/shared/errors.ts";
import { REQUIRED } from "./health.service.ts";
import { WebAppMixin } from "../mixins/web-app.mixin.ts";
import { errorResponse, type HttpError, type RequestInfo, requestInfoOf } from "../models/http/request.ts";

const config = getConfig();

/**
 * The client address for rate limiting: the socket peer, unless a trusted proxy is configured,
 * in which case the address that proxy appended last to X-Forwarded-For (anything before it
 * was written by the client and cannot be trusted).
 */
function clientAddress(req: IncomingMessage): string {
	const forwarded = req.headers["x-forwarded-for"];
	if (config.trustProxy && typeof forwarded === "string") {
		const last = forwarded.split(",").pop()?.trim();
		if (last) return last;
	}
	return req.socket.remoteAddress ?? "unknown";
}

/** Exact origin matching (moleculer-web's own string matching is a substring test). */
function corsSettings() {
	if (config.corsOrigins.length === 0) return undefined;
	const allowed = new Set(config.corsOrigins);
	return {
		origin: (origin: string) => allowed.has(origin),
		methods: ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
		allowedHeaders: ["Authorization", "Content-Type", "Range", "If-None-Match"],
		exposedHeaders: ["ETag", "Content-Length", "Content-Range", "Location"],
		maxAge: 3600
	};
}

function rateLimitSettings() {
	if (config.rateLimitPerMinute === 0) return undefined;
	return { window: 60_000, limit: config.rateLimitPerMinute, headers: true, key: clientAddress };
}

function copyRequestInfo(ctx: Context<unknown, { request?: RequestInfo }>, _route: unknown, req: IncomingMessage): void {
	ctx.meta.request = requestInfoOf(req);
}

function sendJsonError(this: { logger: any }, req: IncomingMessage, res: ServerResponse, err: HttpError): void {
	const { status, body } = errorResponse(err);
	if (status >= 500) this.logger.error(`${req.method} ${req.url} failed:`, err);
	if (res.headersSent) {
		// The body is already streaming: the only honest signal left is a broken connection.
		res.destroy();
		return;
	}
	// Discard a body nobody read (e.g. an upload refused for its token), so that the client,
	// still sending, gets to read this answer instead of a reset connection. A stream call that
	// failed half-way (the cluster connection lost) leaves its reader attached, pausing the body
	// at every chunk it can no longer forward: drop it, or the body never drains.
	if (!req.complete) {
		req.removeAllListeners("data");
		req.resume();
	}
	res.statusCode = status;
	res.setHeader("Content-Type", "application/json; charset=utf-8");
	res.end(JSON.stringify(body));
}

const NEVER_EXPOSED = [/^api\./, /^\$node\./];

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
	return [...new Set(broker.registry.getServiceList({ onlyAvailable: true }).map(service => service.name))].sort().join(",");
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
	const missing = REQUIRED.filter(name => !live.includes(name));
	const apiPath = /^\/(api|p)(\/|$)/.test(new URL(req.originalUrl ?? req.url ?? "/", "http://x").pathname);
	if (apiPath && (missing.length || !routesCurrent(this))) {
		return this.sendError(req, res, new UnavailableError("Part of the cluster is unavailable; try again shortly", { missing }));
	}
	// Everything else as the web app answers it (its client routes, or 404).
	webAppSend404.call(this, req, res);
}

const api: ServiceSchema<ApiSettingsSchema> = {
	name: "api",
	// WebAppMixin first: a mixin earlier in the list overrides later ones (its send404 wins).
	mixins: [WebAppMixin, ApiGateway as unknown as Partial<ServiceSchema>, AuthMixin],

	settings: {
		port: config.port,
		ip: config.host,
		cors: corsSettings(),
		rateLimit: rateLimitSettings(),
		logRequest: "debug",
		logResponse: "debug",
		logRequestParams: null,
		logResponseData: null,
		onError: sendJsonError,
		routes: [
			{
				path: "/api",
				autoAliases: true,
				mappingPolicy: "restrict",
				blacklist: NEVER_EXPOSED,
				authentication: true,
				authorization: true,
				bodyParsers: { json: { strict: true, limit: "1mb" }, urlencoded: { extended: false, limit: "64kb" } },
				onBeforeCall: copyRequestInfo
			},
			{
				// Creating an import takes up to 100,000 URLs: a body limit of its own, not raised for every route.
				path: "/api/imports",
				mappingPolicy: "restrict",
				aliases: { "POST /": "imports.create" },
				authentication: true,
				authorization: true,
				bodyParsers: { json: { strict: true, limit: "16mb" } },
				onBeforeCall: copyRequestInfo
			},
			{
				// Public share links live outside /api so they read well: /p/<image id>.
				path: "/p",
				mappingPolicy: "restrict",
				// `/:id` also takes `/<id>.<ext>` (ids have no dots): publicContent splits it.
				aliases: {
					"GET /:id": "images.publicContent",
					"GET /:id/thumbnail": "images.publicThumbnail"
				},
				bodyParsers: false,
				onBeforeCall: copyRequestInfo
			}
		]
	},

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

export default api;
