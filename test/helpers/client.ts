/** A small HTTP client for the REST API, as a browser or script would use it. */
import { readFileSync } from "node:fs";
import { basename } from "node:path";

export interface ApiResponse<T = any> {
	status: number;
	headers: Headers;
	body: T;
}

export interface UploadFile {
	name: string;
	bytes: Uint8Array;
	type?: string;
	field?: string;
}

export function fileFrom(path: string, field = "file"): UploadFile {
	return { name: basename(path), bytes: readFileSync(path), field };
}

async function parse(res: Response): Promise<any> {
	const text = await res.text();
	if (!text) return null;
	return res.headers.get("content-type")?.includes("application/json") ? JSON.parse(text) : text;
}

export class Client {
	readonly base: string;
	token: string | undefined;

	constructor(base: string, token?: string) {
		this.base = base;
		this.token = token;
	}

	withToken(token: string | undefined): Client {
		return new Client(this.base, token);
	}

	private headers(extra: Record<string, string> = {}): Record<string, string> {
		return this.token ? { authorization: `Bearer ${this.token}`, ...extra } : extra;
	}

	async request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
		const init: RequestInit = { method, headers: this.headers(headers) };
		if (body !== undefined) {
			init.body = typeof body === "string" ? body : JSON.stringify(body);
			(init.headers as Record<string, string>)["content-type"] ??= "application/json";
		}
		const res = await fetch(this.base + path, init);
		return { status: res.status, headers: res.headers, body: await parse(res) };
	}

	get<T = any>(path: string, headers?: Record<string, string>) {
		return this.request<T>("GET", path, undefined, headers);
	}
	post<T = any>(path: string, body?: unknown) {
		return this.request<T>("POST", path, body ?? {});
	}
	patch<T = any>(path: string, body: unknown) {
		return this.request<T>("PATCH", path, body);
	}
	delete<T = any>(path: string) {
		return this.request<T>("DELETE", path);
	}

	/** GET returning the raw bytes. */
	async download(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; bytes: Buffer }> {
		const res = await fetch(this.base + path, { headers: this.headers(headers) });
		return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
	}

	/** POST /api/images (or `path`) as multipart: fields first, then the files (the order the API asks for). */
	async upload(files: UploadFile[], fields: Record<string, string> = {}, path = "/api/images"): Promise<ApiResponse> {
		const form = new FormData();
		for (const [key, value] of Object.entries(fields)) form.append(key, value);
		for (const file of files) form.append(file.field ?? "file", new Blob([file.bytes], { type: file.type ?? "application/octet-stream" }), file.name);
		const res = await fetch(this.base + path, { method: "POST", headers: this.headers(), body: form });
		return { status: res.status, headers: res.headers, body: await parse(res) };
	}

	/** Registers a user and returns a client signed in as that user. */
	async register(username: string, password = "correct horse battery"): Promise<Client> {
		const res = await this.post("/api/auth/register", { username, password });
		if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${JSON.stringify(res.body)}`);
		return this.withToken(res.body.token);
	}

	async login(username: string, password: string): Promise<Client> {
		const res = await this.post("/api/auth/login", { username, password });
		if (res.status !== 200) throw new Error(`login ${username}: ${res.status} ${JSON.stringify(res.body)}`);
		return this.withToken(res.body.token);
	}
}
