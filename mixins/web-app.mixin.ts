/**
 * Serves the browser app (dist/web, built by `npm run build`) from the gateway, so there is no
 * separate front-end server. Files under /assets/<content hash>/ never change: cached for a
 * year. index.html is revalidated on every load so a new build shows at once, and it answers
 * every client route (/images/abc, /imports/…), which only the app itself can resolve.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Errors, type ServiceSchema } from "moleculer";
import type { ApiSettingsSchema } from "moleculer-web";
import { fileURLToPath } from "node:url";

export const WEB_DIR = fileURLToPath(new URL("../dist/web/", import.meta.url));

/**
 * Only the app's own files. It replaces the gateway's default policy (which allows nothing) on
 * the page; nosniff, framing and referrer headers come from the gateway (models/http/gateway.ts).
 */
const CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

function setHeaders(res: ServerResponse, path: string): void {
	if (path.includes("/assets/")) {
		res.setHeader("Cache-Control", "public, max-age=31536000, immutable");
	} else {
		res.setHeader("Cache-Control", "no-cache");
		res.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
	}
}

/** The answer moleculer-web's own send404 gives. */
const notFound = () => new Errors.MoleculerClientError("Not found", 404, "NOT_FOUND");

type Request = IncomingMessage & { originalUrl?: string; $next?: () => void };
type Serve = (req: Request, res: ServerResponse, next: () => void) => void;
type Gateway = { serve: Serve; sendError(req: IncomingMessage, res: ServerResponse, err: Error): void };

/** The path as the client sent it (moleculer-web rewrites req.url to be relative to a route). */
function pathOf(req: Request): string {
	return new URL(req.originalUrl ?? req.url ?? "/", "http://x").pathname;
}

/** Paths of the API (share links' /s/ too): an unknown one there is an API 404, never a file. */
function isApiPath(path: string): boolean {
	return /^\/(api|p|s)(\/|$)/.test(path);
}

/** A browser navigating: GET (or HEAD) asking for a page. */
function wantsPage(req: Request): boolean {
	return (req.method === "GET" || req.method === "HEAD") && (req.headers.accept?.includes("text/html") ?? false);
}

/** A browser navigating to a client route: an extension-less path outside the API. */
function isAppRoute(req: Request): boolean {
	const path = pathOf(req);
	if (isApiPath(path) || path.startsWith("/assets/") || path.split("/").pop()!.includes(".")) return false;
	return wantsPage(req);
}

/** Answers with the app's page (index.html), or the gateway's 404 when the app is not built. */
function serveApp(gateway: Gateway, req: Request, res: ServerResponse): void {
	// Both: the file server reads the one, the API-path guard in created() the other.
	req.url = req.originalUrl = "/index.html";
	gateway.serve(req, res, () => gateway.sendError(req, res, notFound()));
}

/**
 * Route middleware of the share links' route: a browser opening a link (/s/<token>) gets the
 * app, whose page for it asks the same URL for JSON; every other request goes on to the route.
 */
export function appPageForBrowsers(this: Gateway, req: Request, res: ServerResponse, next: () => void): void {
	if (wantsPage(req) && /^\/s\/[^/]+\/?$/.test(pathOf(req))) return serveApp(this, req, res);
	next();
}

export const WebAppMixin: Partial<ServiceSchema<Partial<ApiSettingsSchema>>> = {
	settings: {
		assets: { folder: WEB_DIR, options: { index: "index.html", cacheControl: false, setHeaders } }
	},
	created() {
		// moleculer-web tries files for any unrouted request, even under /api with the route prefix
		// cut off (GET /api/index.html would be the app): files are served outside the API only.
		const gateway = this as unknown as Gateway;
		const serve = gateway.serve;
		gateway.serve = (req, res, next) => (isApiPath(pathOf(req)) ? next() : serve(req, res, next));
	},
	methods: {
		/** moleculer-web calls this for what neither a route nor a file answered. */
		send404(this: Gateway, req: Request, res: ServerResponse) {
			if (req.$next) return req.$next();
			if (isAppRoute(req)) return serveApp(this, req, res);
			this.sendError(req, res, notFound());
		}
	}
};
