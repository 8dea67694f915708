/**
 * The HTTP gateway (moleculer-web): the only way in from outside. REST aliases come from each
 * service's own `rest` definitions; every error leaves as JSON `{name, message, code, type, data}`
 * with `code` as the status.
 */
import type { Context, ServiceSchema } from "moleculer";
import ApiGateway, { type ApiSettingsSchema } from "moleculer-web";
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { getConfig } from "../config/index.ts";
import { AuthMixin } from "../mixins/auth.mixin.ts";
import { LiveRoutesMixin } from "../mixins/live-routes.mixin.ts";
import { appPageForBrowsers, WebAppMixin } from "../mixins/web-app.mixin.ts";
import { clientAddress, corsSettings, rateLimitSettings, sendJsonError, setSecurityHeaders } from "../models/http/gateway.ts";
import { jsonBody } from "../models/http/json-body.ts";
import { parseErrorAnswer, type RequestInfo, requestInfoOf } from "../models/http/request.ts";
import { jsonBodyInSlices } from "../models/http/sliced-json-body.ts";

const config = getConfig();

/** Methods whose answers may be a 304: those that only read. */
const CONDITIONAL_METHODS = new Set(["GET", "HEAD"]);

/** What actions may know of the request; `clientAddress` is the one the rate limit keys on (users.login throttles by it). */
function copyRequestInfo(ctx: Context<unknown, { request?: RequestInfo; clientAddress?: string }>, _route: unknown, req: IncomingMessage): void {
	ctx.meta.request = requestInfoOf(req);
	ctx.meta.clientAddress = clientAddress(req, config.trustProxy);
	// moleculer-web answers 304 instead of any 2xx that its freshness check finds fresh, whatever
	// the method, and `If-None-Match: *` is fresh without an ETag: an upload, an edit or a delete
	// would be done and answered 304 with no body. No action here is conditional on anything but
	// a read, so the validators of other methods are ignored (as RFC 9110 §13.1 lets a server do).
	if (!CONDITIONAL_METHODS.has(req.method ?? "")) {
		delete req.headers["if-none-match"];
		delete req.headers["if-modified-since"];
	}
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
				bodyParsers: { json: jsonBody("1mb"), urlencoded: { extended: false, limit: "64kb" } },
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
			},
			{
				// Share links, outside /api like /p: /s/<token>. No user is ever identified here (a link is
				// its own credential); a browser opening a link gets the app's page for it.
				path: "/s",
				mappingPolicy: "restrict",
				aliases: {
					"GET /:token": "shares.open",
					"POST /:token/unlock": "shares.unlock",
					...Object.fromEntries(
						["GET", "HEAD"].flatMap(method => [
							[`${method} /:token/content`, "shares.content"],
							[`${method} /:token/thumbnail`, "shares.thumbnail"],
							[`${method} /:token/images/:imageId/content`, "shares.albumContent"],
							[`${method} /:token/images/:imageId/thumbnail`, "shares.albumThumbnail"]
						])
					)
				},
				use: [appPageForBrowsers],
				bodyParsers: { json: jsonBody("16kb") },
				onBeforeCall: copyRequestInfo
			}
		]
	},

	created() {
		// moleculer-web's server exists now (made in its own created()); a listener ahead of its
		// handler reaches every response, including static files, 404s and errors.
		const server = (this as unknown as { server: Server }).server;
		server.prependListener("request", (req, res) => setSecurityHeaders(req, res, config.trustProxy));
		// A request Node's parser refuses (headers too large, a malformed request line) never
		// reaches a route: answer it with the JSON error every other answer has, not Node's empty one.
		server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex & { _httpMessage?: { headersSent?: boolean } }) => {
			// Nothing can be written to a socket that is gone, or half-way through an answer.
			if (err.code === "ECONNRESET" || !socket.writable || socket._httpMessage?.headersSent) return socket.destroy();
			socket.end(parseErrorAnswer(err));
		});
	}
};

export default api;
