/**
 * Fetching URLs that users name, safely (SSRF) and politely:
 * - only http/https; the host is resolved once and the connection goes to exactly the address
 *   that was checked (the check runs inside the socket's own `lookup`, so a DNS answer cannot
 *   change between check and connect); private/loopback/metadata addresses are refused;
 * - redirects are followed by hand (at most MAX_REDIRECTS), each hop checked again;
 * - a deadline per attempt, bytes streamed and capped, never buffered whole;
 * - retries with exponential backoff and full jitter on network errors, 5xx and 429 (honouring
 *   Retry-After), never on other 4xx;
 * - bounded concurrency per node and per source host.
 */
import { createHash } from "node:crypto";
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { mayConnect } from "./net-address.ts";

export const MAX_REDIRECTS = 5;

export interface FetchOptions {
	/** Refuse bodies longer than this. */
	maxBytes: number;
	/** Per attempt: connecting, the response headers and every pause between body chunks. */
	timeoutMs: number;
	/** Attempts after the first one for retryable failures. */
	retries: number;
	/** First backoff step; doubles per attempt, with full jitter. */
	retryBaseMs: number;
	/** Let tests reach servers on 127.0.0.1 (metadata and link-local stay refused). Never set in production. */
	allowPrivateNetworks: boolean;
	headers?: Record<string, string>;
}

/** Why a fetch failed; `retryable` says whether trying again later may help. */
export class FetchError extends Error {
	readonly code: string;
	readonly status: number | undefined;
	readonly retryable: boolean;
	readonly retryAfterMs: number | undefined;
	constructor(message: string, code: string, retryable: boolean, status?: number, retryAfterMs?: number) {
		super(message);
		this.name = "FetchError";
		this.code = code;
		this.retryable = retryable;
		this.status = status;
		this.retryAfterMs = retryAfterMs;
	}
}

/** Counting semaphore: at most `limit` holders at a time, the rest wait in order. */
export class Semaphore {
	private active = 0;
	private readonly waiting: (() => void)[] = [];
	readonly limit: number;
	constructor(limit: number) {
		this.limit = limit;
	}
	async use<T>(work: () => Promise<T>): Promise<T> {
		if (this.active >= this.limit) await new Promise<void>(resolve => this.waiting.push(resolve));
		else this.active++;
		try {
			return await work();
		} finally {
			// Hand the slot straight to the next waiter (active stays the same), or free it.
			const next = this.waiting.shift();
			if (next) next();
			else this.active--;
		}
	}
	get idle(): boolean {
		return this.active === 0;
	}
}

/** A `lookup` for http.request that resolves once and refuses non-public answers. */
function checkedLookup(allowPrivate: boolean): LookupFunction {
	return (hostname, options, callback) => {
		dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
			if (err) return callback(err, "", 0);
			const usable = addresses.filter(entry => mayConnect(entry.address, allowPrivate));
			if (usable.length === 0) {
				return callback(new FetchError(`${hostname} resolves to a private or reserved address`, "ADDRESS_REFUSED", false), "", 0);
			}
			// Whatever the caller asked for (net asks for all with autoSelectFamily), answer with
			// the checked addresses only.
			if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, usable);
			callback(null, usable[0]!.address, usable[0]!.family);
		});
	};
}

function checkUrl(raw: string, allowPrivate: boolean): URL {
	let url: URL;
	try {
		url = new URL(raw);
	} catch {
		throw new FetchError("Not a valid URL", "INVALID_URL", false);
	}
	if (url.protocol !== "http:" && url.protocol !== "https:") throw new FetchError("Only http and https URLs can be imported", "UNSUPPORTED_SCHEME", false);
	if (url.username || url.password) throw new FetchError("URLs with credentials are not imported", "INVALID_URL", false);
	// An IP literal never goes through `lookup`: check it here.
	const literal = url.hostname.replace(/^\[|\]$/g, "");
	if (isIP(literal) && !mayConnect(literal, allowPrivate)) {
		throw new FetchError(`${literal} is a private or reserved address`, "ADDRESS_REFUSED", false);
	}
	return url;
}

/** Retry-After as milliseconds (delta seconds or an HTTP date); undefined when absent or bad. */
export function retryAfterMs(header: string | undefined, now = Date.now()): number | undefined {
	if (!header) return undefined;
	if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
	const date = Date.parse(header);
	return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function statusError(res: IncomingMessage): FetchError {
	const status = res.statusCode ?? 0;
	const retryable = status === 429 || status >= 500;
	const after = retryable ? retryAfterMs(res.headers["retry-after"]) : undefined;
	return new FetchError(`HTTP ${status}`, `HTTP_${status}`, retryable, status, after);
}

/** One GET without following redirects; resolves with the response once headers arrive. */
function request(url: URL, options: FetchOptions): Promise<IncomingMessage> {
	return new Promise((resolve, reject) => {
		const agentless = { agent: false as const, lookup: checkedLookup(options.allowPrivateNetworks) };
		const send = url.protocol === "https:" ? https.get : http.get;
		const req = send(url, { ...agentless, headers: { "user-agent": "imgmesh-import/1", accept: "image/*,*/*;q=0.5", ...options.headers } }, resolve);
		req.setTimeout(options.timeoutMs, () => req.destroy(new FetchError(`No answer within ${options.timeoutMs} ms`, "TIMEOUT", true)));
		req.on("error", err => reject(err instanceof FetchError ? err : new FetchError(err.message, (err as NodeJS.ErrnoException).code ?? "NETWORK_ERROR", true)));
	});
}

export interface OpenedUrl {
	body: Readable;
	finalUrl: string;
	contentType: string | undefined;
	contentLength: number | undefined;
}

/**
 * Opens a URL for reading, following checked redirects; the body is for the caller to consume
 * (or destroy). A declared length over maxBytes fails here; a body that runs over must be cut
 * by the caller's counting.
 */
export async function openUrl(raw: string, options: FetchOptions): Promise<OpenedUrl> {
	let url = checkUrl(raw, options.allowPrivateNetworks);
	for (let hop = 0; ; hop++) {
		const res = await request(url, options);
		const status = res.statusCode ?? 0;
		if (status >= 300 && status < 400 && res.headers.location) {
			res.resume();
			if (hop >= MAX_REDIRECTS) throw new FetchError(`More than ${MAX_REDIRECTS} redirects`, "TOO_MANY_REDIRECTS", false);
			url = checkUrl(new URL(res.headers.location, url).href, options.allowPrivateNetworks);
			continue;
		}
		if (status < 200 || status >= 300) {
			res.resume();
			throw statusError(res);
		}
		const length = res.headers["content-length"] ? Number(res.headers["content-length"]) : undefined;
		if (length !== undefined && length > options.maxBytes) {
			res.destroy();
			throw new FetchError(`The file is larger than ${options.maxBytes} bytes`, "TOO_LARGE", false);
		}
		// The socket timeout keeps guarding the body: a stalled transfer errors the stream.
		res.socket.setTimeout(options.timeoutMs, () => res.destroy(new FetchError(`Transfer stalled for ${options.timeoutMs} ms`, "TIMEOUT", true)));
		return { body: res, finalUrl: url.href, contentType: res.headers["content-type"], contentLength: length };
	}
}

export interface Downloaded {
	sha256: string;
	bytes: number;
	contentType: string | undefined;
}

/**
 * Streams a URL into a file (hashing and counting on the way, cut at maxBytes), retrying as
 * `withRetries` does. The file is removed again when the download fails.
 */
export async function downloadToFile(url: string, file: string, options: FetchOptions): Promise<Downloaded> {
	return withRetries(options, async () => {
		const opened = await openUrl(url, options);
		const hash = createHash("sha256");
		let bytes = 0;
		const meter = new Transform({
			transform(chunk: Buffer, _encoding, callback) {
				bytes += chunk.length;
				if (bytes > options.maxBytes) return callback(new FetchError(`The file is larger than ${options.maxBytes} bytes`, "TOO_LARGE", false));
				hash.update(chunk);
				callback(null, chunk);
			}
		});
		try {
			await pipeline(opened.body, meter, createWriteStream(file));
		} catch (err) {
			await rm(file, { force: true });
			throw err;
		}
		return { sha256: hash.digest("hex"), bytes, contentType: opened.contentType };
	});
}

/** Exponential backoff with full jitter, or what the server asked for (capped at a minute). */
export function backoffMs(attempt: number, baseMs: number, err: FetchError, random = Math.random): number {
	if (err.retryAfterMs !== undefined) return Math.min(err.retryAfterMs, 60_000);
	return Math.round(random() * baseMs * 2 ** attempt);
}

/**
 * Runs `attempt` (which opens and consumes a URL) until it succeeds, a non-retryable error
 * happens, or the retries are spent.
 */
export async function withRetries<T>(options: FetchOptions, attempt: () => Promise<T>, signal?: AbortSignal): Promise<T> {
	for (let tries = 0; ; tries++) {
		try {
			return await attempt();
		} catch (err) {
			const failure = err instanceof FetchError ? err : new FetchError((err as Error).message, "NETWORK_ERROR", isNetworkError(err));
			if (!failure.retryable || tries >= options.retries || signal?.aborted) throw failure;
			await new Promise(resolve => setTimeout(resolve, backoffMs(tries, options.retryBaseMs, failure)));
		}
	}
}

function isNetworkError(err: unknown): boolean {
	const code = (err as NodeJS.ErrnoException).code;
	return typeof code === "string" && /^(E[A-Z]+|UND_ERR_.*)$/.test(code) && code !== "ERR_STREAM_PREMATURE_CLOSE";
}

/** Per-node and per-host limits on concurrent downloads. */
export class FetchLimiter {
	private readonly node: Semaphore;
	private readonly hosts = new Map<string, Semaphore>();
	private readonly perHost: number;
	constructor(perNode: number, perHost: number) {
		this.node = new Semaphore(perNode);
		this.perHost = perHost;
	}
	async run<T>(url: string, work: () => Promise<T>): Promise<T> {
		const host = hostOf(url);
		let hostLimit = this.hosts.get(host);
		if (!hostLimit) this.hosts.set(host, (hostLimit = new Semaphore(this.perHost)));
		try {
			return await hostLimit.use(() => this.node.use(work));
		} finally {
			if (hostLimit.idle) this.hosts.delete(host);
		}
	}
}

function hostOf(url: string): string {
	try {
		return new URL(url).host;
	} catch {
		return "";
	}
}
