/**
 * Transformed downloads over REST with real sharp: every output format, fit modes and dpr,
 * parameter bounds, share links, thumbnails made on the spot, the variant cache (304 and hits
 * without rendering, one render for concurrent identical requests) and encrypted variants.
 * Renders are counted by the transform service's own counters (GET /api/transform/stats). A fresh
 * variant is answered before it is stored: tests that look at the cache wait for `pending` 0.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { Client, fileFrom, type UploadFile } from "../helpers/client.ts";
import { findFilesContaining, settled } from "../helpers/jobs.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const MAX_OUTPUT_PIXELS = 4_000_000;
const CACHE_MAX_BYTES = 40_000;

interface Counters {
	hits: number;
	misses: number;
	joined: number;
	renders: number;
	/** Variants in the cache: a render counts once it starts, an entry once it is stored. */
	entries: number;
	/** Renders not yet stored in the cache. */
	pending: number;
	evictions: number;
	bytes: number;
}

/** The transform counters once `done` holds (work in the background: storing, compress jobs). */
async function until(admin: Client, done: (now: Counters) => boolean): Promise<Counters> {
	for (let tries = 0; tries < 600; tries++) {
		const now: Counters = (await admin.get("/api/transform/stats")).body;
		if (done(now)) return now;
		await new Promise(resolve => setTimeout(resolve, 50));
	}
	throw new Error("the transform node did not get there");
}

/** The counters once every render is stored. */
const idle = (admin: Client) => until(admin, now => now.pending === 0);

/** An 800×400 PNG with transparency: wide, so every fit mode gives a different shape. */
async function widePng(): Promise<UploadFile> {
	const bytes = await sharp({ create: { width: 800, height: 400, channels: 4, background: { r: 200, g: 40, b: 90, alpha: 0.5 } } })
		.png()
		.toBuffer();
	return { name: "wide.png", bytes };
}

/** A noisy 1600×1000 JPEG: slow enough to encode as AVIF that concurrent requests overlap. */
async function noisyJpeg(): Promise<UploadFile> {
	const bytes = await sharp({ create: { width: 1600, height: 1000, channels: 3, background: "gray", noise: { type: "gaussian", mean: 128, sigma: 40 } } })
		.jpeg()
		.toBuffer();
	return { name: "noise.jpg", bytes };
}

/** The format sharp reports for each output format (AVIF lives in a HEIF container). */
const DETECTED: Record<string, string> = { jpg: "jpeg", jpeg: "jpeg", png: "png", webp: "webp", avif: "heif", gif: "gif", tiff: "tiff" };
const CONTENT_TYPES: Record<string, string> = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", avif: "image/avif", gif: "image/gif", tiff: "image/tiff" };

describe("transforms", () => {
	let server: RunningServer;
	let anon: Client;
	let admin: Client;
	let alice: Client;
	let bob: Client;
	let dog: string;
	let wide: string;

	const counters = () => idle(admin);

	before(async () => {
		// No worker: the ingest pipeline never makes renditions here, so every thumbnail is made on the spot.
		server = await startServer({ TRANSFORM_MAX_OUTPUT_PIXELS: String(MAX_OUTPUT_PIXELS), SERVICES: "api,users,images,categories,storage,transform,health" });
		anon = new Client(server.url);
		admin = await anon.login("admin", ADMIN_PASSWORD);
		alice = await anon.register("alice");
		bob = await anon.register("bob");
		const res = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg")), await widePng()]);
		assert.equal(res.status, 201, JSON.stringify(res.body));
		[dog, wide] = res.body.images.map((image: { id: string }) => image.id);
	});
	after(() => server.stop());

	it("converts to every format, by extension and by ?format=, with the right headers", async () => {
		for (const ext of Object.keys(DETECTED)) {
			for (const path of [`/api/images/${dog}/content.${ext}?w=160`, `/api/images/${dog}/content?format=${ext}&w=160`]) {
				const res = await alice.download(path);
				assert.equal(res.status, 200, `${path}: ${res.bytes.toString()}`);
				const meta = await sharp(res.bytes).metadata();
				assert.equal(meta.format, DETECTED[ext], path);
				assert.equal(meta.width, 160, path);
				assert.equal(res.headers.get("content-type"), CONTENT_TYPES[ext]);
				assert.equal(res.headers.get("content-length"), String(res.bytes.length));
				assert.equal(res.headers.get("cache-control"), "private, max-age=3600");
				assert.match(res.headers.get("content-disposition")!, new RegExp(`filename\\*=UTF-8''dog\\.${ext === "jpeg" ? "jpg" : ext}$`));
				assert.match(res.headers.get("etag")!, /^"[0-9a-f]{64}"$/);
				assert.equal(res.headers.get("vary"), null, "only format=auto varies by Accept");
			}
		}
	});

	it("resizes with each fit mode, never enlarging, and applies dpr", async () => {
		const size = async (query: string) => {
			const res = await alice.download(`/api/images/${wide}/content?${query}`);
			assert.equal(res.status, 200, `${query}: ${res.bytes.toString()}`);
			const meta = await sharp(res.bytes).metadata();
			return `${meta.width}x${meta.height}`;
		};
		assert.equal(await size("w=100&h=100&fit=cover"), "100x100");
		assert.equal(await size("w=100&h=100&fit=contain"), "100x100");
		assert.equal(await size("w=100&h=100&fit=fill"), "100x100");
		assert.equal(await size("w=100&h=100&fit=inside"), "100x50");
		assert.equal(await size("w=100&h=100&fit=outside"), "200x100");
		assert.equal(await size("h=100"), "200x100");
		assert.equal(await size("w=100&dpr=2"), "200x100");
		assert.equal(await size("w=100&h=30&dpr=1.5&fit=fill"), "150x45");
		assert.equal(await size("w=3000"), "800x400", "never enlarged");
		const png = await alice.download(`/api/images/${wide}/content?w=100`);
		assert.equal((await sharp(png.bytes).metadata()).hasAlpha, true, "a PNG stays a PNG with its transparency");
	});

	it("refuses unknown parameters and values, and outputs over the pixel limit, with 400 JSON", async () => {
		const bad: [string, string][] = [
			["w=0", "VALIDATION_ERROR"],
			["w=abc", "VALIDATION_ERROR"],
			["w=20000", "VALIDATION_ERROR"],
			["q=101", "VALIDATION_ERROR"],
			["dpr=9", "VALIDATION_ERROR"],
			["fit=squash&w=10&h=10", "VALIDATION_ERROR"],
			["format=bmp", "VALIDATION_ERROR"],
			["width=100", "VALIDATION_ERROR"],
			["w=10000&dpr=2", "DIMENSION_OUT_OF_BOUNDS"],
			["w=2500&h=2500&fit=fill", "OUTPUT_TOO_LARGE"]
		];
		for (const [query, type] of bad) {
			const res = await alice.get(`/api/images/${dog}/content?${query}`);
			assert.equal(res.status, 400, query);
			assert.equal(res.body.type, type, query);
		}
		const conflict = await alice.get(`/api/images/${dog}/content.png?format=webp`);
		assert.equal(conflict.status, 400);
		assert.equal(conflict.body.type, "FORMAT_CONFLICT");
		assert.equal((await alice.get(`/api/images/${dog}/content.bmp`)).status, 400);
		assert.equal((await alice.get(`/api/images/${dog}/thumbnail?size=100`)).status, 400);
	});

	it("keeps private images private: 404 for others and on every share link", async () => {
		for (const path of [`/p/${dog}`, `/p/${dog}.webp`, `/p/${dog}?w=100`, `/p/${dog}/thumbnail?size=240`]) {
			assert.equal((await anon.get(path)).status, 404, path);
		}
		assert.equal((await bob.get(`/api/images/${dog}/content.webp`)).status, 404);
		assert.equal((await bob.get(`/api/images/${dog}/thumbnail?size=240`)).status, 404);
		assert.equal((await admin.download(`/api/images/${dog}/content.webp?w=50`)).status, 200);
	});

	it("serves public images on share links, negotiating format=auto with Vary: Accept", async () => {
		assert.equal((await alice.patch(`/api/images/${wide}`, { visibility: "public" })).status, 200);
		const signed = new URL((await alice.get(`/api/images/${wide}/url?format=webp&w=240`)).body.url, server.url);
		const byFormat = await anon.download(signed.pathname + signed.search);
		assert.equal(byFormat.status, 200);
		assert.equal((await sharp(byFormat.bytes).metadata()).format, "webp");
		assert.equal(byFormat.headers.get("cache-control"), "public, max-age=3600");
		const negotiated = async (accept: string) => {
			const res = await anon.download(`/p/${wide}?preset=thumb`, { accept });
			assert.equal(res.status, 200);
			assert.equal(res.headers.get("vary"), "Accept");
			return [res.headers.get("content-type"), (await sharp(res.bytes).metadata()).format, res.headers.get("etag")];
		};
		const avif = await negotiated("image/avif,image/webp,*/*");
		const webp = await negotiated("image/webp,*/*");
		const fallback = await negotiated("*/*");
		assert.deepEqual(avif.slice(0, 2), ["image/avif", "heif"]);
		assert.deepEqual(webp.slice(0, 2), ["image/webp", "webp"]);
		assert.deepEqual(fallback.slice(0, 2), ["image/png", "png"], "a PNG source falls back to PNG");
		assert.equal(new Set([avif[2], webp[2], fallback[2]]).size, 3, "each negotiated format has its own ETag");
		assert.equal((await anon.get(`/p/${wide}.bmp`)).body.type, "UNKNOWN_FORMAT");
		const thumb = await anon.download(`/p/${wide}/thumbnail?size=240`);
		assert.equal(thumb.status, 200);
		assert.equal(thumb.headers.get("content-type"), "image/webp");
	});

	it("lets only the owner ask for any variant: others get presets or signed parameters (test/service/privacy.test.ts)", async () => {
		const refused = async (client: Client, path: string) => {
			const res = await client.get(path);
			assert.equal(res.status, 403, path);
			assert.equal(res.body.type, "TRANSFORM_NOT_ALLOWED");
			assert.match(res.body.message, /thumb, small, medium, large/, "the message names the presets");
		};
		for (const query of ["w=240", "w=240&format=webp&q=73", "w=1080&h=1080&fit=fill"]) {
			await refused(anon, `/p/${wide}?${query}`);
			await refused(bob, `/api/images/${wide}/content?${query}`);
		}
		await refused(bob, `/api/images/${wide}/renditions/compress-q70-webp`);
		assert.equal((await anon.download(`/p/${wide}?preset=small`)).status, 200);
		assert.equal((await alice.download(`/api/images/${wide}/content?w=241&q=73`)).status, 200, "the owner keeps the whole parameter space");
	});

	it("makes a thumbnail on the spot: shortest edge at the size, WebP, never enlarged", async () => {
		const res = await alice.download(`/api/images/${wide}/thumbnail?size=240`);
		assert.equal(res.status, 200);
		const meta = await sharp(res.bytes).metadata();
		assert.deepEqual([meta.format, meta.width, meta.height], ["webp", 480, 240]);
		assert.match(res.headers.get("content-disposition")!, /wide\.webp$/);
		const large = await sharp((await alice.download(`/api/images/${wide}/thumbnail?size=720`)).bytes).metadata();
		assert.deepEqual([large.width, large.height], [800, 400], "the 400 px short edge is not enlarged to 720");
	});

	it("answers If-None-Match with 304 before any cache look-up or render", async () => {
		const path = `/api/images/${dog}/content.webp?w=77`;
		const first = await alice.download(path);
		assert.equal(first.status, 200);
		const before = await counters();
		const etag = first.headers.get("etag")!;
		const notModified = await alice.download(path, { "if-none-match": `W/${etag}` });
		assert.equal(notModified.status, 304);
		assert.equal(notModified.headers.get("etag"), etag);
		assert.equal(notModified.bytes.length, 0);
		const after = await counters();
		assert.deepEqual([after.renders, after.hits, after.misses], [before.renders, before.hits, before.misses]);
		// Another variant's ETag does not match.
		assert.equal((await alice.download(`/api/images/${dog}/content.webp?w=78`, { "if-none-match": etag })).status, 200);
	});

	it("serves a cached variant with 200 and the same bytes without rendering", async () => {
		const path = `/api/images/${dog}/content?format=jpeg&w=90&q=55`;
		const first = await alice.download(path);
		const before = await counters();
		const again = await alice.download(path);
		assert.equal(again.status, 200);
		assert.ok(again.bytes.equals(first.bytes));
		assert.equal(again.headers.get("etag"), first.headers.get("etag"));
		const after = await counters();
		assert.equal(after.renders, before.renders, "no sharp run");
		assert.equal(after.hits, before.hits + 1);
		// The same variant spelled differently is the same cache entry.
		await alice.download(`/api/images/${dog}/content.jpg?w=90&q=55&fit=fill`);
		assert.equal((await counters()).renders, before.renders);
	});

	it("renders once for concurrent identical requests", async () => {
		const res = await alice.upload([await noisyJpeg()]);
		const id = res.body.images[0].id;
		const before = await counters();
		const responses = await Promise.all(Array.from({ length: 6 }, () => alice.download(`/api/images/${id}/content.avif?w=1200`)));
		assert.ok(responses.every(response => response.status === 200));
		assert.ok(responses.every(response => response.bytes.equals(responses[0]!.bytes)));
		const after = await counters();
		assert.equal(after.renders, before.renders + 1);
		assert.equal(after.misses, before.misses + 1);
		assert.equal(after.joined + after.hits, before.joined + before.hits + 5);
	});

	it("compresses in a background job: 202, then the rendition appears, rendered once however often asked", async () => {
		const before = await counters();
		const res = await alice.post(`/api/images/${dog}/compress`, {});
		assert.equal(res.status, 202, JSON.stringify(res.body));
		assert.deepEqual(res.body.job, {
			id: `${dog}/compress-q70-webp`,
			type: "compress",
			image: dog,
			rendition: "compress-q70-webp",
			status: "queued",
			location: `/api/images/${dog}/renditions/compress-q70-webp`
		});
		assert.equal(res.headers.get("location"), res.body.job.location);
		const rendered = await until(admin, now => now.entries === before.entries + 1);
		assert.equal(rendered.renders, before.renders + 1);

		const rendition = await alice.download(res.body.job.location);
		assert.equal(rendition.status, 200);
		const meta = await sharp(rendition.bytes).metadata();
		const original = await sharp(join(SHARED_IMAGES, "dog.jpg")).metadata();
		assert.deepEqual([meta.format, meta.width, meta.height], ["webp", original.width, original.height], "same size, new encoding");
		assert.equal((await counters()).renders, rendered.renders, "served from what the job stored");

		assert.equal((await alice.post(`/api/images/${dog}/compress`, {})).status, 202, "asking again is fine");
		const again = await until(admin, now => now.hits >= rendered.hits + 2);
		assert.equal(again.renders, rendered.renders, "a repeated job is a cache hit");

		const jpeg = await alice.post(`/api/images/${dog}/compress`, { quality: 40, format: "jpg" });
		assert.equal(jpeg.body.job.rendition, "compress-q40-jpeg");
		assert.equal((await alice.post(`/api/images/${dog}/compress`, { format: "png", quality: 10 })).body.job.rendition, "compress-png");
		await until(admin, now => now.entries === rendered.entries + 2);
		const small = await alice.download(jpeg.body.job.location);
		assert.equal((await sharp(small.bytes).metadata()).format, "jpeg");
		assert.equal((await counters()).renders, rendered.renders + 2);
	});

	it("refuses bad compress requests and serves renditions only by known names", async () => {
		assert.equal((await alice.post(`/api/images/${dog}/compress`, { quality: 0 })).status, 400);
		assert.equal((await alice.post(`/api/images/${dog}/compress`, { format: "bmp" })).status, 400);
		assert.equal((await alice.post(`/api/images/${dog}/compress`, { level: 3 })).status, 400);
		assert.equal((await bob.post(`/api/images/${dog}/compress`, {})).status, 404, "only the owner compresses");
		assert.equal((await anon.post(`/api/images/${dog}/compress`, {})).status, 401);
		for (const name of ["bogus", "compress-q70-bmp", "compress-q0-webp", "compress-png-q3", "compress-q50-png", "compress-webp", "241"]) {
			assert.equal((await alice.get(`/api/images/${dog}/renditions/${name}`)).status, 404, name);
		}
		const byName = await alice.download(`/api/images/${dog}/renditions/720`);
		const thumbnail = await alice.download(`/api/images/${dog}/thumbnail?size=720`);
		assert.equal(byName.status, 200);
		assert.equal(byName.headers.get("etag"), thumbnail.headers.get("etag"));
		assert.equal((await bob.get(`/api/images/${dog}/renditions/720`)).status, 404);
	});

	it("caches variants of encrypted images encrypted, and those of plain ones as plain blobs", async () => {
		const plain = await alice.download(`/api/images/${dog}/content.png?w=64`);
		await counters();
		const plainSha = createHash("sha256").update(plain.bytes).digest("hex");
		assert.ok(existsSync(join(server.dataDir, "blobs", plainSha.slice(0, 2), `sha256-${plainSha}`)), "content-addressed plain blob");

		const upload = await bob.upload([fileFrom(join(SHARED_IMAGES, "hummingbird.jpg"))], { encrypted: "true" });
		const id = upload.body.images[0].id;
		const variant = await bob.download(`/api/images/${id}/content.png?w=64`);
		assert.equal(variant.status, 200);
		assert.equal((await sharp(variant.bytes).metadata()).width, 64);
		const stored = await counters();
		// PNG rows deflate differently per image; a slice from the middle is specific to it.
		const middle = variant.bytes.subarray(variant.bytes.length / 2, variant.bytes.length / 2 + 64);
		assert.deepEqual(findFilesContaining(join(server.dataDir, "blobs"), middle), [], "no plaintext variant on disk");
		const again = await bob.download(`/api/images/${id}/content.png?w=64`);
		assert.ok(again.bytes.equals(variant.bytes), "decrypted from the cache intact");
		assert.equal((await counters()).hits, stored.hits + 1);
	});
});

describe("transforms beside the ingest pipeline", () => {
	let server: RunningServer;
	before(async () => {
		server = await startServer({ TRANSFORM_CACHE_MAX_BYTES: String(CACHE_MAX_BYTES), TRANSFORM_AVIF_CONCURRENCY: "1", TRANSFORM_QUEUE_SIZE: "1" });
	});
	after(() => server.stop());

	it("serves the renditions the pipeline stored once the image is ready, without rendering", async () => {
		const admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
		const id = (await admin.upload([fileFrom(join(SHARED_IMAGES, "hummingbird.jpg"))])).body.images[0].id;
		const doc = await settled(admin, id);
		assert.equal(doc.status, "ready");
		const before = await idle(admin);
		for (const rendition of doc.renditions) {
			const res = await admin.download(`/api/images/${id}/thumbnail?size=${rendition.name}`);
			assert.equal(res.status, 200);
			assert.equal(res.bytes.length, rendition.size);
			const meta = await sharp(res.bytes).metadata();
			assert.deepEqual([meta.format, meta.width, meta.height], ["webp", rendition.width, rendition.height]);
			assert.equal((await admin.download(`/api/images/${id}/thumbnail?size=${rendition.name}`, { "if-none-match": res.headers.get("etag")! })).status, 304);
		}
		assert.equal((await idle(admin)).renders, before.renders);
	});

	it("evicts the least recently used variants past TRANSFORM_CACHE_MAX_BYTES and deletes their blobs", async () => {
		const maxBytes = CACHE_MAX_BYTES;
		const admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
		const id = (await admin.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))])).body.images[0].id;
		const blobPath = (bytes: Buffer) => {
			const sha = createHash("sha256").update(bytes).digest("hex");
			return join(server.dataDir, "blobs", sha.slice(0, 2), `sha256-${sha}`);
		};
		const first = (await admin.download(`/api/images/${id}/content.webp?w=300`)).bytes;
		await idle(admin);
		assert.ok(existsSync(blobPath(first)));
		assert.ok(first.length > maxBytes / 3, "three variants overflow the cache");
		for (const width of [301, 302]) {
			assert.equal((await admin.download(`/api/images/${id}/content.webp?w=${width}`)).status, 200);
			await idle(admin);
		}
		const stats = await idle(admin);
		assert.equal(stats.evictions, 1);
		assert.ok(stats.bytes <= maxBytes, `${stats.bytes} cached bytes`);
		assert.equal(existsSync(blobPath(first)), false, "the evicted variant's blob is gone");
		const again = await admin.download(`/api/images/${id}/content.webp?w=300`);
		assert.ok(again.bytes.equals(first));
		assert.equal((await idle(admin)).renders, stats.renders + 1, "rendered again");
		const oversized = await admin.download(`/api/images/${id}/content.png`);
		assert.equal(oversized.status, 200);
		assert.ok(oversized.bytes.length > maxBytes);
		const kept = await idle(admin);
		assert.ok((await admin.download(`/api/images/${id}/content.png`)).bytes.equals(oversized.bytes));
		assert.equal((await idle(admin)).hits, kept.hits + 1, "a variant larger than the whole cache stays until the next one");

		// A cached variant whose blob is lost is rendered again, not a 404.
		rmSync(blobPath(oversized.bytes));
		const lost = await admin.download(`/api/images/${id}/content.png`);
		assert.equal(lost.status, 200);
		assert.ok(lost.bytes.equals(oversized.bytes));
		assert.equal((await idle(admin)).renders, kept.renders + 1);

		// A cached variant whose blob changed on disk breaks off once (the store marks it corrupt),
		// then is rendered again rather than refused.
		const path = blobPath(oversized.bytes);
		const stored = readFileSync(path);
		stored[1000]! ^= 0x01;
		writeFileSync(path, stored);
		const broken = await fetch(`${server.url}/api/images/${id}/content.png`, { headers: { Authorization: `Bearer ${admin.token}` } })
			.then(res => res.arrayBuffer())
			.then(
				bytes => Buffer.from(bytes),
				() => null
			);
		assert.ok(broken === null || broken.length < oversized.bytes.length, "the transfer broke off");
		const healed = await admin.download(`/api/images/${id}/content.png`);
		assert.equal(healed.status, 200);
		assert.ok(healed.bytes.equals(oversized.bytes));
		assert.equal((await idle(admin)).renders, kept.renders + 2);
		assert.ok(readFileSync(path).equals(oversized.bytes), "stored afresh");
	});

	it("bounds AVIF work: one encode at a time, one waiting, the rest refused with 429 while other formats go on", async () => {
		const admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
		const id = (await admin.upload([await noisyJpeg()])).body.images[0].id;
		// Distinct variants, so single flight does not merge them; each encode takes a while.
		const avif = Array.from({ length: 4 }, (_, i) => admin.get(`/api/images/${id}/content.avif?w=${1200 + i}`));
		const webp = await admin.download(`/api/images/${id}/content.webp?w=64`);
		assert.equal(webp.status, 200, "the AVIF queue does not hold up WebP");
		const statuses = (await Promise.all(avif)).map(res => (res.status === 429 ? `429 ${res.body.type}` : String(res.status)));
		assert.deepEqual(statuses.toSorted(), ["200", "200", "429 QUEUE_FULL", "429 QUEUE_FULL"]);
	});
});
