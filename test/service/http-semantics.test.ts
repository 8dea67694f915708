/**
 * HTTP as clients and operators expect it: HEAD wherever GET serves bytes, validation errors that
 * say what was wrong without internals, defaults where a parameter has an obvious one, Location on
 * 201, a readiness answer that says what it waits for, and a start, session and stop that log no
 * warning or error.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client, fileFrom } from "../helpers/client.ts";
import { settled, waitFor } from "../helpers/jobs.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

/** Headers that a HEAD answer must share with the GET answer of the same resource. */
const ENTITY_HEADERS = ["content-type", "content-length", "etag", "cache-control", "content-disposition", "accept-ranges"];

describe("HTTP semantics", () => {
	let server: RunningServer;
	let alice: Client;
	let bob: Client;
	let id: string;

	before(async () => {
		server = await startServer();
		const anon = new Client(server.url);
		alice = await anon.register("alice");
		bob = await anon.register("bob");
		const upload = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { visibility: "public" });
		id = upload.body.images[0].id;
		await settled(alice, id);
	});
	after(() => server.stop());

	it("never answers 304 to a request that changes something (If-None-Match: * included)", async () => {
		// Through node:http: fetch adds Cache-Control: no-cache to conditional requests, which
		// hides the problem (a browser's fetch does too; curl and most HTTP libraries do not).
		const send = (method: string, path: string, body?: unknown) =>
			new Promise<{ status: number; body: any }>((resolve, reject) => {
				const headers = { authorization: `Bearer ${alice.token}`, "if-none-match": "*", "content-type": "application/json" };
				const req = request(`${server.url}${path}`, { method, headers }, res => {
					let text = "";
					res.on("data", chunk => (text += chunk));
					res.on("end", () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : null }));
				});
				req.on("error", reject);
				req.end(body === undefined ? undefined : JSON.stringify(body));
			});
		const created = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { name: "conditional" });
		assert.equal(created.status, 201);
		const otherId = created.body.images[0].id;
		const patch = await send("PATCH", `/api/images/${otherId}`, { name: "renamed" });
		assert.equal(patch.status, 200);
		assert.equal(patch.body.name, "renamed");
		const login = await send("POST", "/api/auth/login", { username: "alice", password: "correct horse battery" });
		assert.equal(login.status, 200);
		assert.ok(login.body.token);
		assert.equal((await send("DELETE", `/api/images/${otherId}`)).status, 204);
		// A read may still be answered 304: the image's bytes exist.
		assert.equal((await send("GET", `/api/images/${id}/content`)).status, 304);
	});

	it("answers HEAD on every route that serves bytes with GET's headers and no body, counting no view", async () => {
		// An image of its own, so that no other test's views are on it.
		const upload = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { visibility: "public" });
		const own = upload.body.images[0].id;
		await settled(alice, own);
		// bob is a guest: presets, or parameters the owner signed.
		const signed = new URL((await alice.get(`/api/images/${own}/url?w=240&format=png`)).body.url, server.url);
		const paths = [
			{ path: `/api/images/${own}/content`, view: true },
			{ path: `/api/images/${own}/content${signed.search}`, view: true },
			{ path: `/api/images/${own}/content?preset=small`, view: true },
			{ path: `/api/images/${own}/thumbnail?size=240`, view: false },
			{ path: `/api/images/${own}/renditions/720`, view: false },
			{ path: `/p/${own}`, view: true },
			{ path: `/p/${own}?preset=thumb`, view: true },
			{ path: `/p/${own}/thumbnail?size=240`, view: false }
		];
		const gets = [];
		for (const { path } of paths) {
			const get = await bob.download(path);
			assert.equal(get.status, 200, path);
			gets.push(get);
		}
		for (const [index, { path }] of paths.entries()) {
			const head = await fetch(server.url + path, { method: "HEAD", headers: { authorization: `Bearer ${bob.token}` } });
			assert.equal(head.status, 200, `HEAD ${path}`);
			assert.equal((await head.arrayBuffer()).byteLength, 0, `HEAD ${path} has no body`);
			for (const name of ENTITY_HEADERS) assert.equal(head.headers.get(name), gets[index]!.headers.get(name), `${name} of HEAD ${path}`);
		}
		// One more view after the HEADs. Views are written in batches (docs/api.md), each with every
		// count made before it: once this last one is in, so is anything a HEAD might have counted.
		assert.equal((await bob.download(`/p/${own}`)).status, 200);
		const expected = paths.filter(entry => entry.view).length + 1;
		const views = await waitFor(`${expected} views`, async () => {
			const { views } = (await alice.get(`/api/images/${own}`)).body;
			return views >= expected ? (views as number) : undefined;
		});
		assert.equal(views, expected, "the GETs of the original and its variants count, renditions and HEADs do not");
	});

	it("serves the 240 px thumbnail when no size is given", async () => {
		const plain = await bob.download(`/api/images/${id}/thumbnail`);
		const sized = await bob.download(`/api/images/${id}/thumbnail?size=240`);
		assert.equal(plain.status, 200);
		assert.equal(plain.headers.get("etag"), sized.headers.get("etag"));
		assert.ok(plain.bytes.equals(sized.bytes));
	});

	it("explains an invalid parameter by its field, the value given and the values allowed, without internals", async () => {
		const res = await alice.get("/api/images?sort=bogus");
		assert.equal(res.status, 400);
		assert.equal(res.body.type, "VALIDATION_ERROR");
		const [problem] = res.body.data;
		assert.equal(problem.field, "sort");
		assert.equal(problem.actual, "bogus");
		assert.match(problem.message, /'bogus'/, "the message names the rejected value");
		assert.match(problem.message, /createdAt, -createdAt, views, -views, name/, "and the allowed ones as allowed");
		assert.doesNotMatch(problem.message, /value 'createdAt/, "not as if they were the rejected value");
		for (const internal of ["nodeID", "action"]) assert.equal(internal in problem, false, `${internal} stays internal`);
		assert.doesNotMatch(JSON.stringify(res.body), /images\.list|nodeID/);
	});

	it("says where a created resource is (Location on 201)", async () => {
		const res = await alice.upload([fileFrom(join(SHARED_IMAGES, "mug-cc0.jpeg"))]);
		assert.equal(res.status, 201);
		assert.equal(res.headers.get("location"), `/api/images/${res.body.images[0].id}`);
		const registered = await new Client(server.url).post("/api/auth/register", { username: "carol", password: "correct horse battery" });
		assert.equal(registered.status, 201);
		assert.equal(registered.headers.get("location"), "/api/auth/me");
	});

	it("logs no warning or error for a normal start, session and stop", async () => {
		const node = await startServer({ LOG_LEVEL: "info" });
		const client = await new Client(node.url).register("dave");
		const uploaded = await client.upload([fileFrom(join(SHARED_IMAGES, "hummingbird.jpg"))]);
		await settled(client, uploaded.body.images[0].id);
		await client.download(`/api/images/${uploaded.body.images[0].id}/content`);
		await node.stop();
		const problems = node.output().split("\n").filter(line => /\b(WARN|ERROR|FATAL)\b/.test(line));
		assert.deepEqual(problems, []);
	});

	it("says what a starting node waits for while it is not ready", async () => {
		const node = await startServer({}, { readyPath: null });
		try {
			for (;;) {
				const res = await fetch(`${node.url}/api/ready`).catch(() => null);
				if (!res) continue; // not listening yet
				const body = (await res.json()) as { status?: string; checks?: { ok: boolean }[] };
				if (res.status === 200) break;
				assert.equal(res.status, 503);
				const failing = body.checks?.filter(check => !check.ok) ?? [];
				assert.ok(failing.length > 0, `a 503 from /api/ready names what it waits for: ${JSON.stringify(body)}`);
			}
		} finally {
			await node.stop();
		}
		assert.doesNotMatch(node.output(), /\bERROR\b/, "polling readiness is not an error");
	});
});
