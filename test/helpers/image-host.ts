/**
 * A local web site for import tests (127.0.0.1 only): serves images and the failure modes imports
 * must survive, and a fake Google Drive v3 API (files.list with paging and folders, alt=media
 * downloads). Every request is counted per path, so tests can tell what was (not) fetched.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";
import sharp from "sharp";
import { SHARED_IMAGES } from "./server.ts";

export interface DriveFolder {
	/** Image files: id -> bytes. */
	files: Map<string, Buffer>;
	subfolders: string[];
}

/** A gate holds responses until opened (for seeing a job mid-flight). */
export class Gate {
	private release: () => void = () => undefined;
	private promise = new Promise<void>(resolve => (this.release = resolve));
	open(): void {
		this.release();
	}
	wait(): Promise<void> {
		return this.promise;
	}
}

const tinyJpeg = sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 120, b: 40 } } }).jpeg().toBuffer();

/** `jpeg` with a comment segment carrying `label` right after its SOI marker: the same image, distinct bytes. */
export function withComment(jpeg: Buffer, label: string): Buffer {
	const text = Buffer.from(`imgmesh test image ${label}`);
	const comment = Buffer.alloc(4);
	comment.writeUInt16BE(0xfffe, 0);
	comment.writeUInt16BE(text.length + 2, 2);
	return Buffer.concat([jpeg.subarray(0, 2), comment, text, jpeg.subarray(2)]);
}

/** A small JPEG made unique by a comment segment carrying `label`: distinct bytes, valid image, cheap to process. */
export async function labelledJpeg(label: string): Promise<Buffer> {
	return withComment(await tinyJpeg, label);
}

export function uniqueJpegs(count: number): Promise<Buffer[]> {
	return Promise.all(Array.from({ length: count }, (_, i) => labelledJpeg(String(i))));
}

export class ImageHost {
	readonly server = http.createServer((req, res) => this.handle(req, res));
	readonly hits = new Map<string, number>();
	readonly driveRequests: URL[] = [];
	readonly folders = new Map<string, DriveFolder>();
	/** Paths answering 404 while listed here (for retry tests). */
	readonly broken = new Set<string>();
	gate = new Gate();
	/** Paths under /gated/ wait for the gate; this counts those that arrived. */
	gatedArrivals = 0;
	driveKey = "test-api-key";
	/** Added latency of the /unique/ images. */
	delayMs = 0;
	url = "";

	async start(): Promise<this> {
		this.server.listen(0, "127.0.0.1");
		await once(this.server, "listening");
		this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
		return this;
	}

	stop(): Promise<void> {
		this.server.closeAllConnections();
		return new Promise(resolve => this.server.close(() => resolve()));
	}

	hitsOf(path: string): number {
		return this.hits.get(path) ?? 0;
	}

	private photo(name: string): Buffer {
		return readFileSync(join(SHARED_IMAGES, name));
	}

	private send(res: ServerResponse, status: number, type: string, body: Buffer | string, headers: Record<string, string> = {}): void {
		res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body), ...headers });
		res.end(body);
	}

	private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
		const url = new URL(req.url!, this.url);
		const path = url.pathname;
		this.hits.set(path, this.hitsOf(path) + 1);
		if (this.broken.has(path)) return this.send(res, 404, "text/plain", "gone for now");
		if (path.startsWith("/drive/v3/")) return this.drive(url, res);
		let match: RegExpExecArray | null;
		if ((match = /^\/(?:img|copy)\/(.+)$/.exec(path))) return this.send(res, 200, "image/jpeg", this.photo(match[1]!));
		// Distinct small images, one per path.
		if (path.startsWith("/unique/")) {
			if (this.delayMs) await new Promise(resolve => setTimeout(resolve, this.delayMs));
			return this.send(res, 200, "image/jpeg", await labelledJpeg(path));
		}
		if (path.startsWith("/gated/")) return this.gated(res, await labelledJpeg(path));
		switch (path) {
			case "/flaky.jpg":
				// Fails once with 503 and an immediate Retry-After, then works.
				if (this.hitsOf(path) === 1) return this.send(res, 503, "text/plain", "busy", { "retry-after": "0" });
				return this.send(res, 200, "image/jpeg", this.photo("binoculars-cc0.jpeg"));
			case "/busy.jpg":
				// Rate limited once (429 with Retry-After), then served.
				if (this.hitsOf(path) === 1) return this.send(res, 429, "text/plain", "slow down", { "retry-after": "0" });
				return this.send(res, 200, "image/jpeg", await labelledJpeg(path));
			case "/slow.jpg":
				return; // never answers
			case "/page.html":
				return this.send(res, 200, "text/html", "<html><body>not an image</body></html>");
			case "/huge.jpg": {
				// Chunked (no Content-Length): the cut must happen while streaming.
				res.writeHead(200, { "content-type": "image/jpeg" });
				const chunk = Buffer.alloc(64 * 1024, 0xab);
				chunk.set([0xff, 0xd8, 0xff]);
				for (let sent = 0; sent < 4 * 1024 * 1024 && !res.destroyed; sent += chunk.length) {
					if (!res.write(chunk)) await once(res, "drain").catch(() => undefined);
				}
				return void res.end();
			}
			case "/to-metadata":
				return this.send(res, 302, "text/plain", "", { location: "http://169.254.169.254/latest/meta-data/" });
			case "/to-mapped-metadata":
				return this.send(res, 302, "text/plain", "", { location: "http://[::ffff:169.254.169.254]/latest/meta-data/" });
			case "/to-dog":
				return this.send(res, 301, "text/plain", "", { location: "/img/dog.jpg" });
			case "/loop":
				return this.send(res, 302, "text/plain", "", { location: "/loop" });
		}
		this.send(res, 404, "text/plain", "not found");
	}

	/**
	 * Sends the image a byte every 50 ms until the gate opens, then the rest: a slow transfer,
	 * but never a stalled one (the importer's stall timeout must not fire).
	 */
	private async gated(res: ServerResponse, body: Buffer): Promise<void> {
		this.gatedArrivals++;
		res.writeHead(200, { "content-type": "image/jpeg", "content-length": body.length });
		let sent = 0;
		let open = false;
		this.gate.wait().then(() => (open = true));
		while (!open && sent < body.length - 1 && !res.destroyed) {
			res.write(body.subarray(sent, ++sent));
			await new Promise(resolve => setTimeout(resolve, 50));
		}
		res.end(body.subarray(sent));
	}

	/** files.list and files/<id>?alt=media, as much of Drive v3 as imports use. */
	private drive(url: URL, res: ServerResponse): void {
		this.driveRequests.push(url);
		if (url.searchParams.get("key") !== this.driveKey) return this.send(res, 403, "application/json", JSON.stringify({ error: { code: 403, message: "bad key" } }));
		const media = /^\/drive\/v3\/files\/([^/]+)$/.exec(url.pathname);
		if (media && url.searchParams.get("alt") === "media") {
			const id = decodeURIComponent(media[1]!);
			for (const folder of this.folders.values()) {
				const bytes = folder.files.get(id);
				if (bytes) return this.send(res, 200, "image/jpeg", bytes);
			}
			return this.send(res, 404, "application/json", JSON.stringify({ error: { code: 404 } }));
		}
		if (url.pathname !== "/drive/v3/files") return this.send(res, 404, "application/json", "{}");
		const q = /^'([^']+)' in parents and (mimeType contains 'image\/'|mimeType='application\/vnd\.google-apps\.folder') and trashed=false$/.exec(url.searchParams.get("q") ?? "");
		const folder = q && this.folders.get(q[1]!);
		if (!q || !folder) return this.send(res, 404, "application/json", JSON.stringify({ error: { code: 404, message: "File not found" } }));
		const entries = q[2]!.startsWith("mimeType contains")
			? [...folder.files.keys()].map(id => ({ id, name: `${id}.jpg`, mimeType: "image/jpeg" }))
			: folder.subfolders.map(id => ({ id, name: id, mimeType: "application/vnd.google-apps.folder" }));
		const pageSize = Math.min(1000, Number(url.searchParams.get("pageSize") ?? 100));
		const start = Number(url.searchParams.get("pageToken") ?? 0);
		const page = entries.slice(start, start + pageSize);
		const next = start + pageSize < entries.length ? String(start + pageSize) : undefined;
		this.send(res, 200, "application/json", JSON.stringify({ files: page, ...(next ? { nextPageToken: next } : {}) }));
	}
}
