/**
 * Refused uploads and what they leave on a node: raw multipart bodies (in orders a browser would
 * not send), a bound on the answer's wait, and counts of a node's open descriptors, temp files and
 * blob files. Used by test/service/upload-cleanup.test.ts and test/cluster/upload-cleanup-cluster.test.ts.
 */
import { readdirSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import sharp from "sharp";
import type { RunningServer } from "./server.ts";

const BOUNDARY = "----imgmesh-cleanup";

export type Part = { field: string; value: string } | { field: string; filename?: string; type?: string; bytes: Buffer };

export function multipart(parts: Part[]): Buffer {
	const chunks = parts.map(part => {
		if ("value" in part) return Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${part.field}"\r\n\r\n${part.value}\r\n`);
		const filename = part.filename === undefined ? "" : `; filename="${part.filename}"`;
		const head = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${part.field}"${filename}\r\nContent-Type: ${part.type ?? "image/jpeg"}\r\n\r\n`;
		return Buffer.concat([Buffer.from(head), part.bytes, Buffer.from("\r\n")]);
	});
	return Buffer.concat([...chunks, Buffer.from(`--${BOUNDARY}--\r\n`)]);
}

/** A small JPEG: many parts then arrive in one chunk, so a refusal can come while handlers are starting. */
export function tinyJpeg(): Promise<Buffer> {
	return sharp({ create: { width: 8, height: 8, channels: 3, background: "#c33" } }).jpeg().toBuffer();
}

/** POSTs a multipart body on a connection of its own (closed after the answer, so it holds no descriptor). */
export function postMultipart(url: string, token: string, body: Buffer): Promise<{ status: number; body: any }> {
	return new Promise((resolve, reject) => {
		const headers = { authorization: `Bearer ${token}`, "content-type": `multipart/form-data; boundary=${BOUNDARY}`, connection: "close" };
		const req = request(url, { method: "POST", headers, agent: false }, res => {
			let text = "";
			res.on("data", chunk => (text += chunk));
			res.on("end", () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : null }));
		});
		req.on("error", reject);
		req.end(body);
	});
}

/** Fails if the answer takes longer than `ms`: the refusal hung. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)));
	try {
		return await Promise.race([promise, bound]);
	} finally {
		clearTimeout(timer);
	}
}

export const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

/** What a node holds open or on disk for uploads. */
export function openFds(node: RunningServer): number {
	return readdirSync(`/proc/${node.process.pid}/fd`).length;
}

export function tempFiles(node: RunningServer): string[] {
	return readdirSync(join(node.dataDir, "blobs", "tmp"));
}

export function blobFiles(node: RunningServer): string[] {
	const blobs = join(node.dataDir, "blobs");
	return readdirSync(blobs, { withFileTypes: true })
		.filter(entry => entry.isDirectory() && entry.name !== "tmp")
		.flatMap(entry => readdirSync(join(blobs, entry.name)));
}

/** Waits (up to 5 s) for a node's descriptor count to come back to `baseline`; returns the last count. */
export async function settledFds(node: RunningServer, baseline: number): Promise<number> {
	let count = openFds(node);
	for (let waited = 0; count > baseline && waited < 5000; waited += 100) {
		await sleep(100);
		count = openFds(node);
	}
	return count;
}
