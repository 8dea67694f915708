/**
 * Share links over REST on a real node (issue 15, part D), run on each metadata backend by
 * shares.sqlite.test.ts and shares.mongo.test.ts: making, listing, changing and revoking links,
 * anonymous access to /s/<token> (JSON, content, thumbnail), expiry (410), passwords with unlock,
 * its throttle, the cookie and the access token, and the hostile cases: guessed and malformed
 * tokens, someone else's image or link, an access token of another link, a user's token passed
 * as an access token. Every refusal is a JSON error with the right status.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client, fileFrom } from "../helpers/client.ts";
import { waitFor } from "../helpers/jobs.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

/** A node's backend: the environment it needs, started for the suite. */
export interface SharesBackend {
	env: Record<string, string>;
	stop(): Promise<void>;
}

/** Failed unlocks of one link before the throttle refuses more (LOGIN_FAILURES_PER_ACCOUNT). */
const UNLOCK_FAILURES = 3;

const TOKEN_URL = /^\/s\/[A-Za-z0-9_-]{43}$/;

function assertJsonError(res: { status: number; headers: Headers; body: any }, status: number, type?: string): void {
	assert.equal(res.status, status, JSON.stringify(res.body));
	assert.match(res.headers.get("content-type") ?? "", /application\/json/);
	assert.equal(res.body.code, status);
	if (type) assert.equal(res.body.type, type);
}

export function sharesSuite(name: string, skip: string | undefined, startBackend: () => Promise<SharesBackend>): void {
	describe(`share links (${name})`, { skip }, () => {
		let backend: SharesBackend;
		let node: RunningServer;
		let anonymous: Client;
		let alice: Client;
		let bob: Client;
		let privateId: string;
		let publicId: string;
		let original: Buffer;

		before(async () => {
			backend = await startBackend();
			node = await startServer({ ...backend.env, LOGIN_FAILURES_PER_ACCOUNT: String(UNLOCK_FAILURES), LOGIN_THROTTLE_BASE_MS: "60000" });
			anonymous = new Client(node.url);
			alice = await anonymous.register("alice");
			bob = await anonymous.register("bob");
			const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));
			original = Buffer.from(dog.bytes);
			privateId = (await alice.upload([dog])).body.images[0].id;
			publicId = (await alice.upload([dog], { visibility: "public" })).body.images[0].id;
			// Thumbnails are the pipeline's: wait until they exist, so every answer below is the stored one.
			for (const id of [privateId, publicId]) {
				await waitFor(`image ${id} ready`, async () => ((await alice.get(`/api/images/${id}`)).body.status === "ready" ? true : undefined));
			}
		});
		after(async () => {
			await node?.stop();
			await backend?.stop();
		});

		async function share(owner: Client, body: Record<string, unknown>): Promise<{ id: string; url: string }> {
			const res = await owner.post("/api/shares", body);
			assert.equal(res.status, 201, JSON.stringify(res.body));
			return res.body.share;
		}

		it("makes a link to a private image that anyone holding it can open: JSON, content, thumbnail", async () => {
			const res = await alice.post("/api/shares", { imageId: privateId });
			assert.equal(res.status, 201, JSON.stringify(res.body));
			const link = res.body.share;
			assert.match(link.url, TOKEN_URL, "an unguessable token of 256 bits");
			assert.equal(res.headers.get("location"), `/api/shares/${link.id}`);
			assert.deepEqual(
				[link.imageId, link.albumId, link.expiresAt, link.hasPassword, link.allowDownload, link.showMetadata, link.expired],
				[privateId, null, null, false, true, false, false]
			);

			const opened = await anonymous.get(link.url);
			assert.equal(opened.status, 200, JSON.stringify(opened.body));
			assert.deepEqual(opened.body.share, { kind: "image", expiresAt: null, allowDownload: true, showMetadata: false });
			assert.equal(opened.body.image.id, privateId);
			assert.equal(opened.body.image.filename, `${privateId}.jpg`, "the uploaded file name stays private");
			assert.equal(opened.body.image.owner, undefined, "nothing about the owner's account");

			const content = await anonymous.download(`${link.url}/content`);
			assert.equal(content.status, 200);
			assert.equal(content.headers.get("content-type"), "image/jpeg");
			assert.equal(content.headers.get("cache-control"), "private, no-cache", "revocation counts at once: no cache keeps it unasked");
			assert.ok(content.bytes.length > 1000);
			const again = await anonymous.download(`${link.url}/content`, { "if-none-match": content.headers.get("etag")! });
			assert.equal(again.status, 304);

			const thumbnail = await anonymous.download(`${link.url}/thumbnail`);
			assert.equal(thumbnail.status, 200);
			assert.equal(thumbnail.headers.get("content-type"), "image/webp");
			const head = await fetch(node.url + `${link.url}/content`, { method: "HEAD" });
			assert.equal(head.status, 200);

			// The image itself stays private for everyone else.
			assertJsonError(await anonymous.get(`/api/images/${privateId}`), 404);
			assertJsonError(await bob.get(`/api/images/${privateId}/content`), 404);
		});

		it("answers 404 JSON to guessed, malformed and path-trick tokens (400 to what is too long to be one)", async () => {
			for (const path of [`/s/${randomBytes(32).toString("base64url")}`, "/s/short", "/s/..%2F..%2Fetc%2Fpasswd", "/s/%00"]) {
				assertJsonError(await anonymous.get(path), 404);
				assertJsonError(await anonymous.get(`${path}/content`), 404);
			}
			assertJsonError(await anonymous.get(`/s/${"a".repeat(300)}`), 400, "VALIDATION_ERROR");
			assertJsonError(await anonymous.get(`/s/${randomBytes(32).toString("base64url")}/images/${privateId}/content`), 404);
			assertJsonError(await anonymous.post(`/s/${randomBytes(32).toString("base64url")}/unlock`, { password: "x" }), 404);
		});

		it("refuses links to what the caller does not own, and malformed requests", async () => {
			assertJsonError(await anonymous.post("/api/shares", { imageId: privateId }), 401);
			assertJsonError(await bob.post("/api/shares", { imageId: privateId }), 404);
			assertJsonError(await bob.post("/api/shares", { imageId: publicId }), 404, "NOT_FOUND");
			assertJsonError(await alice.post("/api/shares", { imageId: "no-such-image" }), 404);
			assertJsonError(await alice.post("/api/shares", {}), 400, "SHARE_TARGET");
			assertJsonError(await alice.post("/api/shares", { imageId: privateId, albumId: "a1" }), 400, "SHARE_TARGET");
			assertJsonError(await alice.post("/api/shares", { imageId: privateId, expiresAt: "2020-01-01T00:00:00Z" }), 400, "EXPIRED");
			assertJsonError(await alice.post("/api/shares", { imageId: privateId, expiresAt: "not a date" }), 400);
			assertJsonError(await alice.post("/api/shares", { imageId: privateId, allowDownload: "maybe" }), 400);
		});

		it("lists the owner's links without their URLs, in pages; others see none of them", async () => {
			const first = await share(alice, { imageId: publicId });
			const second = await share(alice, { imageId: publicId, showMetadata: true });
			const page = await alice.get("/api/shares?limit=1");
			assert.equal(page.status, 200);
			assert.deepEqual(page.body.items.map((item: { id: string }) => item.id), [second.id]);
			assert.equal(page.body.items[0].url, undefined, "the token is shown once, at creation");
			assert.equal(JSON.stringify(page.body).includes(second.url.slice(3)), false);
			const next = await alice.get(`/api/shares?limit=1&cursor=${page.body.nextCursor}`);
			assert.deepEqual(next.body.items.map((item: { id: string }) => item.id), [first.id]);
			assert.deepEqual((await bob.get("/api/shares")).body.items, []);
			assertJsonError(await anonymous.get("/api/shares"), 401);
			assertJsonError(await alice.get("/api/shares?cursor=garbage"), 400, "INVALID_CURSOR");
			assert.equal((await alice.get(`/api/shares/${first.id}`)).body.id, first.id);
			assertJsonError(await bob.get(`/api/shares/${first.id}`), 404);
		});

		it("revokes a link at once: 404 afterwards, for its JSON and its bytes", async () => {
			const link = await share(alice, { imageId: privateId });
			const cached = await anonymous.download(`${link.url}/content`);
			assert.equal(cached.status, 200);
			assertJsonError(await bob.delete(`/api/shares/${link.id}`), 404);
			assert.equal((await anonymous.get(link.url)).status, 200, "someone else's DELETE changed nothing");
			assert.equal((await alice.delete(`/api/shares/${link.id}`)).status, 204);
			assertJsonError(await anonymous.get(link.url), 404);
			assertJsonError(await anonymous.get(`${link.url}/content`), 404);
			assertJsonError(await anonymous.get(`${link.url}/content`, { "if-none-match": cached.headers.get("etag")! }), 404);
			assertJsonError(await anonymous.get(`${link.url}/thumbnail`), 404);
			assertJsonError(await alice.delete(`/api/shares/${link.id}`), 404);
		});

		it("answers 410 once a link has expired, and opens again when the owner lifts the expiry", async () => {
			const link = await share(alice, { imageId: privateId, expiresAt: new Date(Date.now() + 1500).toISOString() });
			assert.equal((await anonymous.get(link.url)).status, 200);
			await new Promise(resolve => setTimeout(resolve, 1600));
			assertJsonError(await anonymous.get(link.url), 410, "SHARE_EXPIRED");
			assertJsonError(await anonymous.get(`${link.url}/content`), 410, "SHARE_EXPIRED");
			assertJsonError(await anonymous.get(`${link.url}/thumbnail`), 410);
			assert.equal((await alice.get(`/api/shares/${link.id}`)).body.expired, true);
			assertJsonError(await bob.patch(`/api/shares/${link.id}`, { expiresAt: null }), 404);
			const patched = await alice.patch(`/api/shares/${link.id}`, { expiresAt: null });
			assert.equal(patched.status, 200, JSON.stringify(patched.body));
			assert.deepEqual([patched.body.expiresAt, patched.body.expired], [null, false]);
			assert.equal((await anonymous.get(link.url)).status, 200);
		});

		it("keeps a password link shut until unlocked: cookie for the link's path, access token for <img>", async () => {
			const link = await share(alice, { imageId: privateId, password: "open sesame" });
			const token = link.url.slice("/s/".length);
			assertJsonError(await anonymous.get(link.url), 401, "PASSWORD_REQUIRED");
			assertJsonError(await anonymous.get(`${link.url}/content`), 401, "PASSWORD_REQUIRED");
			assertJsonError(await anonymous.get(`${link.url}/thumbnail`), 401, "PASSWORD_REQUIRED");
			assertJsonError(await anonymous.post(`${link.url}/unlock`, { password: "open sesame!" }), 401, "INVALID_PASSWORD");
			assertJsonError(await anonymous.post(`${link.url}/unlock`, {}), 400);

			const unlocked = await anonymous.post(`${link.url}/unlock`, { password: "open sesame" });
			assert.equal(unlocked.status, 200, JSON.stringify(unlocked.body));
			const { accessToken } = unlocked.body;
			assert.equal(typeof accessToken, "string");
			const cookie = unlocked.headers.get("set-cookie") ?? "";
			assert.match(cookie, /HttpOnly/i);
			assert.match(cookie, /SameSite=Lax/i);
			assert.match(cookie, new RegExp(`Path=/s/${token}(;|$)`));
			const pair = cookie.split(";")[0]!;

			assert.equal((await anonymous.get(link.url, { cookie: pair })).status, 200);
			assert.equal((await anonymous.download(`${link.url}/content`, { cookie: `theme=dark; ${pair}; prefs=a=b` })).status, 200, "among other cookies");
			assert.equal((await anonymous.download(`${link.url}/content?access=${accessToken}`)).status, 200);
			assert.equal((await anonymous.download(`${link.url}/thumbnail?access=${accessToken}`)).status, 200);

			// Bound to this link: useless on another locked link, and a user's token is no access token.
			const other = await share(alice, { imageId: publicId, password: "open sesame" });
			assertJsonError(await anonymous.get(`${other.url}?access=${accessToken}`), 401, "PASSWORD_REQUIRED");
			assertJsonError(await anonymous.get(`${other.url}`, { cookie: pair }), 401, "PASSWORD_REQUIRED");
			assertJsonError(await anonymous.get(`${link.url}?access=${alice.token}`), 401, "PASSWORD_REQUIRED");
			assertJsonError(await anonymous.get(`${link.url}?access=garbage`), 401, "PASSWORD_REQUIRED");
			assertJsonError(await anonymous.withToken(accessToken).get("/api/auth/me"), 401, "ACCOUNT_INACTIVE");

			// A new password shuts the link for everyone who unlocked it with the old one.
			const changed = await alice.patch(`/api/shares/${link.id}`, { password: "new secret" });
			assert.equal(changed.body.hasPassword, true);
			assertJsonError(await anonymous.get(`${link.url}?access=${accessToken}`), 401, "PASSWORD_REQUIRED");
			const removed = await alice.patch(`/api/shares/${link.id}`, { password: null });
			assert.equal(removed.body.hasPassword, false);
			assert.equal((await anonymous.get(link.url)).status, 200);
		});

		it("throttles wrong passwords per link like logins: 429 before any password check", async () => {
			const link = await share(alice, { imageId: privateId, password: "right one" });
			for (let i = 0; i < UNLOCK_FAILURES; i++) assertJsonError(await anonymous.post(`${link.url}/unlock`, { password: `guess ${i}` }), 401);
			const refused = await anonymous.post(`${link.url}/unlock`, { password: "right one" });
			assertJsonError(refused, 429, "UNLOCK_THROTTLED");
			assert.ok(Number(refused.headers.get("retry-after")) > 0);
			// Another link is not held back by this one's guesser.
			const other = await share(alice, { imageId: privateId, password: "right one" });
			assert.equal((await anonymous.post(`${other.url}/unlock`, { password: "right one" })).status, 200);
		});

		// The images service's guest rules (part B) serve the `large` preset instead of the original.
		it("allowDownload false keeps the original's bytes from guests: renditions only", async () => {
			const link = await share(alice, { imageId: publicId, allowDownload: false });
			assert.equal((await anonymous.get(link.url)).body.share.allowDownload, false);
			assert.equal((await anonymous.download(`${link.url}/thumbnail`)).status, 200);
			const content = await anonymous.download(`${link.url}/content`);
			assert.equal(content.status, 200);
			assert.notDeepEqual(content.bytes, original, "never the original");
		});

		// The images service's guest rules (part B): presets by name, arbitrary parameters only signed.
		it("lets a link's guest ask for presets, not arbitrary sizes", async () => {
			const link = await share(alice, { imageId: privateId });
			const preset = await anonymous.download(`${link.url}/content?preset=small`);
			assert.equal(preset.status, 200);
			assert.equal(preset.headers.get("cache-control"), "private, no-cache");
			assertJsonError(await anonymous.get(`${link.url}/content?w=123`), 403);
			assertJsonError(await anonymous.get(`${link.url}/content?preset=..%2F..%2Fetc`), 400);
		});

		it("strips the original's metadata for a link's guests unless the link shows it", async () => {
			const gps = fileFrom(join(SHARED_IMAGES, "dog-gps-exif.jpg"));
			const id = (await alice.upload([gps])).body.images[0].id;
			const stripped = await anonymous.download(`${(await share(alice, { imageId: id })).url}/content`);
			assert.equal(stripped.status, 200);
			assert.notDeepEqual(stripped.bytes, Buffer.from(gps.bytes));
			assert.equal(stripped.bytes.includes(Buffer.from("Exif\0\0")), false, "no EXIF block");
			assert.match(stripped.headers.get("content-disposition") ?? "", new RegExp(`${id}\\.jpg`));
			const shown = await anonymous.download(`${(await share(alice, { imageId: id, showMetadata: true })).url}/content`);
			assert.deepEqual(shown.bytes, Buffer.from(gps.bytes), "the byte-exact original");
		});

		it("takes an image's links with it when the image is deleted", async () => {
			const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));
			const doomed = (await alice.upload([dog])).body.images[0].id;
			const link = await share(alice, { imageId: doomed });
			assert.equal((await anonymous.get(link.url)).status, 200);
			assert.equal((await alice.delete(`/api/images/${doomed}`)).status, 204);
			// With a trash, deleting is a move there and the purge is what takes the links.
			await alice.delete(`/api/trash/${doomed}`);
			assertJsonError(await anonymous.get(link.url), 404);
			await waitFor("the link to go", async () => ((await alice.get(`/api/shares/${link.id}`)).status === 404 ? true : undefined));
		});

		it("shuts an image's links while it is in the trash, and opens them again on its restore", async t => {
			if ((await alice.get("/api/trash")).status === 404) return t.skip("needs the trash (issue 15, part A)");
			const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));
			const trashed = (await alice.upload([dog])).body.images[0].id;
			const link = await share(alice, { imageId: trashed });
			assert.equal((await alice.delete(`/api/images/${trashed}`)).status, 204);
			assertJsonError(await anonymous.get(link.url), 404);
			assertJsonError(await anonymous.get(`${link.url}/content`), 404);
			assertJsonError(await anonymous.get(`${link.url}/thumbnail`), 404);
			assert.equal((await alice.get(`/api/shares/${link.id}`)).status, 200, "the link waits for a restore");
			assert.equal((await alice.post(`/api/trash/${trashed}/restore`)).status, 200);
			assert.equal((await anonymous.get(link.url)).status, 200);
			assert.equal((await anonymous.download(`${link.url}/content`)).status, 200);
		});

		it("takes a deleted account's links with it", async () => {
			const carol = await anonymous.register("carol");
			const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));
			const image = (await carol.upload([dog])).body.images[0].id;
			const link = await share(carol, { imageId: image });
			assert.equal((await carol.delete("/api/auth/me")).status, 204);
			assertJsonError(await anonymous.get(link.url), 404);
			const admin = await anonymous.login("admin", ADMIN_PASSWORD);
			await waitFor("the link to go", async () => ((await admin.get(`/api/shares/${link.id}`)).status === 404 ? true : undefined));
		});

		it("opens an album link: a page of its images, and only their bytes", async t => {
			const created = await alice.post("/api/albums", { name: "Holiday" });
			if (created.status !== 201) return t.skip("needs the albums service (issue 15, part C)");
			const albumId = created.body.album.id;
			assert.equal((await alice.post(`/api/albums/${albumId}/images`, { ids: [privateId] })).status < 300, true);
			assertJsonError(await bob.post("/api/shares", { albumId }), 404);
			const link = await share(alice, { albumId });
			const opened = await anonymous.get(link.url);
			assert.equal(opened.status, 200, JSON.stringify(opened.body));
			assert.equal(opened.body.share.kind, "album");
			assert.deepEqual(opened.body.items.map((image: { id: string }) => image.id), [privateId]);
			assert.equal(opened.body.items[0].filename, `${privateId}.jpg`);
			assert.equal((await anonymous.download(`${link.url}/images/${privateId}/content`)).status, 200);
			assert.equal((await anonymous.download(`${link.url}/images/${privateId}/thumbnail`)).status, 200);
			assertJsonError(await anonymous.get(`${link.url}/images/${publicId}/content`), 404);
			assertJsonError(await anonymous.get(`${link.url}/content`), 404);
			// A member may see the album, not pass it on.
			assert.equal((await alice.post(`/api/albums/${albumId}/members`, { username: "bob", role: "contributor" })).status < 300, true);
			assertJsonError(await bob.post("/api/shares", { albumId }), 404);
			// Out of the album, out of the link at the next request; a deleted album's link answers 404.
			assert.equal((await alice.request("DELETE", `/api/albums/${albumId}/images`, { ids: [privateId] })).status < 300, true);
			assertJsonError(await anonymous.get(`${link.url}/images/${privateId}/content`), 404);
			assert.deepEqual((await anonymous.get(link.url)).body.items, []);
			assert.equal((await alice.delete(`/api/albums/${albumId}`)).status, 204);
			assertJsonError(await anonymous.get(link.url), 404);
			await waitFor("the album's link to go", async () => ((await alice.get(`/api/shares/${link.id}`)).status === 404 ? true : undefined));
		});

		it("serves the app's page for a browser opening a link", async () => {
			const link = await share(alice, { imageId: privateId });
			const page = await fetch(node.url + link.url, { headers: { accept: "text/html,application/xhtml+xml" } });
			assert.equal(page.status, 200);
			assert.match(page.headers.get("content-type") ?? "", /text\/html/);
			assert.match(await page.text(), /<html/i);
			// Below a link, an unknown path is an API 404 for browsers too, never the app.
			const deeper = await fetch(`${node.url}${link.url}/nope`, { headers: { accept: "text/html" } });
			assert.equal(deeper.status, 404);
			assert.equal(((await deeper.json()) as { code: number }).code, 404);
		});
	});
}
