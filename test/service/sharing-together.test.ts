/**
 * The parts of issue 15 together, over REST on both metadata backends (SQLite with files, MongoDB
 * with GridFS through FerretDB): an album viewer is a guest (stripped copies, presets only, no
 * uploaded name, answers revalidated so that a removed member is shut out at the next request,
 * bytes included); the trash hides an image from its albums, album counts and covers, `album:`
 * searches, share links and viewers, and a restore brings all of it back; purging drops it from
 * its albums and deletes its links; deleting an account takes its albums, memberships, links and
 * trash, and leaves other people's images in its albums alone.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { Client, fileFrom, type ApiResponse } from "../helpers/client.ts";
import { type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { settled, waitFor } from "../helpers/jobs.ts";
import { ADMIN_PASSWORD, type RunningServer, SHARED_IMAGES, startServer } from "../helpers/server.ts";

const GPS_NAME = "dog-gps-exif.jpg";
const GPS_PHOTO = readFileSync(join(SHARED_IMAGES, GPS_NAME));

const idsOf = (res: ApiResponse) => res.body.items.map((item: { id: string }) => item.id);

function assertError(res: ApiResponse, status: number, type?: string): void {
	assert.equal(res.status, status, JSON.stringify(res.body));
	assert.equal(res.body?.code, status, "a JSON error body");
	if (type) assert.equal(res.body.type, type);
}

function togetherSuite(backend: () => Promise<{ env: Record<string, string>; stop(): Promise<void> }>): void {
	let server: RunningServer;
	let stopBackend: () => Promise<void>;
	let anon: Client;
	let admin: Client;
	let alice: Client;
	let bob: Client;
	let bobId: string;

	before(async () => {
		const started = await backend();
		stopBackend = started.stop;
		server = await startServer(started.env);
		anon = new Client(server.url);
		admin = await anon.login("admin", ADMIN_PASSWORD);
		alice = await anon.register("alice");
		bob = await anon.register("bob");
		bobId = (await bob.get("/api/auth/me")).body.id;
	});
	after(async () => {
		await server?.stop();
		await stopBackend?.();
	});

	async function upload(client: Client, name = GPS_NAME): Promise<string> {
		const res = await client.upload([fileFrom(join(SHARED_IMAGES, name))]);
		assert.equal(res.status, 201, JSON.stringify(res.body));
		const id = res.body.images[0].id;
		await settled(client, id);
		return id;
	}

	async function albumWith(owner: Client, ids: string[], viewer?: string): Promise<string> {
		const created = await owner.post("/api/albums", { name: "Together" });
		assert.equal(created.status, 201, JSON.stringify(created.body));
		const album = created.body.album.id;
		// One call per image: the last one added is the cover.
		for (const id of ids) assert.equal((await owner.post(`/api/albums/${album}/images`, { ids: [id] })).status, 200);
		if (viewer) assert.equal((await owner.post(`/api/albums/${album}/members`, { username: viewer, role: "viewer" })).status, 201);
		return album;
	}

	async function share(owner: Client, body: Record<string, unknown>): Promise<{ id: string; url: string }> {
		const res = await owner.post("/api/shares", body);
		assert.equal(res.status, 201, JSON.stringify(res.body));
		return res.body.share;
	}

	it("serves an album viewer as a guest: the stripped copy, presets only, no uploaded name; the owner keeps the original", async () => {
		const photo = await upload(alice);
		const album = await albumWith(alice, [photo], "bob");

		const seen = await bob.download(`/api/images/${photo}/content`);
		assert.equal(seen.status, 200);
		assert.equal((await sharp(seen.bytes).metadata()).exif, undefined, "no EXIF for a viewer");
		assert.equal(seen.bytes.indexOf("GPS"), -1);
		assert.match(seen.headers.get("content-disposition")!, new RegExp(`filename\\*=UTF-8''${photo}\\.jpg$`));
		const json = (await bob.get(`/api/images/${photo}`)).body;
		assert.deepEqual([json.filename, json.metadata.cameraMake, json.metadata.takenAt], [`${photo}.jpg`, null, null]);
		assert.equal((await bob.get(`/api/albums/${album}/images`)).body.items[0].filename, `${photo}.jpg`, "nor on the album's page");

		assertError(await bob.get(`/api/images/${photo}/content?w=100`), 403, "TRANSFORM_NOT_ALLOWED");
		assert.equal((await bob.download(`/api/images/${photo}/content?preset=thumb`)).status, 200);

		const own = await alice.download(`/api/images/${photo}/content`);
		assert.ok(own.bytes.equals(GPS_PHOTO), "the owner gets the byte-exact original");
		assert.match(own.headers.get("content-disposition")!, /dog-gps-exif\.jpg$/);
		assert.equal((await alice.get(`/api/albums/${album}/images`)).body.items[0].filename, GPS_NAME);
	});

	it("revalidates every answer to an album viewer, so a removed member is shut out at the next request, bytes too", async () => {
		const photo = await upload(alice);
		const album = await albumWith(alice, [photo], "bob");
		const paths = [`/api/images/${photo}/content`, `/api/images/${photo}/content?preset=small`, `/api/images/${photo}/thumbnail`];
		const cached = new Map<string, string>();
		for (const path of paths) {
			const res = await bob.download(path);
			assert.equal(res.status, 200, path);
			assert.equal(res.headers.get("cache-control"), "private, no-cache", `${path}: no copy kept without asking again`);
			cached.set(path, res.headers.get("etag")!);
			assert.equal((await bob.download(path, { "if-none-match": cached.get(path)! })).status, 304, "a member's revalidation is cheap");
		}
		assert.equal((await alice.download(paths[0]!)).headers.get("cache-control"), "private, max-age=3600", "the owner's own copy may be kept");

		assert.equal((await alice.delete(`/api/albums/${album}/members/${bobId}`)).status, 204);
		for (const path of paths) assertError(await bob.get(path, { "if-none-match": cached.get(path)! }), 404);
	});

	it("hides a trashed image from its albums, counts, covers, album: searches, share links and viewers; a restore brings it all back", async () => {
		const kept = await upload(alice, "mug-cc0.jpeg");
		const trashed = await upload(alice);
		const album = await albumWith(alice, [kept, trashed], "bob");
		const albumLink = await share(alice, { albumId: album });
		const imageLink = await share(alice, { imageId: trashed });
		const search = `/api/images?q=${encodeURIComponent(`album:${album}`)}`;
		const summaryOf = async (client: Client) => {
			const listed = (await client.get("/api/albums")).body.items.find((item: { id: string }) => item.id === album);
			const read = (await client.get(`/api/albums/${album}`)).body.album;
			return { listed: [listed.imageCount, listed.cover], read: [read.imageCount, read.cover] };
		};
		const everything = async () => ({
			summaries: [await summaryOf(alice), await summaryOf(bob)],
			pages: [idsOf(await alice.get(`/api/albums/${album}/images`)), idsOf(await bob.get(`/api/albums/${album}/images`)), idsOf(await anon.get(albumLink.url))],
			searches: [idsOf(await alice.get(search)), idsOf(await bob.get(search))],
			statuses: [
				(await anon.get(imageLink.url)).status,
				(await anon.download(`${imageLink.url}/content`)).status,
				(await anon.download(`${albumLink.url}/images/${trashed}/content`)).status,
				(await bob.get(`/api/images/${trashed}`)).status,
				(await bob.download(`/api/images/${trashed}/content`)).status
			]
		});
		const shown = {
			summaries: Array(2).fill({ listed: [2, trashed], read: [2, trashed] }),
			pages: Array(3).fill([trashed, kept]),
			searches: Array(2).fill([trashed, kept]),
			statuses: [200, 200, 200, 200, 200]
		};
		assert.deepEqual(await everything(), shown);

		assert.equal((await alice.delete(`/api/images/${trashed}`)).status, 204);
		const hidden = {
			summaries: Array(2).fill({ listed: [1, kept], read: [1, kept] }),
			pages: Array(3).fill([kept]),
			searches: Array(2).fill([kept]),
			statuses: [404, 404, 404, 404, 404]
		};
		assert.deepEqual(await waitFor("the album to leave the trashed image out", async () => {
			const now = await everything();
			return JSON.stringify(now) === JSON.stringify(hidden) ? now : undefined;
		}), hidden);

		assert.equal((await alice.post(`/api/trash/${trashed}/restore`)).status, 200);
		assert.deepEqual(await waitFor("the restore to bring it all back", async () => {
			const now = await everything();
			return JSON.stringify(now) === JSON.stringify(shown) ? now : undefined;
		}), shown);

		assert.equal((await alice.delete(`/api/images/${trashed}`)).status, 204);
		assert.equal((await alice.delete(`/api/trash/${trashed}`)).status, 204);
		await waitFor("the purged image's link to go", async () => ((await alice.get(`/api/shares/${imageLink.id}`)).status === 404 ? true : undefined));
		assert.ok(!idsOf(await alice.get("/api/shares")).includes(imageLink.id));
		assert.deepEqual(await summaryOf(alice), { listed: [1, kept], read: [1, kept] });
		assert.deepEqual(idsOf(await anon.get(albumLink.url)), [kept], "the album's link stays, without it");
		assert.equal((await alice.request("DELETE", `/api/albums/${album}/images`, { ids: [trashed] })).body.removed, 0, "no longer in the album");
	});

	it("deletes an account's albums, memberships, links and trash, and leaves other people's images in its albums alone", async () => {
		const dave = await anon.register("dave");
		const carol = await anon.register("carol");
		const daves = await upload(dave, "mug-cc0.jpeg");
		const binned = await upload(dave, "mug-cc0.jpeg");
		const carols = await upload(carol, "mug-cc0.jpeg");
		const album = await albumWith(dave, [daves], "bob");
		assert.equal((await dave.post(`/api/albums/${album}/members`, { username: "carol", role: "contributor" })).status, 201);
		assert.equal((await carol.post(`/api/albums/${album}/images`, { ids: [carols] })).body.added, 1);
		const link = await share(dave, { albumId: album });
		const alices = await albumWith(alice, [], "dave");
		assert.equal((await dave.delete(`/api/images/${binned}`)).status, 204);

		assert.equal((await dave.delete("/api/auth/me")).status, 204);
		await waitFor("dave's albums, memberships and links to go", async () => {
			const members = (await alice.get(`/api/albums/${alices}`)).body.members;
			const gone = (await carol.get(`/api/albums/${album}`)).status === 404 && (await anon.get(link.url)).status === 404;
			return gone && members.length === 0 ? true : undefined;
		});
		assertError(await bob.get(`/api/albums/${album}`), 404);
		assertError(await admin.get(`/api/albums/${album}`), 404);
		assertError(await anon.get(`${link.url}/images/${carols}/content`), 404);
		assert.ok(!idsOf(await admin.get("/api/trash?limit=100")).includes(binned), "its trash was purged");
		assertError(await admin.get(`/api/images/${daves}`), 404);
		assert.equal((await carol.get(`/api/images/${carols}`)).status, 200, "carol's image stays");
		assert.equal((await carol.download(`/api/images/${carols}/content`)).status, 200);
	});
}

describe("sharing together on SQLite and files", () => {
	togetherSuite(async () => ({ env: {}, stop: async () => undefined }));
});

describe("sharing together on MongoDB and GridFS (FerretDB)", { skip: ferretDbSkipReason() }, () => {
	togetherSuite(async () => {
		const mongo: FerretDb = await startFerretDb();
		return { env: { MONGO_URL: mongo.databaseUrl(), STORAGE: "gridfs" }, stop: () => mongo.stop() };
	});
});
