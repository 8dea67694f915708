/**
 * What the gateway hands to actions about an HTTP request, and how it answers errors: every error
 * leaves as JSON `{name, message, code, type, data}` with `code` as the status, and server faults
 * never leak their details.
 */
import { STATUS_CODES, type IncomingMessage } from "node:http";
import { isClusterUnavailable, storageExhaustionOf } from "../shared/errors.ts";

/** Request headers that actions need (conditional and range requests, uploads), and the method. */
export interface RequestInfo {
	/** HEAD answers with GET's headers and reads no bytes. */
	method?: string;
	contentType?: string;
	range?: string;
	ifNoneMatch?: string;
	accept?: string;
	/** Share links read their unlock cookie from it (services/shares.service.ts). */
	cookie?: string;
}

export function requestInfoOf(req: IncomingMessage): RequestInfo {
	return {
		method: req.method,
		contentType: req.headers["content-type"],
		range: req.headers.range,
		ifNoneMatch: req.headers["if-none-match"],
		accept: req.headers.accept,
		cookie: req.headers.cookie
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


/** Server-side statuses whose errors the client is told about: a backend away, slow or full for now. */
const EXPLAINED_SERVER_STATUSES = new Set([503, 504, 507]);

/** Maps any error to a status and a JSON body; server faults never leak their details. */
export function errorResponse(err: HttpError): { status: number; body: Record<string, unknown> } {
	// Full storage surfaces as whatever the backend threw (ENOSPC, SQLITE_FULL, ...): one answer for all, 507.
	err = storageExhaustionOf(err) ?? err;
	const raw = typeof err.code === "number" ? err.code : err.status;
	let status = typeof raw === "number" && raw >= 400 && raw <= 599 ? raw : 500;
	// Moleculer reports invalid params as 422; for a request that is a malformed request.
	if (err.name === "ValidationError") status = 400;
	if (isClusterUnavailable(err)) {
		status = 503;
		err = { ...err, name: err.name, message: err.message, type: "SERVICE_UNAVAILABLE" };
	}
	if (status >= 500 && !EXPLAINED_SERVER_STATUSES.has(status)) {
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

/** What Node's HTTP parser reports for a request it cannot read, as the status it answers with. */
const PARSE_ERROR_STATUS: Record<string, number> = {
	HPE_HEADER_OVERFLOW: 431,
	HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
	ERR_HTTP_REQUEST_TIMEOUT: 408
};

const PARSE_ERROR_TYPE: Record<number, string> = { 400: "MALFORMED_REQUEST", 408: "REQUEST_TIMEOUT", 413: "PAYLOAD_TOO_LARGE", 431: "HEADERS_TOO_LARGE" };

/**
 * The raw HTTP answer to a request that Node's parser refused before any handler saw it (headers
 * over the size limit, a malformed request line or header): the same JSON error as every other
 * answer, where Node's own answer has an empty body. The connection is closed after it.
 */
export function parseErrorAnswer(err: { code?: string; rawPacket?: Buffer }): string {
	const status = PARSE_ERROR_STATUS[err.code ?? ""] ?? 400;
	const message = status === 431 ? "Request headers too large" : status === 408 ? "Request timeout" : status === 413 ? "Request too large" : "Malformed HTTP request";
	const body = JSON.stringify({ name: "ClientError", message, code: status, type: PARSE_ERROR_TYPE[status], data: null });
	// The answer to a HEAD request has no body; the method is known only when the bytes that
	// failed to parse start with the request line.
	const head = err.rawPacket?.subarray(0, 5).toString("latin1") === "HEAD ";
	const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status]}`, "Content-Type: application/json; charset=utf-8", `Content-Length: ${Buffer.byteLength(body)}`, "Connection: close"];
	return [...lines, "", head ? "" : body].join("\r\n");
}
