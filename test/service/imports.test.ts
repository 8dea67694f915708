/**
 * Bulk imports over REST against a real node and a local web site (127.0.0.1): URL lists with
 * every failure mode, exactly-once duplicates, a fake Google Drive with paging and subfolders,
 * cancel, retry and live progress over Server-Sent Events. One more node runs without
 * IMPORT_ALLOW_PRIVATE_NETWORKS to show that loopback is refused.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";
import { Client } from "../helpers/client.ts";
import { Gate, ImageHost, labelledJpeg, uniqueJpegs } from "../helpers/image-host.ts";
import { findFilesContaining } from "../helpers/jobs.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const MAX_BYTES = 1_000_000;
const TERMINAL = ["completed", "completed_with_errors", "failed", "cancelled"];
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** Polls the job until it has finished; the bound only turns a hang into a readable failure. */
async function finished(client: Client, id: string): Promise<any> {
	for (let i = 0; i < 1200; i++) {
		const res = await client.get(`/api/imports/${id}`);
		assert.equal(res.status, 200, JSON.stringify(res.body));
		if (res.body.finishedAt) {
			assert.ok(TERMINAL.includes(res.body.status), res.body.status);
			return res.body;
		}
		await new Promise(resolve => setTimeout(resolve, 100));
	}
	throw new Error(`import ${id} did not finish`);
}

async function allItems(client: Client, id: string, state?: string): Promise<any[]> {
	const items: any[] = [];
	let cursor: string | null = null;
	do {
		const query = new URLSearchParams({ limit: "1000", ...(state ? { state } : {}), ...(cursor ? { cursor } : {}) });
		const res = await client.get(`/api/imports/${id}/items?${query}`);
		assert.equal(res.status, 200, JSON.stringify(res.body));
		items.push(...res.body.items);
		cursor = res.body.nextCursor;
	} while (cursor);
	return items;
}

/** Every item of a keyset-paged listing, counted by following nextCursor to the end. */
async function countPages(client: Client, path: string): Promise<number> {
	let count = 0;
	let cursor: string | null = null;
	do {
		const res: { status: number; body: any } = await client.get(`${path}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
		assert.equal(res.status, 200, JSON.stringify(res.body));
		count += res.body.items.length;
		cursor = res.body.nextCursor;
	} while (cursor);
	return count;
}

function assertCountsAddUp(job: any): void {
	assert.equal(job.processed, job.succeeded + job.duplicates + job.failed, JSON.stringify(job));
}

const IMPORT_ENV = {
	IMPORT_ALLOW_PRIVATE_NETWORKS: "true",
	MAX_UPLOAD_BYTES: String(MAX_BYTES),
	IMPORT_TIMEOUT_MS: "1500",
	IMPORT_RETRIES: "1",
	IMPORT_RETRY_BASE_MS: "10"
};

describe("imports", () => {
	let host: ImageHost;
	let server: RunningServer;
	let alice: Client;
	let bob: Client;
	let admin: Client;

	before(async () => {
		host = await new ImageHost().start();
		server = await startServer({ ...IMPORT_ENV, GOOGLE_DRIVE_API_URL: `${host.url}/drive/v3` });
		const anon = new Client(server.url);
		admin = await anon.login("admin", ADMIN_PASSWORD);
		alice = await anon.register("alice");
		bob = await anon.register("bob");
	});
	after(async () => {
		host.gate.open();
		await server?.stop();
		await host?.stop();
	});

	it("imports a URL list: good images, failures of every kind, duplicates counted once", async () => {
		const good = ["dog.jpg", "hummingbird.jpg", "mug-cc0.jpeg", "chelsea.png"].map(name => `${host.url}/img/${name}`);
		const urls = [
			...good,
			`${host.url}/img/dog.jpg`, // the same URL again
			`${host.url}/copy/hummingbird.jpg`, // the same bytes at another URL
			`${host.url}/flaky.jpg`, // 503 once, then fine
			`${host.url}/busy.jpg`, // 429 once, then fine
			`${host.url}/to-dog`, // a redirect to an image already imported
			`${host.url}/missing.jpg`,
			`${host.url}/slow.jpg`,
			`${host.url}/page.html`,
			`${host.url}/huge.jpg`,
			`${host.url}/to-metadata`,
			`${host.url}/to-mapped-metadata`,
			`${host.url}/loop`,
			"ftp://127.0.0.1/file.jpg",
			"not a url"
		];
		const created = await alice.post("/api/imports", { source: "urls", urls, tags: ["imported"], visibility: "public" });
		assert.equal(created.status, 202, JSON.stringify(created.body));
		assert.equal(created.body.job.status, "queued");
		const job = await finished(alice, created.body.job.id);
		assertCountsAddUp(job);
		assert.equal(job.status, "completed_with_errors");
		assert.equal(job.total, urls.length);
		assert.equal(job.processed, urls.length);
		assert.equal(job.succeeded, 6);
		assert.equal(job.duplicates, 3);
		assert.equal(job.failed, 9);
		assert.equal(job.errors.length, 9);

		const items = await allItems(alice, job.id);
		const byKey = (suffix: string) => items.filter(item => item.key.endsWith(suffix));
		const errorOf = (suffix: string) => byKey(suffix)[0].error as string;
		assert.match(errorOf("/missing.jpg"), /HTTP_404/);
		assert.match(errorOf("/slow.jpg"), /TIMEOUT/);
		assert.match(errorOf("/page.html"), /UNSUPPORTED_MEDIA_TYPE/);
		assert.match(errorOf("/huge.jpg"), /TOO_LARGE|PAYLOAD_TOO_LARGE/);
		assert.match(errorOf("/to-metadata"), /ADDRESS_REFUSED/);
		assert.match(errorOf("/to-mapped-metadata"), /ADDRESS_REFUSED/);
		assert.match(errorOf("/loop"), /TOO_MANY_REDIRECTS/);
		assert.match(errorOf("/file.jpg"), /UNSUPPORTED_SCHEME/);
		assert.match(errorOf("not a url"), /INVALID_URL/);
		// A 404 is final: one request. The timeout, the 503 and the 429 were retried once.
		assert.equal(host.hitsOf("/missing.jpg"), 1);
		assert.equal(host.hitsOf("/slow.jpg"), 2);
		assert.equal(host.hitsOf("/flaky.jpg"), 2);
		assert.equal(host.hitsOf("/busy.jpg"), 2);

		const dogs = byKey("/img/dog.jpg");
		assert.equal(dogs.length, 2);
		assert.deepEqual(dogs.map(item => item.state).sort(), ["duplicate", "succeeded"]);
		assert.equal(dogs[0].imageId, dogs[1].imageId, "the duplicate points at the image");
		const copy = byKey("/copy/hummingbird.jpg")[0];
		const original = byKey("/img/hummingbird.jpg")[0];
		assert.deepEqual([original.state, copy.state].sort(), ["duplicate", "succeeded"]);
		assert.equal(copy.imageId, original.imageId);
		assert.equal(byKey("/to-dog")[0].imageId, dogs[0].imageId, "a redirect to the same bytes is a duplicate too");

		// Exactly one image per distinct content, stored like an upload.
		const listed = await alice.get("/api/images?limit=100");
		assert.equal(listed.body.total, 6);
		const dog = (await alice.get(`/api/images/${dogs[0].imageId}`)).body;
		assert.equal(dog.sha256, sha256(readFileSync(join(SHARED_IMAGES, "dog.jpg"))));
		assert.equal(dog.filename, "dog.jpg");
		assert.equal(dog.visibility, "public");
		assert.deepEqual(dog.tags.map((tag: { label: string }) => tag.label), ["imported"]);
		assert.equal(job.bytes, listed.body.items.reduce((sum: number, image: { size: number }) => sum + image.size, 0));

		// Filtering items by state.
		assert.equal((await allItems(alice, job.id, "failed")).length, 9);

		// Running the same list again makes no new image: every item is a duplicate or fails again.
		const again = await finished(alice, (await alice.post("/api/imports", { source: "urls", urls: good })).body.job.id);
		assert.equal(again.duplicates, good.length);
		assert.equal((await alice.get("/api/images?limit=100")).body.total, 6);
	});

	it("imports a Google Drive folder: 2,500 files over 3 pages plus a subfolder", async () => {
		const bytes = await uniqueJpegs(2503);
		host.folders.set("rootFolder0001", { files: new Map(bytes.slice(0, 2500).map((b, i) => [`file${i}`, b])), subfolders: ["subFolder0001"] });
		host.folders.set("subFolder0001", { files: new Map(bytes.slice(2500).map((b, i) => [`sub${i}`, b])), subfolders: [] });
		host.driveRequests.length = 0;
		const res = await bob.post("/api/imports", {
			source: "google-drive",
			folder: "https://drive.google.com/drive/folders/rootFolder0001?usp=sharing",
			apiKey: host.driveKey,
			recursive: true
		});
		assert.equal(res.status, 202, JSON.stringify(res.body));
		assert.equal(res.body.job.source.apiKey, undefined, "the API key is never shown");
		const job = await finished(bob, res.body.job.id);
		assert.equal(job.status, "completed", JSON.stringify(job.errors));
		assert.equal(job.total, 2503);
		assert.equal(job.succeeded, 2503);
		assertCountsAddUp(job);

		const lists = host.driveRequests.filter(url => url.pathname === "/drive/v3/files");
		const imagePages = lists.filter(url => url.searchParams.get("q") === "'rootFolder0001' in parents and mimeType contains 'image/' and trashed=false");
		assert.equal(imagePages.length, 3);
		assert.deepEqual(imagePages.map(url => url.searchParams.get("pageToken")), [null, "1000", "2000"]);
		assert.ok(lists.every(url => url.searchParams.get("pageSize") === "1000"));
		const downloaded = new Set(host.driveRequests.filter(url => url.searchParams.get("alt") === "media").map(url => url.pathname));
		assert.equal(downloaded.size, 2503);
		const first = (await bob.get("/api/images?owner=bob&limit=100")).body;
		assert.deepEqual([first.total, first.totalIsEstimate], [1000, true], "past 1,000 matches the total is a lower bound, flagged");
		assert.equal(await countPages(bob, "/api/images?owner=bob&limit=100"), 2503, "one image per file");

		// The folder again, without recursion: 2,500 duplicates, nothing downloaded.
		host.driveRequests.length = 0;
		const rerun = await finished(bob, (await bob.post("/api/imports", { source: "google-drive", folder: "rootFolder0001", apiKey: host.driveKey })).body.job.id);
		assert.equal(rerun.total, 2500);
		assert.equal(rerun.duplicates, 2500);
		assert.equal(host.driveRequests.filter(url => url.searchParams.get("alt") === "media").length, 0);
	});

	it("keeps a Drive API key from the request only encrypted, and only while the job needs it", async () => {
		const key = `drive-key-${randomBytes(12).toString("hex")}`;
		const previousKey = host.driveKey;
		host.driveKey = key;
		try {
			const files = await Promise.all([0, 1, 2].map(i => labelledJpeg(`key-${i}`)));
			host.folders.set("keyFolder0001", { files: new Map(files.map((bytes, i) => [`key${i}`, bytes])), subfolders: [] });
			const res = await bob.post("/api/imports", { source: "google-drive", folder: "keyFolder0001", apiKey: key });
			assert.equal(res.status, 202, JSON.stringify(res.body));
			assert.deepEqual(findFilesContaining(server.dataDir, Buffer.from(key)), [], "never stored in clear");
			const job = await finished(bob, res.body.job.id);
			assert.equal(job.succeeded, 3, JSON.stringify(job));
			assert.deepEqual(findFilesContaining(server.dataDir, Buffer.from(key)), []);

			// The key went with the job's end: a retry of failed items needs one again.
			host.broken.add("/drive/v3/files/key9");
			host.folders.get("keyFolder0001")!.files.set("key9", await labelledJpeg("key-9"));
			const second = await finished(bob, (await bob.post("/api/imports", { source: "google-drive", folder: "keyFolder0001", apiKey: key })).body.job.id);
			assert.equal(second.failed, 1, JSON.stringify(second));
			host.broken.delete("/drive/v3/files/key9");
			const keyless = await bob.post(`/api/imports/${second.id}/retry`);
			assert.equal(keyless.status, 400);
			assert.equal(keyless.body.type, "API_KEY_REQUIRED");
			const retried = await bob.post(`/api/imports/${second.id}/retry`, { apiKey: key });
			assert.equal(retried.status, 202, JSON.stringify(retried.body));
			const done = await finished(bob, second.id);
			assert.equal(done.failed, 0, JSON.stringify(done));
			assert.deepEqual(findFilesContaining(server.dataDir, Buffer.from(key)), []);
		} finally {
			host.driveKey = previousKey;
		}
	});

	it("fails a Drive import whose folder cannot be listed, and refuses bad folder references", async () => {
		const job = await finished(bob, (await bob.post("/api/imports", { source: "google-drive", folder: "noSuchFolder01", apiKey: host.driveKey })).body.job.id);
		assert.equal(job.status, "failed");
		assert.match(job.error, /HTTP_404/);
		const bad = await bob.post("/api/imports", { source: "google-drive", folder: "https://example.com/nothing-here", apiKey: "k" });
		assert.equal(bad.status, 400);
		assert.equal(bad.body.type, "INVALID_FOLDER");
		const noKey = await bob.post("/api/imports", { source: "google-drive", folder: "rootFolder0001" });
		assert.equal(noKey.status, 400);
		assert.equal(noKey.body.type, "API_KEY_REQUIRED");
	});

	it("refuses bad requests with clear errors", async () => {
		const tooMany = await alice.post("/api/imports", { source: "urls", urls: Array.from({ length: 100_001 }, (_, i) => `http://e.com/${i}`) });
		assert.equal(tooMany.status, 413);
		assert.equal(tooMany.body.type, "TOO_MANY_ITEMS");
		assert.equal((await alice.post("/api/imports", { source: "urls", urls: [] })).status, 400);
		assert.equal((await alice.post("/api/imports", { source: "urls", urls: [42] })).status, 400);
		assert.equal((await alice.post("/api/imports", { source: "dropbox", urls: ["http://e.com/a"] })).status, 400);
		assert.equal((await alice.post("/api/imports", { source: "urls", urls: ["http://e.com/a"], extra: 1 })).status, 400);
		assert.equal((await new Client(server.url).post("/api/imports", { source: "urls", urls: ["http://e.com/a"] })).status, 401);
		assert.equal((await alice.get("/api/imports/nope")).status, 404);
	});

	it("imports one image by URL and shows jobs to their owner and admins only", async () => {
		const res = await alice.post("/api/images/from-url", { url: `${host.url}/img/kitten_224.png`, category: undefined });
		assert.equal(res.status, 202, JSON.stringify(res.body));
		const job = await finished(alice, res.body.job.id);
		assert.equal(job.succeeded, 1);
		const [item] = await allItems(alice, job.id);
		assert.equal((await alice.get(`/api/images/${item.imageId}`)).body.format, "png");
		assert.equal((await bob.get(`/api/imports/${job.id}`)).status, 404);
		assert.equal((await admin.get(`/api/imports/${job.id}`)).status, 200);
		assert.equal((await bob.post("/api/images/from-url", { url: `${host.url}/unique/bob.jpg` })).status, 202);
		const mine = (await bob.get("/api/imports")).body.items.map((j: { owner: string }) => j.owner);
		assert.ok(mine.length > 0 && new Set(mine).size === 1);
		const all = (await admin.get("/api/imports?limit=100")).body.items.map((j: { owner: string }) => j.owner);
		assert.ok(new Set(all).size >= 2);
	});

	it("streams progress over Server-Sent Events until the final state", async () => {
		host.gate = new Gate();
		host.gatedArrivals = 0;
		const urls = Array.from({ length: 6 }, (_, i) => `${host.url}/gated/${100 + i}.jpg`);
		const { body } = await alice.post("/api/imports", { source: "urls", urls });
		const res = await fetch(`${server.url}/api/imports/${body.job.id}/events`, { headers: { authorization: `Bearer ${alice.token}` } });
		assert.equal(res.status, 200);
		assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
		const events: { event: string; data: any }[] = [];
		const decoder = new TextDecoder();
		let buffer = "";
		for await (const chunk of res.body!) {
			buffer += decoder.decode(chunk, { stream: true });
			let end: number;
			while ((end = buffer.indexOf("\n\n")) >= 0) {
				const frame = buffer.slice(0, end);
				buffer = buffer.slice(end + 2);
				const event = /^event: (.+)$/m.exec(frame)![1]!;
				events.push({ event, data: JSON.parse(/^data: (.+)$/m.exec(frame)![1]!) });
				// Let the downloads through once the stream has shown the job waiting on them.
				if (event === "progress" && host.gatedArrivals > 0) host.gate.open();
			}
		}
		const progress = events.filter(e => e.event === "progress");
		assert.ok(progress.length >= 1, JSON.stringify(events));
		assert.ok(progress.every(e => e.data.processed < urls.length));
		assert.equal(events.at(-1)!.event, "done");
		assert.equal(events.at(-1)!.data.status, "completed");
		assert.equal(events.at(-1)!.data.succeeded, urls.length);
	});

	it("cancels a running job: queued items are dropped, finished ones stay", async () => {
		host.gate = new Gate();
		host.gatedArrivals = 0;
		const urls = Array.from({ length: 300 }, (_, i) => `${host.url}/gated/${1000 + i}.jpg`);
		const { body } = await alice.post("/api/imports", { source: "urls", urls });
		while (host.gatedArrivals === 0) await new Promise(resolve => setTimeout(resolve, 20));
		const cancelled = await alice.delete(`/api/imports/${body.job.id}`);
		assert.equal(cancelled.status, 200);
		host.gate.open();
		const job = await finished(alice, body.job.id);
		assert.equal(job.status, "cancelled");
		assertCountsAddUp(job);
		assert.ok(job.cancelled > 0 && job.processed > 0, JSON.stringify(job));
		assert.equal(job.processed + job.cancelled, urls.length);
		assert.equal((await allItems(alice, job.id, "cancelled")).length, job.cancelled);
		// Nothing that was dropped got fetched later.
		assert.equal(host.gatedArrivals, job.processed);
	});

	it("deleting an account removes its imports, and nothing they were still fetching outlives it", async () => {
		host.gate = new Gate();
		host.gatedArrivals = 0;
		const anon = new Client(server.url);
		const carol = await anon.register("carol");
		const carolId = (await carol.get("/api/auth/me")).body.id;
		const urls = Array.from({ length: 100 }, (_, i) => `${host.url}/gated/carol-${i}.jpg`);
		const { body } = await carol.post("/api/imports", { source: "urls", urls, visibility: "public" });
		// Some items are mid-download (held by the gate) when the account goes.
		while (host.gatedArrivals === 0) await new Promise(resolve => setTimeout(resolve, 20));
		assert.equal((await carol.delete("/api/auth/me")).status, 204);
		host.gate.open();

		assert.equal((await admin.get(`/api/imports/${body.job.id}`)).status, 404, "the job went with the account");
		// What was started before (mid-download, or waiting for a download slot) stores nothing for
		// the account: watched for a few seconds, as no job is left to say when it is over.
		for (let i = 0; i < 15; i++) {
			const everything = await admin.get("/api/images?limit=100");
			assert.deepEqual(everything.body.items.filter((image: any) => image.owner === carolId), [], "no image of the deleted account");
			await new Promise(resolve => setTimeout(resolve, 200));
		}

		// A new account with the same name owns nothing, by either way of asking.
		const newCarol = await anon.register("carol");
		assert.equal((await admin.get("/api/images?owner=carol")).body.total, 0);
		assert.equal((await anon.get(`/api/images?q=${encodeURIComponent("owner:carol")}`)).body.total, 0);
		const upload = await newCarol.upload([{ name: "mine.jpg", bytes: readFileSync(join(SHARED_IMAGES, "dog.jpg")) }], { visibility: "public" });
		assert.equal(upload.status, 201);
		const mine = await anon.get("/api/images?owner=carol");
		assert.deepEqual(mine.body.items.map((image: any) => image.id), [upload.body.images[0].id]);
		assert.deepEqual((await anon.get(`/api/images?q=${encodeURIComponent("owner:carol")}`)).body.items.map((image: any) => image.id), [upload.body.images[0].id]);
		assert.equal((await anon.get("/api/images?owner=nobody-here")).body.total, 0);
	});

	it("retries only the failed items", async () => {
		const urls = [`${host.url}/unique/kept.jpg`, `${host.url}/unique/a.jpg`, `${host.url}/unique/b.jpg`];
		host.broken.add("/unique/a.jpg").add("/unique/b.jpg");
		const first = await finished(alice, (await alice.post("/api/imports", { source: "urls", urls })).body.job.id);
		assert.equal(first.status, "completed_with_errors");
		assert.equal(first.failed, 2);
		host.broken.clear();
		const retried = await alice.post(`/api/imports/${first.id}/retry`);
		assert.equal(retried.status, 202);
		assert.equal(retried.body.requeued, 2);
		const done = await finished(alice, first.id);
		assert.equal(done.status, "completed");
		assertCountsAddUp(done);
		assert.deepEqual([done.processed, done.succeeded, done.failed, done.errors.length], [3, 3, 0, 0]);
		assert.equal(host.hitsOf("/unique/kept.jpg"), 1, "the item that worked was not fetched again");
		assert.equal(host.hitsOf("/unique/a.jpg"), 2);
		// Nothing failed any more: nothing to retry.
		assert.equal((await alice.post(`/api/imports/${first.id}/retry`)).body.requeued, 0);
	});
});

describe("imports without IMPORT_ALLOW_PRIVATE_NETWORKS", () => {
	let host: ImageHost;
	let server: RunningServer;
	let alice: Client;

	before(async () => {
		host = await new ImageHost().start();
		server = await startServer({ MAX_UPLOAD_BYTES: String(MAX_BYTES), IMPORT_RETRIES: "0" });
		alice = await new Client(server.url).register("alice");
	});
	after(async () => {
		await server?.stop();
		await host?.stop();
	});

	it("refuses loopback, by address or by name, without connecting", async () => {
		const port = new URL(host.url).port;
		const urls = [`${host.url}/img/dog.jpg`, `http://localhost:${port}/img/dog.jpg`, `http://[::1]:${port}/img/dog.jpg`, `http://[::ffff:127.0.0.1]:${port}/img/dog.jpg`, `http://0.0.0.0:${port}/img/dog.jpg`];
		const job = await finished(alice, (await alice.post("/api/imports", { source: "urls", urls })).body.job.id);
		assert.equal(job.status, "failed");
		assert.equal(job.failed, urls.length);
		for (const error of job.errors) assert.match(error.error, /ADDRESS_REFUSED/, error.item);
		assert.equal(host.hitsOf("/img/dog.jpg"), 0);
	});
});

/** A POST with a JSON text body: when the body was handed to the socket, and when the answer came. */
function postJson(url: string, token: string, body: string): Promise<{ status: number; body: any; sentAt: number; answeredAt: number }> {
	return new Promise((resolve, reject) => {
		let sentAt = 0;
		const req = http.request(url, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, res => {
			const chunks: Buffer[] = [];
			res.on("data", chunk => chunks.push(chunk));
			res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString()), sentAt, answeredAt: performance.now() }));
		});
		req.on("error", reject);
		req.end(body, () => (sentAt = performance.now()));
	});
}

/** GET /api/health back to back until stopped: the times its 200 answers arrived, and the other outcomes. */
function pollHealth(base: string): { stop(): Promise<{ answers: number[]; failures: string[] }> } {
	const answers: number[] = [];
	const failures: string[] = [];
	let running = true;
	const loop = (async () => {
		while (running) {
			try {
				const res = await fetch(`${base}/api/health`);
				await res.arrayBuffer();
				if (res.status === 200) answers.push(performance.now());
				else failures.push(`HTTP ${res.status}`);
			} catch (err) {
				failures.push(String((err as Error).cause ?? err));
			}
		}
	})();
	return {
		async stop() {
			running = false;
			await loop;
			return { answers, failures };
		}
	};
}

describe("import limits and big requests", () => {
	let host: ImageHost;
	let server: RunningServer;
	let anon: Client;
	let admin: Client;
	let bob: Client;
	/** Downloads held at the host's gate: jobs stay open, their items not done. */
	const held = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${host.url}/gated/${prefix}/${i}/photo-${"x".repeat(90)}.jpg?n=${i}`);

	before(async () => {
		host = await new ImageHost().start();
		host.gate = new Gate();
		server = await startServer({ IMPORT_ALLOW_PRIVATE_NETWORKS: "true", IMPORT_CONCURRENCY: "4", IMPORT_MAX_OPEN_JOBS: "3", IMPORT_MAX_QUEUED_ITEMS: "120000" });
		anon = new Client(server.url);
		admin = await anon.login("admin", ADMIN_PASSWORD);
		bob = await anon.register("bob");
	});
	after(async () => {
		// Nothing left to download once every job is cancelled and the gate opens.
		const jobs = (await admin?.get("/api/imports?limit=100"))?.body.items ?? [];
		for (const job of jobs) await admin.delete(`/api/imports/${job.id}`);
		host?.gate.open();
		await server?.stop();
		await host?.stop();
	});

	it("creates a 100,000-URL import while /api/health keeps answering, during the request and the listing", async () => {
		const body = JSON.stringify({ source: "urls", urls: held("big", 100_000) });
		assert.ok(body.length > 14_000_000, "a list of the issue's size");
		const health = pollHealth(server.url);
		const created = await postJson(`${server.url}/api/imports`, bob.token!, body);
		assert.equal(created.status, 202, JSON.stringify(created.body));
		assert.deepEqual(created.body.job.source, { type: "urls", count: 100_000 });
		let job: any;
		do job = (await bob.get(`/api/imports/${created.body.job.id}`)).body;
		while (job.total < 100_000);
		const listedAt = performance.now();
		const { answers, failures } = await health.stop();
		assert.equal(job.total, 100_000);
		assert.equal((await bob.get(`/api/imports/${job.id}/items?limit=1`)).body.total, 100_000);
		const last = (await bob.get(`/api/imports/${job.id}/items?cursor=99998&limit=10`)).body.items;
		assert.deepEqual(last.map((item: any) => [item.seq, item.key]), [[99_999, held("big", 100_000).at(-1)]], "every URL, in order");
		// Health was answered while the node parsed, checked and stored the list (the body was all
		// sent, the 202 not yet back), and while it listed the items: the node was not frozen.
		// How long each answer took is the benchmark's business (bench/import-request.ts).
		const during = answers.filter(at => at > created.sentAt && at < created.answeredAt).length;
		const listing = answers.filter(at => at > created.answeredAt && at < listedAt).length;
		assert.ok(during >= 5, `health answered ${during} times during the request`);
		assert.ok(listing >= 5, `health answered ${listing} times during the listing`);
		assert.deepEqual(failures, []);
	});

	it("refuses a user's import past the queued-items limit with 429; other users are unaffected", async () => {
		// bob has the 100,000 URLs above queued (held at the gate); the limit is 120,000.
		const over = await bob.post("/api/imports", { source: "urls", urls: held("bob-over", 30_000) });
		assert.equal(over.status, 429, JSON.stringify(over.body));
		assert.equal(over.body.type, "TOO_MANY_QUEUED_ITEMS");
		assert.deepEqual(over.body.data, { limit: "queued-items", max: 120_000, current: 100_000, requested: 30_000 });
		assert.match(over.body.message, /120000/);
		assert.equal((await bob.post("/api/imports", { source: "urls", urls: held("bob-fits", 20_000) })).status, 202, "up to the limit exactly");
		const full = await bob.post("/api/images/from-url", { url: `${host.url}/gated/bob-one.jpg` });
		assert.equal(full.status, 429);
		assert.deepEqual(full.body.data, { limit: "queued-items", max: 120_000, current: 120_000, requested: 1 });

		const carol = await anon.register("carol");
		assert.equal((await carol.post("/api/imports", { source: "urls", urls: held("carol", 30_000) })).status, 202, "another user is unaffected");
	});

	it("refuses a user's import past the open-jobs limit with 429; other users are unaffected; a cancel makes room", async () => {
		const alice = await anon.register("alice");
		const ids: string[] = [];
		for (let i = 0; i < 3; i++) {
			const res = await alice.post("/api/imports", { source: "urls", urls: held(`alice-${i}`, 2) });
			assert.equal(res.status, 202, JSON.stringify(res.body));
			ids.push(res.body.job.id);
		}
		const refused = await alice.post("/api/imports", { source: "urls", urls: held("alice-3", 2) });
		assert.equal(refused.status, 429, JSON.stringify(refused.body));
		assert.equal(refused.body.type, "TOO_MANY_OPEN_IMPORTS");
		assert.deepEqual(refused.body.data, { limit: "open-jobs", max: 3, current: 3 });
		assert.equal((await alice.post("/api/images/from-url", { url: `${host.url}/gated/alice-one.jpg` })).status, 429);
		assert.equal((await alice.post("/api/imports", { source: "google-drive", folder: "rootFolder0001", apiKey: "k" })).status, 429);
		assert.equal((await alice.get("/api/imports")).body.total, 3, "nothing stored for the refused requests");

		const dave = await anon.register("dave");
		assert.equal((await dave.post("/api/imports", { source: "urls", urls: held("dave", 2) })).status, 202, "another user is unaffected");

		assert.equal((await alice.delete(`/api/imports/${ids[0]}`)).status, 200);
		assert.equal((await alice.post("/api/imports", { source: "urls", urls: held("alice-4", 2) })).status, 202, "a cancelled job no longer counts");
	});
});
