/**
 * The HTTP gateway (moleculer-web): the only way in from outside. REST aliases come from each
 * service's own `rest` definitions; every error leaves as JSON `{name, message, code, type, data}`
 * with `code` as the status.
 */
import type { Context, ServiceSchema } from "moleculer";
import ApiGateway, { type ApiSettingsSchema } from "moleculer-web";
import type { IncomingMessage } from "node:http";
import { getConfig } from "../config/index.ts";
import { AuthMixin } from "../mixins/auth.mixin.ts";
import { LiveRoutesMixin } from "../mixins/live-routes.mixin.ts";
import { WebAppMixin } from "../mixins/web-app.mixin.ts";
import { jsonBodyInSlices } from "../models/http/json-body.ts";
import { corsSettings, rateLimitSettings, sendJsonError } from "../models/http/gateway.ts";
import { type RequestInfo, requestInfoOf } from "../models/http/request.ts";

const config = getConfig();

function copyRequestInfo(ctx: Context<unknown, { request?: RequestInfo }>, _route: unknown, req: IncomingMessage): void {
	ctx.meta.request = requestInfoOf(req);
}

const NEVER_EXPOSED = [/^api\./, /^\$node\./];

const api: ServiceSchema<ApiSettingsSchema> = {
	name: "api",
	// A mixin earlier in the list overrides later ones: LiveRoutesMixin's send404 and
	// regenerateAutoAliases wrap WebAppMixin's and moleculer-web's own.
	mixins: [LiveRoutesMixin, WebAppMixin, ApiGateway as unknown as Partial<ServiceSchema>, AuthMixin],

	settings: {
		port: config.port,
		ip: config.host,
		cors: corsSettings(config.corsOrigins),
		rateLimit: rateLimitSettings(config.rateLimitPerMinute, config.trustProxy),
		logRequest: "debug",
		logResponse: "debug",
		logRequestParams: null,
		logResponseData: null,
		onError: sendJsonError,
		routes: [
			{
				path: "/api",
				autoAliases: true,
				// Health and readiness exist from the start: auto-aliases are rebuilt a moment after
				// the services change, and a probe must get the health service's own answer then.
				aliases: { "GET /health": "health.live", "GET /ready": "health.ready" },
				mappingPolicy: "restrict",
				blacklist: NEVER_EXPOSED,
				authentication: true,
				authorization: true,
				bodyParsers: { json: { strict: true, limit: "1mb" }, urlencoded: { extended: false, limit: "64kb" } },
				onBeforeCall: copyRequestInfo
			},
			{
				// Creating an import takes up to 100,000 URLs: a body limit of its own, not raised for every
				// route, and a parser that works in slices of a few ms (one JSON.parse of 15 MB would
				// hold the event loop for hundreds of ms).
				path: "/api/imports",
				mappingPolicy: "restrict",
				aliases: { "POST /": "imports.create" },
				authentication: true,
				authorization: true,
				bodyParsers: false,
				use: [jsonBodyInSlices({ limit: 16 * 1024 * 1024 })],
				onBeforeCall: copyRequestInfo
			},
			{
				// Public share links live outside /api so they read well: /p/<image id>.
				path: "/p",
				mappingPolicy: "restrict",
				// `/:id` also takes `/<id>.<ext>` (ids have no dots): publicContent splits it.
				aliases: {
					"GET /:id": "images.publicContent",
					"HEAD /:id": "images.publicContent",
					"GET /:id/thumbnail": "images.publicThumbnail",
					"HEAD /:id/thumbnail": "images.publicThumbnail"
				},
				bodyParsers: false,
				onBeforeCall: copyRequestInfo
			}
		]
	}

};

export default api;
