/**
 * Refused uploads are answered at once and leave nothing behind: no open file descriptor in the
 * server, no temp file in blobs/tmp, no stored blob. Repeated by one client, a leak would exhaust
 * the descriptor limit and fail every later upload (EMFILE).
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { Client } from "../helpers/client.ts";
import { startServer, type RunningServer } from "../helpers/server.ts";

const MAX_UPLOAD_FILES = 3;
/** Far above how long a refusal may take: a request still open at ANSWER_BOUND_MS has hung. */
const REQUEST_TIMEOUT_MS = 60_000;
const ANSWER_BOUND_MS = 15_000;
const BOUNDARY = "----imgmesh-cleanup";

type Part = { field: string; value: string } | { field: string; filename?: string; type?: string; bytes: Buffer };

function multipart(parts: Part[]): Buffer {
	const chunks = parts.map(part => {
		if ("value" in part) return Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${part.field}"\r\n\r\n${part.value}\r\n`);
		const filename = part.filename === undefined ? "" : `; filename="${part.filename}"`;
		const head = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${part.field}"${filename}\r\nContent-Type: ${part.type ?? "image/jpeg"}\r\n\r\n`;
		return Buffer.concat([Buffer.from(head), part.bytes, Buffer.from("\r\n")]);
	});
	return Buffer.concat([...chunks, Buffer.from(`--${BOUNDARY}--\r\n`)]);
}

/** POSTs a body on a connection of its own (closed after the answer, so it holds no descriptor). */
function post(url: string, token: string, body: Buffer): Promise<{ status: number; body: any }> {
	return new Promise((resolve, reject) => {
		const headers = { authorization: `Bearer ${token}`, "content-type": `multipart/form-data; boundary=${BOUNDARY}`, connection: "close" };
		const req = request(url, { method: "POST", headers, agent: false }, res => {
			let text = "";
			res.on("data", chunk => (text += chunk));
			res.on("end", () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : null }));
		});
		// The server may answer and close before it has read the whole body.
		req.on("error", reject);
		req.end(body);
	});
}

/** Fails if the answer takes longer than `ms`: the refusal hung. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)));
	try {
		return await Promise.race([promise, bound]);
	} finally {
		clearTimeout(timer);
	}
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

describe("refused uploads leak nothing", () => {
	let server: RunningServer;
	let token: string;
	// Small files: many parts arrive in one chunk, so a refusal can come while handlers are starting.
	let jpeg: Buffer;
	const image = (filename?: string, type?: string): Part => ({ field: "file", filename, type, bytes: jpeg });

	const openFds = () => readdirSync(`/proc/${server.process.pid}/fd`).length;
	const tempFiles = () => readdirSync(join(server.dataDir, "blobs", "tmp"));
	const blobFiles = () =>
		readdirSync(join(server.dataDir, "blobs"), { withFileTypes: true })
			.filter(entry => entry.isDirectory() && entry.name !== "tmp")
			.flatMap(entry => readdirSync(join(server.dataDir, "blobs", entry.name)));

	/** Waits (up to 5 s) for the descriptor count to come back to `baseline`; returns the last count. */
	async function settledFds(baseline: number): Promise<number> {
		let count = openFds();
		for (let waited = 0; count > baseline && waited < 5000; waited += 100) {
			await sleep(100);
			count = openFds();
		}
		return count;
	}

	async function untilProcessed(url: string): Promise<void> {
		for (let waited = 0; waited < 20_000; waited += 100) {
			const doc = (await (await fetch(url, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string };
			if (doc.status !== "processing") return;
			await sleep(100);
		}
		throw new Error(`${url} still processing after 20 s`);
	}

	before(async () => {
		jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#c33" } }).jpeg().toBuffer();
		server = await startServer({ MAX_UPLOAD_FILES: String(MAX_UPLOAD_FILES), REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) });
		token = (await new Client(server.url).register("mallory")).token!;
		// Once through multipart, the sniffer and storage, so lazily opened files count in the baseline.
		await post(`${server.url}/api/images`, token, multipart([{ field: "file", filename: "x.jpg", bytes: Buffer.from("not an image") }]));
	});
	after(() => server.stop());

	const hostile: [string, () => Buffer, string][] = [
		["more files than MAX_UPLOAD_FILES", () => multipart(Array.from({ length: 12 }, (_, i) => image(`dog${i}.jpg`))), "TOO_MANY_FILES"],
		[
			"more files than MAX_UPLOAD_FILES, with fields first",
			() => multipart([{ field: "name", value: "x" }, { field: "encrypted", value: "true" }, ...Array.from({ length: 12 }, (_, i) => image(`dog${i}.jpg`))]),
			"TOO_MANY_FILES"
		],
		["a text field after the files", () => multipart([image("a.jpg"), image("b.jpg"), { field: "visibility", value: "public" }]), "FIELD_AFTER_FILE"],
		["a file part without a filename", () => multipart([image(undefined, "application/octet-stream")]), ""]
	];

	for (const [label, build, type] of hostile) {
		it(`answers at once for ${label}, and frees every descriptor, temp file and blob`, async () => {
			const baseline = await settledFds(openFds());
			const url = `${server.url}/api/images`;
			const answers = await within(ANSWER_BOUND_MS, label, Promise.all(Array.from({ length: 5 }, () => post(url, token, build()))));
			for (const answer of answers) {
				if (type) {
					assert.equal(answer.status, 400, JSON.stringify(answer.body));
					assert.equal(answer.body.type, type);
				} else {
					// Nothing wrong with the image: it is stored under a file name of its own.
					assert.equal(answer.status, 201, JSON.stringify(answer.body));
				}
			}
			const stored = answers.flatMap(answer => (answer.status === 201 ? answer.body.images : []));
			for (const doc of stored) {
				// The pipeline's renditions are stored in the background: delete once they are in.
				await untilProcessed(`${url}/${doc.id}`);
				const res = await fetch(`${url}/${doc.id}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
				assert.equal(res.status, 204);
			}
			assert.ok((await settledFds(baseline)) <= baseline, `open descriptors: ${openFds()} after, ${baseline} before`);
			assert.deepEqual(tempFiles(), [], "no temp file left in blobs/tmp");
			assert.deepEqual(blobFiles(), [], "no blob left that no image references");
		});
	}
});
