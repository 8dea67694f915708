/**
 * The REST client: the session (token in memory, mirrored to sessionStorage so a reload keeps
 * it but a closed tab forgets it), JSON calls with Bearer auth, XHR uploads with progress and
 * authenticated blob fetches (an <img> cannot send an Authorization header).
 */
import type { ImageStats } from "../../models/images/image-types.ts";
import type { PublicImage } from "../../models/images/public-image.ts";
import type { PublicUser } from "../../models/users/user.ts";

/** GET /api/stats: the figures of what the caller may see; for admins every image and the number of users. */
export type Stats = ImageStats & { users?: number };

/** An error answer of the API: `{name, message, code, type, data}`. */
export class ApiError extends Error {
	readonly status: number;
	readonly type: string | null;
	readonly data: unknown;
	constructor(status: number, body: { message?: string; type?: string | null; data?: unknown } | null) {
		super(body?.message ?? `Request failed (${status})`);
		this.status = status;
		this.type = body?.type ?? null;
		this.data = body?.data;
	}
}

const STORAGE_KEY = "imgmesh.session";
interface Session {
	token: string;
	user: PublicUser;
}
let session: Session | null = readStoredSession();
const listeners = new Set<(reason?: string) => void>();

function readStoredSession(): Session | null {
	try {
		const raw = sessionStorage.getItem(STORAGE_KEY);
		return raw ? (JSON.parse(raw) as Session) : null;
	} catch {
		return null;
	}
}

export function currentUser(): PublicUser | null {
	return session?.user ?? null;
}

export function token(): string | null {
	return session?.token ?? null;
}

let endedReason: string | undefined;
/** Why the last session ended, once (the sign-in page shows it). */
export function takeEndedReason(): string | undefined {
	const reason = endedReason;
	endedReason = undefined;
	return reason;
}

export function setSession(next: Session | null, reason?: string): void {
	session = next;
	endedReason = reason;
	if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
	else sessionStorage.removeItem(STORAGE_KEY);
	for (const listener of listeners) listener(reason);
}

/** Called on sign in/out; `reason` says why a session ended (e.g. an expired token). */
export function onSessionChange(listener: (reason?: string) => void): void {
	listeners.add(listener);
}

function authHeaders(): Record<string, string> {
	return session ? { authorization: `Bearer ${session.token}` } : {};
}

/** A 401 on a signed-in request means the token died (expired, user disabled): sign out. */
function checkSession(status: number, body: { message?: string } | null): void {
	if (status === 401 && session) setSession(null, body?.message === "Token expired" ? "Your session expired. Please sign in again." : "Please sign in again.");
}

async function parse(res: Response): Promise<any> {
	const text = await res.text();
	if (!text) return null;
	return res.headers.get("content-type")?.includes("application/json") ? JSON.parse(text) : text;
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
	const headers: Record<string, string> = authHeaders();
	if (body !== undefined) headers["content-type"] = "application/json";
	const res = await fetch(`/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
	const data = await parse(res);
	if (!res.ok) {
		checkSession(res.status, data);
		throw new ApiError(res.status, data);
	}
	return data as T;
}

/** GET of bytes with auth, as a Blob. */
export async function fetchBlob(path: string): Promise<Blob> {
	const res = await fetch(path, { headers: authHeaders() });
	if (!res.ok) {
		const data = await parse(res).catch(() => null);
		checkSession(res.status, data);
		throw new ApiError(res.status, typeof data === "object" ? data : null);
	}
	return res.blob();
}

/**
 * Saves bytes fetched with auth under a file name (or one made from the bytes' type, for answers
 * whose format the server picks), through a temporary object URL.
 */
export async function download(path: string, filename: string | ((type: string) => string)): Promise<void> {
	const blob = await fetchBlob(path);
	const url = URL.createObjectURL(blob);
	const a = document.createElement("a");
	a.href = url;
	a.download = typeof filename === "string" ? filename : filename(blob.type);
	document.body.append(a);
	a.click();
	a.remove();
	setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export interface UploadHandle {
	done: Promise<{ images: PublicImage[] }>;
	abort(): void;
}

/** POST /api/images with XHR, the only browser API that reports upload progress. */
export function upload(form: FormData, onProgress: (loaded: number, total: number) => void): UploadHandle {
	const xhr = new XMLHttpRequest();
	const done = new Promise<{ images: PublicImage[] }>((resolve, reject) => {
		xhr.open("POST", "/api/images");
		const headers = authHeaders();
		if (headers.authorization) xhr.setRequestHeader("authorization", headers.authorization);
		xhr.responseType = "json";
		xhr.upload.onprogress = event => event.lengthComputable && onProgress(event.loaded, event.total);
		xhr.onload = () => {
			if (xhr.status === 201) return resolve(xhr.response);
			checkSession(xhr.status, xhr.response);
			reject(new ApiError(xhr.status, xhr.response));
		};
		xhr.onerror = () => reject(new Error("Network error"));
		xhr.onabort = () => reject(new Error("Cancelled"));
		xhr.send(form);
	});
	return { done, abort: () => xhr.abort() };
}

export function query(params: Record<string, string | number | undefined | null>): string {
	const search = new URLSearchParams();
	for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
	const text = search.toString();
	return text ? `?${text}` : "";
}
