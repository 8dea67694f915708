/**
 * What the gateway hands to actions about an HTTP request, and how it answers errors: every error
 * leaves as JSON `{name, message, code, type, data}` with `code` as the status, and server faults
 * never leak their details.
 */
import type { IncomingMessage } from "node:http";

/** Request headers that actions need (conditional and range requests, uploads), and the method. */
export interface RequestInfo {
	/** HEAD answers with GET's headers and reads no bytes. */
	method?: string;
	contentType?: string;
	range?: string;
	ifNoneMatch?: string;
	accept?: string;
}

export function requestInfoOf(req: IncomingMessage): RequestInfo {
	return {
		method: req.method,
		contentType: req.headers["content-type"],
		range: req.headers.range,
		ifNoneMatch: req.headers["if-none-match"],
		accept: req.headers.accept
	};
}

/** Whatever was thrown: a Moleculer error, a Node error, anything. */
export interface HttpError {
	name?: string;
	message?: string;
	code?: unknown;
	type?: string;
	data?: unknown;
	status?: number;
}

/**
 * Moleculer's errors for "no live node can take this call now" (the service's nodes are gone or
 * their circuits open, or this node lost the transporter) are 404 and 502 by default; for an HTTP
 * client they all mean: unavailable, try again later.
 */
const CLUSTER_UNAVAILABLE = new Set(["ServiceNotFoundError", "ServiceNotAvailableError", "BrokerDisconnectedError"]);

/** Maps any error to a status and a JSON body; server faults never leak their details. */
export function errorResponse(err: HttpError): { status: number; body: Record<string, unknown> } {
	const raw = typeof err.code === "number" ? err.code : err.status;
	let status = typeof raw === "number" && raw >= 400 && raw <= 599 ? raw : 500;
	// Moleculer reports invalid params as 422; for a request that is a malformed request.
	if (err.name === "ValidationError") status = 400;
	if (err.name && CLUSTER_UNAVAILABLE.has(err.name)) {
		status = 503;
		err = { ...err, name: err.name, message: err.message, type: "SERVICE_UNAVAILABLE" };
	}
	if (status >= 500 && status !== 503 && status !== 504) {
		return { status, body: { name: "InternalServerError", message: "Internal server error", code: status, type: "INTERNAL_ERROR" } };
	}
	const data = err.name === "ValidationError" && Array.isArray(err.data) ? err.data.map(withoutInternals) : err.data;
	return {
		status,
		body: { name: err.name ?? "Error", message: err.message ?? "Error", code: status, type: err.type ?? null, data: data ?? null }
	};
}

/** Moleculer adds the node and the action to each validation problem: the client needs neither. */
function withoutInternals(problem: unknown): unknown {
	if (typeof problem !== "object" || problem === null) return problem;
	const { nodeID: _node, action: _action, ...rest } = problem as Record<string, unknown>;
	return rest;
}
