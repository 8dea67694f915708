/**
 * The typed errors of imgmesh. Each is a Moleculer error class, so it crosses the transporter
 * with its code, type and data intact, and the gateway turns it into the JSON body
 * `{name, message, code, type, data}` with `code` as the HTTP status.
 */
import { Errors } from "moleculer";

const { MoleculerClientError, MoleculerRetryableError } = Errors;

export class BadRequestError extends MoleculerClientError {
	constructor(message: string, type = "BAD_REQUEST", data?: unknown) {
		super(message, 400, type, data);
	}
}

export class UnauthorizedError extends MoleculerClientError {
	constructor(message = "Authentication required", type = "UNAUTHORIZED") {
		super(message, 401, type);
	}
}

export class ForbiddenError extends MoleculerClientError {
	constructor(message = "You are not allowed to do this", type = "FORBIDDEN") {
		super(message, 403, type);
	}
}

export class NotFoundError extends MoleculerClientError {
	constructor(what: string, id?: string) {
		super(`${what} not found`, 404, "NOT_FOUND", id === undefined ? undefined : { id });
	}
}

/** What was there once and is no more, for good (an expired share link): 410, unlike an unknown one's 404. */
export class GoneError extends MoleculerClientError {
	constructor(message: string, type = "GONE") {
		super(message, 410, type);
	}
}

export class ConflictError extends MoleculerClientError {
	constructor(message: string, type = "CONFLICT", data?: unknown) {
		super(message, 409, type, data);
	}
}

export class PayloadTooLargeError extends MoleculerClientError {
	constructor(limitBytes: number) {
		super(`Upload exceeds the limit of ${limitBytes} bytes`, 413, "PAYLOAD_TOO_LARGE", { limitBytes });
	}
}

export class RangeNotSatisfiableError extends MoleculerClientError {
	constructor(size: number) {
		super("Requested range not satisfiable", 416, "RANGE_NOT_SATISFIABLE", { size });
	}
}

export class UnsupportedMediaError extends MoleculerClientError {
	constructor(message = "Not an image, or an unsupported image format", data?: unknown) {
		super(message, 415, "UNSUPPORTED_MEDIA_TYPE", data);
	}
}

export class InvalidImageError extends MoleculerClientError {
	constructor(message: string, type = "INVALID_IMAGE", data?: unknown) {
		super(message, 422, type, data);
	}
}

/** A dependency (database, storage backend) is down; callers may retry later. */
export class UnavailableError extends MoleculerRetryableError {
	constructor(message: string, data?: unknown) {
		super(message, 503, "SERVICE_UNAVAILABLE", data);
	}
}

/**
 * The disk (or the database's quota) is full: nothing was stored. 507, retryable: the same request
 * succeeds once an operator has freed space. Built by storageExhaustionOf from whatever the
 * backend threw, whose message (a path, a database name) never reaches the client.
 */
export class InsufficientStorageError extends MoleculerRetryableError {
	constructor(cause: string) {
		super("The server is out of storage space, so nothing was stored; try again later", 507, "INSUFFICIENT_STORAGE", { cause });
	}
}

/** errno codes of a full disk or a user's exhausted quota. */
const EXHAUSTION_CODES = new Set(["ENOSPC", "EDQUOT"]);
/**
 * What full storage says where it has no errno: SQLite (SQLITE_FULL, also FerretDB's backend),
 * MongoDB (OutOfDiskSpace, code 14031) and hosted MongoDB's space quota.
 */
const EXHAUSTION_MESSAGE = /no space left on device|disk quota exceeded|database or disk is full|OutOfDiskSpace|over (?:your|its) (?:space|storage) quota/i;
const SQLITE_FULL = 13;
const MONGO_OUT_OF_DISK_SPACE = 14031;

/** The error as InsufficientStorageError when it says storage is exhausted; null otherwise. */
export function storageExhaustionOf(err: unknown): InsufficientStorageError | null {
	if (err instanceof InsufficientStorageError) return err;
	const { code, errcode, type, message } = (err ?? {}) as { code?: unknown; errcode?: unknown; type?: unknown; message?: unknown };
	// Raised on another node, it arrives as a plain error with its type: recognise that too.
	if (type === "INSUFFICIENT_STORAGE") return new InsufficientStorageError("INSUFFICIENT_STORAGE");
	if (typeof code === "string" && EXHAUSTION_CODES.has(code)) return new InsufficientStorageError(code);
	if (errcode === SQLITE_FULL) return new InsufficientStorageError("SQLITE_FULL");
	if (code === MONGO_OUT_OF_DISK_SPACE) return new InsufficientStorageError("OutOfDiskSpace");
	if (typeof message === "string" && EXHAUSTION_MESSAGE.test(message)) return new InsufficientStorageError("storage full");
	return null;
}

/** errno codes of a fault that goes away by itself: an I/O error, a busy or overloaded resource, a dropped connection. */
const TRANSIENT_CODES = new Set(["EIO", "EAGAIN", "EBUSY", "EMFILE", "ENFILE", "ETIMEDOUT", "ECONNRESET", "ECONNREFUSED", "EPIPE"]);
/** Statuses of a backend that is away, slow or full for now. */
const TRANSIENT_STATUSES = new Set([503, 504, 507]);

/**
 * Whether the same work may well succeed later unchanged: storage exhausted, an I/O error, a
 * backend unavailable (503), a timeout, or no live node for a service. The pipeline retries these
 * with back-off instead of failing the image.
 */
export function isTransient(err: unknown): boolean {
	if (storageExhaustionOf(err) || isClusterUnavailable(err)) return true;
	const { code, retryable } = (err ?? {}) as { code?: unknown; retryable?: unknown };
	if (typeof code === "string") return TRANSIENT_CODES.has(code);
	return retryable === true || (typeof code === "number" && TRANSIENT_STATUSES.has(code));
}

/** Stored bytes failed their integrity check: never served, always reported. */
export class IntegrityError extends Errors.MoleculerServerError {
	constructor(message: string, data?: unknown) {
		super(message, 500, "INTEGRITY_ERROR", data);
	}
}

/**
 * A blob found corrupt earlier (by a read or a scrub), refused at once rather than read again.
 * A plain blob is repaired by uploading the same bytes again (its key is their hash).
 */
export class CorruptBlobError extends IntegrityError {
	constructor(key: string, corruptAt: string) {
		super(`Blob ${key} was found corrupt at ${corruptAt} and is not served until the same bytes are uploaded again`, { key, corruptAt });
	}
}

/**
 * A call to another node whose answer was lost with the transporter connection. The callee may
 * or may not have run it, so it is never retried automatically (see moleculer.config.ts).
 */
export class CallInterruptedError extends Errors.MoleculerError {
	constructor(nodeID?: string) {
		super("The connection to the cluster was lost during this call; it may or may not have completed", 503, "CALL_INTERRUPTED", nodeID ? { nodeID } : undefined);
	}
}

/** A request lists more things (URLs, files) than one request may carry. */
export class TooManyItemsError extends MoleculerClientError {
	constructor(what: string, limit: number) {
		super(`At most ${limit} ${what} per request`, 413, "TOO_MANY_ITEMS", { limit });
	}
}

/**
 * Refused for now, before any work was spent on it; `data.retryAfter` is in seconds and the
 * gateway sends it as the `Retry-After` header (models/http/gateway.ts). A 4xx, so a flood of
 * them never opens a circuit breaker on the node that refuses.
 */
export class TooManyRequestsError extends MoleculerClientError {
	constructor(message: string, type: string, data: { retryAfter: number; limit: number } & Record<string, unknown>) {
		super(message, 429, type, data);
	}
}

/** What a refused import counted: the limit's name, its value, and the user's current count. */
export interface LimitData {
	limit: "open-jobs" | "queued-items";
	max: number;
	current: number;
	/** Items the refused request would have added. */
	requested?: number;
}

/**
 * A per-user limit is reached (open import jobs, URLs queued across them): 429, as the request
 * can succeed once some of the user's work has finished. `data` names the limit and the count.
 */
export class LimitExceededError extends MoleculerClientError {
	constructor(message: string, type: string, data: LimitData) {
		super(message, 429, type, data);
	}
}

/**
 * Moleculer's errors for "no live node can take this call now" (the service's nodes are gone or
 * their circuits open, or this node lost the transporter) are 404 and 502 by default; for an HTTP
 * client they all mean: unavailable, try again later.
 */
const CLUSTER_UNAVAILABLE = new Set(["ServiceNotFoundError", "ServiceNotAvailableError", "BrokerDisconnectedError"]);

export function isClusterUnavailable(err: unknown): boolean {
	const name = (err as { name?: unknown } | null)?.name;
	return typeof name === "string" && CLUSTER_UNAVAILABLE.has(name);
}
