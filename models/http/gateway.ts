/**
 * The gateway's HTTP policies, as plain functions of the configuration: CORS with exact origin
 * matching, the rate limit's client key, and the JSON error answer (models/http/request.ts maps
 * errors to statuses).
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
