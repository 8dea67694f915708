/**
 * Privacy-safe copies, presets and signed transform URLs over REST (docs/sharing.md), on SQLite
 * with files and on MongoDB with GridFS: guests (anonymous /p/ callers, other users of a public
 * image) get originals without metadata and under `<id>.<ext>`, only presets or signed
 * parameters, and nothing of the camera in JSON; the owner keeps the byte-exact original and
 * every parameter.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { Client, fileFrom, type UploadFile } from "../helpers/client.ts";
import { type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { settled } from "../helpers/jobs.ts";
import { ADMIN_PASSWORD, type RunningServer, SHARED_IMAGES, startServer } from "../helpers/server.ts";

const GPS_PHOTO = readFileSync(join(SHARED_IMAGES, "dog-gps-exif.jpg"));
const CHELSEA = readFileSync(join(SHARED_IMAGES, "chelsea.png"));

async function pixels(bytes: Buffer): Promise<Buffer> {
	return sharp(bytes).raw().toBuffer();
}

/** A small WebP carrying the GPS photo's EXIF. */
async function exifWebp(): Promise<UploadFile> {
	return { name: "trip.webp", bytes: await sharp(GPS_PHOTO).resize(200).keepMetadata().webp().toBuffer() };
}

/** A GIF: no byte-level stripper, so its copy is a re-encode. */
async function gif(): Promise<UploadFile> {
	return { name: "wave.gif", bytes: await sharp({ create: { width: 40, height: 30, channels: 3, background: "#3060c0" } }).gif().toBuffer() };
}

function privacySuite(backend: () => Promise<{ env: Record<string, string>; stop(): Promise<void> }>): void {
	let server: RunningServer;
	let stopBackend: () => Promise<void>;
	let anon: Client;
	let alice: Client;
	let bob: Client;
	let admin: Client;
	let photo: string;
	let png: string;
	let webp: string;
	let animated: string;
	let secret: string;

	before(async () => {
		const started = await backend();
		stopBackend = started.stop;
		server = await startServer(started.env);
		anon = new Client(server.url);
		alice = await anon.register("alice");
		bob = await anon.register("bob");
		admin = await anon.login("admin", ADMIN_PASSWORD);
		const uploaded = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog-gps-exif.jpg")), fileFrom(join(SHARED_IMAGES, "chelsea.png")), await exifWebp(), await gif()], { visibility: "public" });
		assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
		[photo, png, webp, animated] = uploaded.body.images.map((image: { id: string }) => image.id);
		secret = (await alice.upload([fileFrom(join(SHARED_IMAGES, "dog-gps-exif.jpg"))])).body.images[0].id;
		for (const id of [photo, png, webp, animated, secret]) await settled(alice, id);
	});
	after(async () => {
		await server?.stop();
		await stopBackend?.();
	});

	it("gives the owner the byte-exact original under its uploaded name", async () => {
		const res = await alice.download(`/api/images/${photo}/content`);
		assert.equal(res.status, 200);
		assert.ok(res.bytes.equals(GPS_PHOTO));
		assert.match(res.headers.get("content-disposition")!, /filename\*=UTF-8''dog-gps-exif\.jpg$/);
		assert.equal(res.headers.get("cache-control"), "private, max-age=3600", "the original of a public image is for no shared cache");
		assert.equal((await anon.download(`/p/${photo}`)).headers.get("cache-control"), "public, max-age=3600");
		assert.equal((await admin.download(`/api/images/${photo}/content`)).bytes.length, GPS_PHOTO.length, "admins manage every image");
	});

	it("gives guests the JPEG without EXIF or GPS, the same pixels, its own ETag and an id for a name", async () => {
		const owner = await alice.download(`/api/images/${photo}/content`);
		for (const [client, path] of [[anon, `/p/${photo}`], [bob, `/api/images/${photo}/content`], [alice, `/p/${photo}`]] as const) {
			const res = await client.download(path);
			assert.equal(res.status, 200, path);
			const meta = await sharp(res.bytes).metadata();
			assert.equal(meta.exif, undefined, path);
			assert.equal(res.bytes.indexOf("GPS"), -1);
			assert.ok((await pixels(res.bytes)).equals(await pixels(GPS_PHOTO)), "stripped, not re-encoded");
			assert.equal(res.headers.get("content-type"), "image/jpeg");
			assert.equal(res.headers.get("content-length"), String(res.bytes.length));
			assert.match(res.headers.get("content-disposition")!, new RegExp(`filename\\*=UTF-8''${photo}\\.jpg$`));
			assert.notEqual(res.headers.get("etag"), owner.headers.get("etag"), "the copy is other bytes than the original");
		}
	});

	it("answers guests' conditional and range requests from the stripped copy, cached like a variant", async () => {
		const full = await anon.download(`/p/${photo}`);
		const stats = async () => (await admin.get("/api/transform/stats")).body as { renders: number; hits: number };
		const before = await stats();
		const again = await anon.download(`/p/${photo}`);
		assert.ok(again.bytes.equals(full.bytes));
		const after = await stats();
		assert.equal(after.renders, before.renders, "served from the cache");
		assert.ok(after.hits > before.hits);
		const notModified = await anon.download(`/p/${photo}`, { "if-none-match": full.headers.get("etag")! });
		assert.equal(notModified.status, 304);
		const part = await anon.download(`/p/${photo}`, { range: "bytes=10-109" });
		assert.equal(part.status, 206);
		assert.ok(part.bytes.equals(full.bytes.subarray(10, 110)));
		const head = await fetch(`${server.url}/p/${photo}`, { method: "HEAD" });
		assert.equal(head.headers.get("content-length"), String(full.bytes.length));
	});

	it("strips PNG text chunks and WebP EXIF byte-wise, and re-encodes other formats", async () => {
		const pngCopy = await anon.download(`/p/${png}`);
		assert.equal((await sharp(pngCopy.bytes).metadata()).xmp, undefined);
		assert.ok((await pixels(pngCopy.bytes)).equals(await pixels(CHELSEA)));
		assert.match(pngCopy.headers.get("content-disposition")!, new RegExp(`${png}\\.png$`));
		const webpOriginal = await alice.download(`/api/images/${webp}/content`);
		assert.ok((await sharp(webpOriginal.bytes).metadata()).exif, "the owner's copy keeps its EXIF");
		const webpCopy = await anon.download(`/p/${webp}`);
		assert.equal((await sharp(webpCopy.bytes).metadata()).exif, undefined);
		assert.ok((await pixels(webpCopy.bytes)).equals(await pixels(webpOriginal.bytes)));
		const gifCopy = await anon.download(`/p/${animated}`);
		assert.equal(gifCopy.status, 200);
		assert.equal((await sharp(gifCopy.bytes).metadata()).format, "gif");
		assert.equal(gifCopy.headers.get("content-type"), "image/gif");
	});

	it("keeps the camera and the uploaded name out of guests' JSON", async () => {
		const own = (await alice.get(`/api/images/${photo}`)).body;
		assert.equal(own.filename, "dog-gps-exif.jpg");
		assert.equal(own.showMetadata, false);
		for (const client of [anon, bob]) {
			const seen = (await client.get(`/api/images/${photo}`)).body;
			assert.equal(seen.filename, `${photo}.jpg`);
			assert.equal(seen.metadata.cameraMake, null);
			assert.equal(seen.metadata.cameraModel, null);
			assert.equal(seen.metadata.takenAt, null);
			const listed = (await client.get("/api/images?owner=alice")).body.items.find((image: { id: string }) => image.id === photo);
			assert.equal(listed.filename, `${photo}.jpg`);
		}
	});

	it("gives guests the original and its name once the owner turns showMetadata on, and back off", async () => {
		assert.equal((await bob.patch(`/api/images/${photo}`, { showMetadata: true })).status, 404, "only the owner decides");
		const on = await alice.patch(`/api/images/${photo}`, { showMetadata: true });
		assert.equal(on.status, 200);
		assert.equal(on.body.showMetadata, true);
		const res = await anon.download(`/p/${photo}`);
		assert.ok(res.bytes.equals(GPS_PHOTO));
		assert.match(res.headers.get("content-disposition")!, /dog-gps-exif\.jpg$/);
		assert.equal((await bob.get(`/api/images/${photo}`)).body.filename, "dog-gps-exif.jpg");
		assert.equal((await alice.patch(`/api/images/${photo}`, { showMetadata: false })).body.showMetadata, false);
		assert.equal((await sharp((await anon.download(`/p/${photo}`)).bytes).metadata()).exif, undefined);
		assert.equal((await alice.patch(`/api/images/${photo}`, { showMetadata: "yes" })).status, 400);
	});

	it("serves renditions and variants without metadata to everyone, the owner included", async () => {
		for (const [client, path] of [
			[alice, `/api/images/${photo}/thumbnail?size=720`],
			[alice, `/api/images/${photo}/content?w=300`],
			[anon, `/p/${photo}/thumbnail`],
			[anon, `/p/${photo}?preset=medium`]
		] as const) {
			const res = await client.download(path);
			assert.equal(res.status, 200, path);
			const meta = await sharp(res.bytes).metadata();
			assert.equal(meta.exif, undefined, path);
			assert.equal(meta.xmp, undefined, path);
		}
		const thumb = await anon.download(`/p/${photo}/thumbnail`);
		assert.match(thumb.headers.get("content-disposition")!, new RegExp(`${photo}\\.webp$`));
	});

	it("lets guests ask for presets by name: longest side, format by Accept", async () => {
		const small = await anon.download(`/p/${photo}?preset=small`, { accept: "image/webp,*/*" });
		assert.equal(small.status, 200);
		const meta = await sharp(small.bytes).metadata();
		assert.deepEqual([meta.format, Math.max(meta.width!, meta.height!)], ["webp", 480]);
		assert.equal(small.headers.get("vary"), "Accept");
		const thumb = await bob.download(`/api/images/${png}/content?preset=thumb`);
		assert.equal(Math.max((await sharp(thumb.bytes).metadata()).width!, (await sharp(thumb.bytes).metadata()).height!), 240);
		const large = await sharp((await anon.download(`/p/${png}?preset=large`)).bytes).metadata();
		assert.deepEqual([large.width, large.height], [451, 300], "never enlarged");
	});

	it("refuses unknown presets, path tricks and presets mixed with parameters, with JSON errors", async () => {
		const unknown = await anon.get(`/p/${photo}?preset=huge`);
		assert.equal(unknown.status, 404);
		assert.equal(unknown.body.type, "NOT_FOUND");
		for (const trick of ["../../etc/passwd", "..%2Fsecrets", "constructor%00", "__proto__", "THUMB", ""]) {
			const res = await anon.get(`/p/${photo}?preset=${trick}`);
			assert.equal(res.status, 400, trick);
			assert.equal(typeof res.body.message, "string");
		}
		assert.equal((await anon.get(`/p/${photo}?preset=constructor`)).status, 404, "a name, but not one of the table's own");
		const mixed = await alice.get(`/api/images/${photo}/content?preset=small&w=100`);
		assert.equal(mixed.status, 400);
		assert.equal(mixed.body.type, "PRESET_CONFLICT");
	});

	it("refuses guests' unsigned parameters with a message naming the presets; the owner keeps them all", async () => {
		for (const [client, path] of [
			[anon, `/p/${photo}?w=300`],
			[anon, `/p/${photo}.webp`],
			[bob, `/api/images/${photo}/content?format=png`],
			[bob, `/api/images/${photo}/renditions/compress-q70-webp`]
		] as const) {
			const res = await client.get(path);
			assert.equal(res.status, 403, path);
			assert.equal(res.body.type, "TRANSFORM_NOT_ALLOWED");
			assert.match(res.body.message, /thumb, small, medium, large/);
		}
		assert.equal((await alice.download(`/api/images/${photo}/content?w=301&q=73`)).status, 200);
		assert.equal((await alice.download(`/api/images/${photo}/renditions/compress-q70-webp`)).status, 200);
	});

	it("signs transform URLs for whoever may see the image; a guest gets exactly that variant", async () => {
		const signed = await bob.get(`/api/images/${photo}/url?w=300&format=webp`);
		assert.equal(signed.status, 200, JSON.stringify(signed.body));
		const url = new URL(signed.body.url, server.url);
		assert.equal(url.pathname, `/p/${photo}`, "a public image's URL is its public link");
		assert.match(url.searchParams.get("sig")!, /^[\w-]+\.[\w-]{43}$/);
		const res = await anon.download(url.pathname + url.search);
		assert.equal(res.status, 200);
		const meta = await sharp(res.bytes).metadata();
		assert.deepEqual([meta.format, meta.width], ["webp", 300]);
		assert.equal((await bob.download(`/api/images/${photo}/content${url.search}`)).status, 200, "valid on every route of the image");

		const changed = new URL(url);
		changed.searchParams.set("w", "301");
		const refused = await anon.get(changed.pathname + changed.search);
		assert.equal(refused.status, 403);
		assert.equal(refused.body.type, "SIGNATURE_INVALID");
		const added = await anon.get(`${url.pathname}${url.search}&q=20`);
		assert.equal(added.body.type, "SIGNATURE_INVALID");
		assert.equal((await anon.get(`/p/${png}${url.search}`)).body.type, "SIGNATURE_INVALID", "another image");
	});

	it("expires signed URLs, and signs private images' URLs on the API path for those who may see them", async () => {
		const short = await alice.get(`/api/images/${photo}/url?w=200&expiresIn=1`);
		const url = new URL(short.body.url, server.url);
		const exp = Number(url.searchParams.get("exp"));
		assert.ok(exp > Date.now() / 1000, "valid for about expiresIn from now");
		assert.equal(short.body.expiresAt, new Date(exp * 1000).toISOString());
		assert.equal((await anon.download(url.pathname + url.search)).status, 200);
		// Valid through its second `exp`, expired after it.
		await new Promise(resolve => setTimeout(resolve, (exp + 1) * 1000 - Date.now() + 50));
		const expired = await anon.get(url.pathname + url.search);
		assert.equal(expired.status, 403);
		assert.equal(expired.body.type, "SIGNATURE_EXPIRED");
		const later = new URL(url);
		later.searchParams.set("exp", String(Number(url.searchParams.get("exp")) + 3600));
		assert.equal((await anon.get(later.pathname + later.search)).body.type, "SIGNATURE_INVALID", "the expiry is signed");

		assert.equal((await bob.get(`/api/images/${secret}/url?w=200`)).status, 404, "who may not see it gets nothing");
		assert.equal((await anon.get(`/api/images/${photo}/url?w=200`)).status, 401);
		const own = await alice.get(`/api/images/${secret}/url?w=200`);
		assert.equal(new URL(own.body.url, server.url).pathname, `/api/images/${secret}/content`);
		for (const query of ["w=0", "format=bmp", "w=100&h=100&fit=sideways", "w=100&expiresIn=0", "", "preset=small"]) {
			assert.equal((await alice.get(`/api/images/${photo}/url?${query}`)).status, 400, query);
		}
	});
}

describe("privacy on SQLite and files", () => {
	privacySuite(async () => ({ env: {}, stop: async () => undefined }));
});

describe("privacy on MongoDB and GridFS (FerretDB)", { skip: ferretDbSkipReason() }, () => {
	privacySuite(async () => {
		const mongo: FerretDb = await startFerretDb();
		return { env: { MONGO_URL: mongo.databaseUrl(), STORAGE: "gridfs" }, stop: () => mongo.stop() };
	});
});
