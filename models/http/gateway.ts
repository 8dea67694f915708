/**
 * The gateway's HTTP policies, as plain functions of the configuration: the security headers of
 * every answer, CORS with exact origin matching, the rate limit's client key, and the JSON error
 * answer (models/http/request.ts maps errors to statuses).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { errorResponse, type HttpError } from "./request.ts";

/**
 * The client address for rate limiting and login throttling: the socket peer, unless a trusted proxy is configured,
 * in which case the address that proxy appended last to X-Forwarded-For (anything before it
 * was written by the client and cannot be trusted).
 */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
	const forwarded = req.headers["x-forwarded-for"];
	if (trustProxy && typeof forwarded === "string") {
		const last = forwarded.split(",").pop()?.trim();
		if (last) return last;
	}
	return req.socket.remoteAddress ?? "unknown";
}

/**
 * What every answer may do in a browser, by default nothing: no document of ours runs anything,
 * loads anything or is framed, so image bytes (a JPEG with a page appended, say) can never act
 * as a page of this origin. Inline style only, which the browser's own viewer needs to show an
 * image opened in a tab (a share link); without scripts it can do no harm. The web app's own
 * files replace this policy with theirs (web-app.mixin.ts).
 */
export const DEFAULT_CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox";

/** A year, as HSTS is usually given; a proxy that ends TLS may send its own instead. */
const HSTS = "max-age=31536000; includeSubDomains";

/**
 * Whether the client reached us over TLS: this server speaks plain HTTP, so only a trusted
 * proxy's X-Forwarded-Proto can say so (the last value: the one our proxy set).
 */
function overTls(req: IncomingMessage, trustProxy: boolean): boolean {
	const forwarded = req.headers["x-forwarded-proto"];
	if (!trustProxy || typeof forwarded !== "string") return false;
	return forwarded.split(",").pop()?.trim().toLowerCase() === "https";
}

/**
 * Sets the headers every answer carries, whatever sends it (an action, an error, a static file,
 * a 404), before anything else touches the response.
 */
export function setSecurityHeaders(req: IncomingMessage, res: ServerResponse, trustProxy: boolean): void {
	// Browsers take the content type as sent: uploaded bytes are never guessed into HTML or script.
	res.setHeader("X-Content-Type-Options", "nosniff");
	res.setHeader("Content-Security-Policy", DEFAULT_CONTENT_SECURITY_POLICY);
	// frame-ancestors for current browsers, X-Frame-Options for the rest: no clickjacking.
	res.setHeader("X-Frame-Options", "DENY");
	// Image and share-link URLs carry ids: never hand them to another site.
	res.setHeader("Referrer-Policy", "same-origin");
	if (overTls(req, trustProxy)) res.setHeader("Strict-Transport-Security", HSTS);
}

/** Exact origin matching (moleculer-web's own string matching is a substring test). */
export function corsSettings(origins: string[]) {
	if (origins.length === 0) return undefined;
	const allowed = new Set(origins);
	return {
		origin: (origin: string) => allowed.has(origin),
		methods: ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
		allowedHeaders: ["Authorization", "Content-Type", "Range", "If-None-Match"],
		exposedHeaders: ["ETag", "Content-Length", "Content-Range", "Location"],
		maxAge: 3600
	};
}

/** Requests per client address and minute; 0 turns the limit off. */
export function rateLimitSettings(perMinute: number, trustProxy: boolean) {
	if (perMinute === 0) return undefined;
	return { window: 60_000, limit: perMinute, headers: true, key: (req: IncomingMessage) => clientAddress(req, trustProxy) };
}

/** moleculer-web `onError`: the JSON error answer; server faults are logged, never shown. */
export function sendJsonError(this: { logger: { error(...args: unknown[]): void; warn(...args: unknown[]): void } }, req: IncomingMessage, res: ServerResponse, err: HttpError): void {
	const { status, body } = errorResponse(err);
	// A fault is an error; a backend or node that is away for now (503, 504) only a warning.
	if (status === 503 || status === 504) this.logger.warn(`${req.method} ${req.url}: ${status} ${err.message ?? ""}`);
	else if (status >= 500) this.logger.error(`${req.method} ${req.url} failed:`, err);
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
	// A refusal that knows when to come back (login throttle, password pool) says so.
	const retryAfter = (err.data as { retryAfter?: unknown } | null | undefined)?.retryAfter;
	if ((status === 429 || status === 503) && typeof retryAfter === "number" && Number.isFinite(retryAfter)) {
		res.setHeader("Retry-After", String(Math.max(0, Math.ceil(retryAfter))));
	}
	res.setHeader("Content-Type", "application/json; charset=utf-8");
	res.end(JSON.stringify(body));
}
