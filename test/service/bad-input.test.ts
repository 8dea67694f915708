/**
 * Hostile and broken uploads: each is answered with a clear JSON error and the right status,
 * and nothing is stored (no document, no blob, no temp file).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { Client, fileFrom, type UploadFile } from "../helpers/client.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const MAX_UPLOAD_BYTES = 2 * 1024 * 1024;
const MAX_INPUT_PIXELS = 4_000_000;

function filesUnder(dir: string): string[] {
	return readdirSync(dir, { recursive: true, withFileTypes: true })
		.filter(entry => entry.isFile() && !/\.db(-wal|-shm)?$/.test(entry.name))
		.map(entry => entry.name);
}

/** Sends a raw HTTP request (for bodies fetch would refuse to build). */
function rawRequest(url: string, method: string, headers: Record<string, string>, body: Buffer | string): Promise<{ status: number; body: any }> {
	return new Promise((resolve, reject) => {
		const req = request(url, { method, headers }, res => {
			let text = "";
			res.on("data", chunk => (text += chunk));
			res.on("end", () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : null }));
		});
		req.on("error", reject);
		req.end(body);
	});
}

describe("bad input", () => {
	let server: RunningServer;
	let anon: Client;
	let alice: Client;
	const jpeg = readFileSync(join(SHARED_IMAGES, "dog.jpg"));
	const png = readFileSync(join(SHARED_IMAGES, "chelsea.png"));

	before(async () => {
		server = await startServer({ MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES), MAX_INPUT_PIXELS: String(MAX_INPUT_PIXELS), MAX_UPLOAD_FILES: "3" });
		anon = new Client(server.url);
		alice = await anon.register("alice");
	});
	after(() => server.stop());

	async function assertRejected(files: UploadFile[], fields: Record<string, string>, status: number, type?: string) {
		const res = await alice.upload(files, fields);
		assert.equal(res.status, status, JSON.stringify(res.body));
		assert.equal(res.body.code, status);
		assert.ok(res.body.name && res.body.message);
		if (type) assert.equal(res.body.type, type);
		assert.equal((await alice.get("/api/images")).body.total, 0, "no document stored");
		assert.deepEqual(filesUnder(join(server.dataDir, "blobs")), [], "no blob or temp file left");
	}

	const cases: [string, () => Promise<[UploadFile[], Record<string, string>]>, number, string?][] = [
		["plain text", async () => [[{ name: "notes.jpg", bytes: Buffer.from("just some text, not an image"), type: "image/jpeg" }], {}], 415],
		["an HTML file", async () => [[{ name: "x.png", bytes: Buffer.from("<html><script>alert(1)</script></html>") }], {}], 415],
		["an SVG image", async () => [[{ name: "x.svg", bytes: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>') }], {}], 415],
		["an empty file", async () => [[{ name: "empty.jpg", bytes: Buffer.alloc(0) }], {}], 422, "EMPTY_FILE"],
		["a truncated JPEG", async () => [[{ name: "cut.jpg", bytes: jpeg.subarray(0, Math.floor(jpeg.length / 2)) }], {}], 422, "TRUNCATED_IMAGE"],
		["a truncated PNG", async () => [[{ name: "cut.png", bytes: png.subarray(0, png.length - 100) }], {}], 422, "TRUNCATED_IMAGE"],
		["a JPEG with a corrupt header", async () => [[{ name: "bad.jpg", bytes: Buffer.concat([jpeg.subarray(0, 3), Buffer.alloc(2000, 0x42)]) }], {}], 422, "CORRUPT_IMAGE"],
		[
			"a decompression bomb (pixels over the limit)",
			async () => [[{ name: "bomb.png", bytes: await sharp({ create: { width: 3000, height: 2000, channels: 3, background: "#000" } }).png().toBuffer() }], {}],
			422,
			"TOO_MANY_PIXELS"
		],
		["a file over MAX_UPLOAD_BYTES", async () => [[{ name: "big.jpg", bytes: Buffer.concat([jpeg, Buffer.alloc(MAX_UPLOAD_BYTES)]) }], {}], 413],
		["an unknown form field", async () => [[fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { owner: "bob" }], 400],
		["a $-prefixed form field", async () => [[fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { $where: "1" }], 400],
		["a bad visibility", async () => [[fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { visibility: "everyone" }], 400],
		["an unknown category", async () => [[fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { category: "nope" }], 400, "UNKNOWN_CATEGORY"],
		["a wrong file field name", async () => [[{ ...fileFrom(join(SHARED_IMAGES, "dog.jpg")), field: "upload" }], {}], 400],
		["too many files", async () => [Array.from({ length: 4 }, () => fileFrom(join(SHARED_IMAGES, "dog.jpg"))), {}], 400, "TOO_MANY_FILES"],
		[
			"one bad file among good ones (all or nothing)",
			async () => [[fileFrom(join(SHARED_IMAGES, "dog.jpg")), { name: "bad.jpg", bytes: Buffer.from("nope") }], {}],
			415
		]
	];
	for (const [label, make, status, type] of cases) {
		it(`answers ${status} for ${label}, storing nothing`, async () => {
			const [files, fields] = await make();
			await assertRejected(files, fields, status, type);
		});
	}

	it("answers 400 for a field sent after the file", async () => {
		const boundary = "----imgmesh-test";
		const body = Buffer.concat([
			Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="dog.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`),
			jpeg,
			Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="visibility"\r\n\r\npublic\r\n--${boundary}--\r\n`)
		]);
		const res = await rawRequest(`${server.url}/api/images`, "POST", { authorization: `Bearer ${alice.token}`, "content-type": `multipart/form-data; boundary=${boundary}` }, body);
		assert.equal(res.status, 400);
		assert.equal(res.body.type, "FIELD_AFTER_FILE");
		assert.equal((await alice.get("/api/images")).body.total, 0);
	});

	it("cleans up after a client that disconnects mid-upload, and keeps serving", async () => {
		const boundary = "----imgmesh-abort";
		const req = request(`${server.url}/api/images`, {
			method: "POST",
			headers: { authorization: `Bearer ${alice.token}`, "content-type": `multipart/form-data; boundary=${boundary}` }
		});
		req.on("error", () => undefined);
		req.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="dog.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`);
		req.write(jpeg.subarray(0, 150_000));
		await new Promise(resolve => setTimeout(resolve, 300));
		req.destroy();
		// The server notices the disconnect asynchronously: give it up to 5 s to clean up.
		const blobs = join(server.dataDir, "blobs");
		for (let waited = 0; filesUnder(blobs).length > 0 && waited < 5000; waited += 50) {
			await new Promise(resolve => setTimeout(resolve, 50));
		}
		assert.deepEqual(filesUnder(blobs), [], "the partial upload is gone");
		assert.equal((await alice.get("/api/images")).body.total, 0);
		const next = await alice.upload([{ name: "dog.jpg", bytes: jpeg }]);
		assert.equal(next.status, 201);
		await alice.delete(`/api/images/${next.body.images[0].id}`);
		await alice.delete(`/api/trash/${next.body.images[0].id}`);
	});

	it("answers 400 for malformed multipart and for a non-multipart upload", async () => {
		const headers = { authorization: `Bearer ${alice.token}` };
		const noBoundary = await rawRequest(`${server.url}/api/images`, "POST", { ...headers, "content-type": "multipart/form-data" }, "garbage");
		assert.equal(noBoundary.status, 400);
		const broken = await rawRequest(`${server.url}/api/images`, "POST", { ...headers, "content-type": "multipart/form-data; boundary=x" }, "--x\r\nnot a header\r\n\r\n");
		assert.equal(broken.status, 400);
		const json = await rawRequest(`${server.url}/api/images`, "POST", { ...headers, "content-type": "application/json" }, "{}");
		assert.equal(json.status, 400);
		assert.equal(json.body.type, "EXPECTED_MULTIPART");
	});

	it("keeps a path-traversal file name only as metadata", async () => {
		const res = await alice.upload([{ name: "../../../etc/passwd.jpg", bytes: jpeg }]);
		assert.equal(res.status, 201);
		assert.equal(res.body.images[0].filename, "passwd.jpg");
		const content = await alice.download(`/api/images/${res.body.images[0].id}/content`);
		assert.ok(content.bytes.equals(jpeg));
		assert.match(content.headers.get("content-disposition")!, /filename\*=UTF-8''passwd\.jpg/);
		await alice.delete(`/api/images/${res.body.images[0].id}`);
		await alice.delete(`/api/trash/${res.body.images[0].id}`);
	});

	it("refuses uploads without a valid token with 401", async () => {
		const res = await anon.upload([{ name: "dog.jpg", bytes: jpeg }]);
		assert.equal(res.status, 401);
		assert.equal((await alice.withToken("forged.token.here").upload([{ name: "dog.jpg", bytes: jpeg }])).status, 401);
	});

	it("answers malformed and oversized JSON with 400 and 413", async () => {
		const headers = { authorization: `Bearer ${alice.token}`, "content-type": "application/json" };
		const malformed = await rawRequest(`${server.url}/api/auth/login`, "POST", headers, "{\"username\": ");
		assert.equal(malformed.status, 400);
		assert.ok(malformed.body.message);
		const huge = await rawRequest(`${server.url}/api/auth/login`, "POST", headers, JSON.stringify({ username: "x".repeat(2 * 1024 * 1024) }));
		assert.equal(huge.status, 413);
	});

	it("answers JSON nested too deep with a clear 400, on every JSON route", async () => {
		const headers = { authorization: `Bearer ${alice.token}`, "content-type": "application/json" };
		const deep = "[".repeat(100_000) + "]".repeat(100_000);
		for (const [path, body] of [["/api/auth/login", `{"username": ${deep}}`], ["/api/images/x/compress", `{"quality": ${deep}}`], ["/api/imports", `{"urls": ${deep}}`]]) {
			const res = await rawRequest(`${server.url}${path}`, "POST", headers, body);
			assert.equal(res.status, 400, `${path}: ${JSON.stringify(res.body)}`);
			assert.equal(res.body.type, "JSON_TOO_DEEP", path);
			assert.match(res.body.message, /nested/);
		}
		// Strings may hold any number of brackets.
		const login = await rawRequest(`${server.url}/api/auth/login`, "POST", headers, JSON.stringify({ username: "[".repeat(1000), password: "{".repeat(1000) }));
		assert.equal(login.status, 400, JSON.stringify(login.body));
		assert.notEqual(login.body.type, "JSON_TOO_DEEP");
	});

	it("answers requests Node's HTTP parser refuses with a JSON error too", async () => {
		const tooLarge = await rawRequest(`${server.url}/api/health`, "GET", { "x-padding": "x".repeat(20_000) }, "");
		assert.equal(tooLarge.status, 431);
		assert.equal(tooLarge.body.code, 431);
		assert.equal(tooLarge.body.type, "HEADERS_TOO_LARGE");
		// The answer to HEAD has no body (a client would take one for a broken connection).
		const head = await rawRequest(`${server.url}/api/health`, "HEAD", { "x-padding": "x".repeat(20_000) }, "");
		assert.equal(head.status, 431);
		assert.equal(head.body, null);
		const { port } = new URL(server.url);
		const raw = await new Promise<string>((resolve, reject) => {
			const socket = connect(Number(port), "127.0.0.1", () => socket.end("GET /api/health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"));
			let text = "";
			socket.on("data", chunk => (text += chunk));
			socket.on("end", () => resolve(text));
			socket.on("error", reject);
		});
		assert.match(raw, /^HTTP\/1\.1 400 /);
		assert.match(raw, /content-type: application\/json/i);
		assert.equal(JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4)).code, 400);
	});

	it("answers bad query parameters with 400", async () => {
		for (const query of ["limit=0", "limit=1000", "limit=abc", "sort=password", "cursor=%%%", "visibility=all", "foo=bar", "q=" + "x".repeat(600)]) {
			const res = await alice.get(`/api/images?${query}`);
			assert.equal(res.status, 400, query);
			assert.equal(res.body.code, 400, query);
		}
	});

	it("answers unknown routes and methods with a JSON 404", async () => {
		for (const path of ["/api/nothing", "/api/api/list-aliases", "/api/~node/services", "/api/$node/list", "/nothing"]) {
			const res = await alice.get(path);
			assert.equal(res.status, 404, path);
			assert.equal(res.body.code, 404, path);
		}
		assert.equal((await alice.request("PUT", "/api/images", {})).status, 404);
	});
});
