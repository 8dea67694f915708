/**
 * What every answer of the gateway tells a browser: never sniff a content type, never frame us,
 * keep the referrer to this origin, HSTS behind a TLS proxy; image bytes never run as a document
 * and are offered under the extension of their real format, whatever name they were uploaded as.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { Client } from "../helpers/client.ts";
import { startServer, type RunningServer } from "../helpers/server.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

describe("security headers", () => {
	let server: RunningServer;
	let alice: Client;
	let polyglot: { id: string };

	before(async () => {
		// The web app's page is one of the routes checked: build it if this checkout has none yet.
		execFileSync(process.execPath, [join(ROOT, "web", "build.ts"), "--if-missing"], { cwd: ROOT, stdio: "ignore" });
		server = await startServer({ TRUST_PROXY: "true" });
		alice = await new Client(server.url).register("alice");
		// A valid JPEG with an HTML page after its end marker, named as a page.
		const jpeg = await sharp({ create: { width: 16, height: 16, channels: 3, background: "#36c" } }).jpeg().toBuffer();
		const bytes = Buffer.concat([jpeg, Buffer.from("<html><script>alert(document.cookie)</script></html>")]);
		const res = await alice.upload([{ name: "poly.html", bytes, type: "text/html" }], { visibility: "public" });
		assert.equal(res.status, 201, JSON.stringify(res.body));
		polyglot = res.body.images[0];
	});
	after(() => server.stop());

	const get = (path: string, headers: Record<string, string> = {}) =>
		fetch(server.url + path, { headers: { authorization: `Bearer ${alice.token}`, ...headers } }).then(async res => {
			await res.arrayBuffer();
			return res;
		});

	it("offers uploaded bytes under the extension of their sniffed format, never the uploaded one", async () => {
		// Guests (every caller of /p/) get the image's id for a name (docs/sharing.md).
		for (const [path, name] of [[`/api/images/${polyglot.id}/content`, "poly"], [`/p/${polyglot.id}`, polyglot.id]]) {
			const res = await get(path);
			assert.equal(res.status, 200, path);
			assert.equal(res.headers.get("content-type"), "image/jpeg", path);
			assert.equal(res.headers.get("content-disposition"), `inline; filename*=UTF-8''${name}.jpg`, path);
		}
	});

	it("keeps image bytes from ever running as a document", async () => {
		for (const path of [`/api/images/${polyglot.id}/content`, `/api/images/${polyglot.id}/thumbnail`, `/p/${polyglot.id}`, `/p/${polyglot.id}?preset=thumb`]) {
			const res = await get(path);
			assert.equal(res.status, 200, path);
			const csp = res.headers.get("content-security-policy") ?? "";
			assert.match(csp, /default-src 'none'/, path);
			assert.match(csp, /\bsandbox\b/, path);
		}
	});

	it("sends the common security headers on JSON, errors, bytes and the web app", async () => {
		const routes: [string, number, Record<string, string>?][] = [
			["/api/images", 200],
			["/api/health", 200],
			["/api/images/nosuchimage", 404],
			["/api/nothing", 404],
			["/nothing.txt", 404],
			[`/api/images/${polyglot.id}/content`, 200],
			[`/p/${polyglot.id}`, 200],
			["/", 200, { accept: "text/html" }],
			["/images/some-client-route", 200, { accept: "text/html" }]
		];
		for (const [path, status, headers] of routes) {
			const res = await get(path, headers);
			assert.equal(res.status, status, path);
			assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
			assert.equal(res.headers.get("x-frame-options"), "DENY", path);
			assert.match(res.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/, path);
			assert.ok(res.headers.get("referrer-policy"), path);
			assert.equal(res.headers.get("strict-transport-security"), null, `${path}: no HSTS over plain HTTP`);
		}
		const json = await alice.post("/api/auth/login", { username: "alice", password: "wrong password" });
		assert.equal(json.status, 401);
		assert.equal(json.headers.get("x-content-type-options"), "nosniff");
	});

	it("keeps the web app's own policy on its page", async () => {
		const res = await get("/", { accept: "text/html" });
		assert.match(res.headers.get("content-type")!, /text\/html/);
		const csp = res.headers.get("content-security-policy")!;
		assert.match(csp, /default-src 'self'/);
		assert.doesNotMatch(csp, /sandbox/);
	});

	it("sends HSTS when a trusted proxy says the request came over HTTPS", async () => {
		for (const path of ["/api/images", "/api/nothing", `/p/${polyglot.id}`]) {
			const res = await get(path, { "x-forwarded-proto": "https" });
			assert.match(res.headers.get("strict-transport-security") ?? "", /max-age=\d+/, path);
		}
	});
});
