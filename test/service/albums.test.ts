/**
 * Albums over REST on both metadata backends (SQLite, and MongoDB through FerretDB): owners,
 * viewers and contributors, every read path a membership opens and the ones it does not, the
 * hostile cases (a stranger, a viewer trying to edit, a contributor removing someone else's
 * image, a removed member), and the clean-ups when an image or an account goes.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { Client, fileFrom, type ApiResponse } from "../helpers/client.ts";
import { describeOnFerretDb } from "../helpers/ferretdb.ts";
import { cameraJpeg, settled, waitFor } from "../helpers/jobs.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const dog = () => fileFrom(join(SHARED_IMAGES, "dog.jpg"));

/** A JSON error with this status (and type, when given). */
function assertError(res: ApiResponse, status: number, type?: string): void {
	assert.equal(res.status, status, JSON.stringify(res.body));
	assert.equal(res.body?.code, status, "a JSON error body");
	if (type) assert.equal(res.body.type, type);
}

async function uploadOne(client: Client, fields: Record<string, string> = {}): Promise<string> {
	const res = await client.upload([dog()], fields);
	assert.equal(res.status, 201, JSON.stringify(res.body));
	return res.body.images[0].id;
}

const idsOf = (res: ApiResponse) => res.body.items.map((item: { id: string }) => item.id);

function albumSuite(start: () => Promise<RunningServer>): void {
	let server: RunningServer;
	let anon: Client;
	let admin: Client;
	let alice: Client;
	let bob: Client;
	let carol: Client;
	let bobId: string;

	before(async () => {
		server = await start();
		anon = new Client(server.url);
		admin = await anon.login("admin", ADMIN_PASSWORD);
		alice = await anon.register("alice");
		bob = await anon.register("bob");
		carol = await anon.register("carol");
		bobId = (await bob.get("/api/auth/me")).body.id;
	});
	after(() => server?.stop());

	async function newAlbum(owner: Client, name = "Holidays"): Promise<string> {
		const res = await owner.post("/api/albums", { name });
		assert.equal(res.status, 201, JSON.stringify(res.body));
		return res.body.album.id;
	}

	it("creates, lists, reads, renames and deletes an album; to anyone else it does not exist", async () => {
		const created = await alice.post("/api/albums", { name: " Holidays ", description: "Summer" });
		assert.equal(created.status, 201, JSON.stringify(created.body));
		const album = created.body.album;
		assert.equal(created.headers.get("location"), `/api/albums/${album.id}`);
		assert.deepEqual([album.name, album.description, album.ownerName, album.role, album.imageCount, album.cover], ["Holidays", "Summer", "alice", "owner", 0, null]);

		assertError(await alice.post("/api/albums", { name: "" }), 400);
		assertError(await alice.post("/api/albums", { name: "x", owner: "someone" }), 400);
		assertError(await anon.post("/api/albums", { name: "x" }), 401);

		assert.ok(idsOf(await alice.get("/api/albums")).includes(album.id));
		assert.ok(!idsOf(await bob.get("/api/albums")).includes(album.id));
		assert.equal((await alice.get(`/api/albums/${album.id}`)).body.album.name, "Holidays");
		assertError(await bob.get(`/api/albums/${album.id}`), 404);
		assertError(await anon.get(`/api/albums/${album.id}`), 401);
		assertError(await bob.get("/api/albums/no-such-album"), 404);
		assert.equal((await admin.get(`/api/albums/${album.id}`)).body.album.role, "owner", "admins act as owners");

		const renamed = await alice.patch(`/api/albums/${album.id}`, { name: "Summer 2026" });
		assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
		assert.equal(renamed.body.album.name, "Summer 2026");
		assert.equal(renamed.body.album.description, "Summer");
		assertError(await bob.patch(`/api/albums/${album.id}`, { name: "Mine now" }), 404);

		assertError(await bob.delete(`/api/albums/${album.id}`), 404);
		assert.equal((await alice.delete(`/api/albums/${album.id}`)).status, 204);
		assertError(await alice.get(`/api/albums/${album.id}`), 404);
		assertError(await alice.delete(`/api/albums/${album.id}`), 404);
	});

	it("adds the caller's own images once, at most 1,000 a call, removes them idempotently, and pages them newest first", async () => {
		const album = await newAlbum(alice);
		const [a, b, c] = [await uploadOne(alice), await uploadOne(alice), await uploadOne(alice)];
		const bobsPublic = await uploadOne(bob, { visibility: "public" });

		// One call each: images added in one call share their time added, and then sort by id.
		const added = await alice.post(`/api/albums/${album}/images`, { ids: [a] });
		assert.equal(added.status, 200, JSON.stringify(added.body));
		assert.equal(added.body.added, 1);
		assert.equal((await alice.post(`/api/albums/${album}/images`, { ids: [b] })).body.added, 1);
		assert.equal((await alice.post(`/api/albums/${album}/images`, { ids: [a, b, c, c] })).body.added, 1, "only c was new");
		assertError(await alice.post(`/api/albums/${album}/images`, { ids: [bobsPublic] }), 404);
		assertError(await alice.post(`/api/albums/${album}/images`, { ids: ["no-such-image"] }), 404);
		assertError(await alice.post(`/api/albums/${album}/images`, { ids: [] }), 400);
		assertError(await alice.post(`/api/albums/${album}/images`, { ids: Array.from({ length: 1001 }, (_, i) => `id${i}`) }), 400);
		assertError(await alice.delete(`/api/albums/${album}/images`), 400);

		const first = await alice.get(`/api/albums/${album}/images?limit=2`);
		assert.equal(first.status, 200, JSON.stringify(first.body));
		assert.deepEqual(idsOf(first), [c, b]);
		assert.equal(first.body.items[0].blob, undefined, "answered as public images");
		const second = await alice.get(`/api/albums/${album}/images?limit=2&cursor=${first.body.nextCursor}`);
		assert.deepEqual([idsOf(second), second.body.nextCursor], [[a], null]);
		assert.deepEqual(idsOf(await alice.get(`/api/albums/${album}/images?sort=addedAt`)), [a, b, c]);
		assert.equal((await alice.get(`/api/albums/${album}/images?sort=-takenAt`)).body.items.length, 3);
		assertError(await alice.get(`/api/albums/${album}/images?sort=bogus`), 400);
		assertError(await alice.get(`/api/albums/${album}/images?cursor=garbage`), 400);

		const listed = (await alice.get("/api/albums")).body.items.find((item: { id: string }) => item.id === album);
		assert.deepEqual([listed.imageCount, listed.cover], [3, c]);

		const removed = await alice.request("DELETE", `/api/albums/${album}/images`, { ids: [b, "not-in-it"] });
		assert.equal(removed.status, 200, JSON.stringify(removed.body));
		assert.equal(removed.body.removed, 1);
		assert.equal((await alice.request("DELETE", `/api/albums/${album}/images`, { ids: [b] })).body.removed, 0);
		assert.deepEqual(idsOf(await alice.get(`/api/albums/${album}/images`)), [c, a]);

		assert.equal((await alice.delete(`/api/albums/${album}`)).status, 204);
		for (const id of [a, b, c]) assert.equal((await alice.get(`/api/images/${id}`)).status, 200, "deleting an album never deletes images");
	});

	it("lets a viewer see the album's images, private ones too, on every read path and nothing else; a viewer cannot edit", async () => {
		const album = await newAlbum(alice);
		const [inside, outside] = [await uploadOne(alice, { description: "harbour" }), await uploadOne(alice, { description: "harbour" })];
		const bobsOwn = await uploadOne(bob);
		await alice.post(`/api/albums/${album}/images`, { ids: [inside] });

		assertError(await alice.post(`/api/albums/${album}/members`, { username: "nobody-here", role: "viewer" }), 404);
		assertError(await alice.post(`/api/albums/${album}/members`, { username: "bob", role: "owner" }), 400);
		assertError(await alice.post(`/api/albums/${album}/members`, { username: "alice", role: "viewer" }), 400);
		const joined = await alice.post(`/api/albums/${album}/members`, { username: "bob", role: "viewer" });
		assert.equal(joined.status, 201, JSON.stringify(joined.body));
		assert.deepEqual([joined.body.member.userId, joined.body.member.username, joined.body.member.role], [bobId, "bob", "viewer"]);
		assert.equal((await alice.post(`/api/albums/${album}/members`, { username: "bob", role: "viewer" })).status, 200, "idempotent");
		assert.deepEqual((await alice.get(`/api/albums/${album}`)).body.members.map((m: { username: string }) => m.username), ["bob"]);

		const shared = (await bob.get("/api/albums")).body.items.find((item: { id: string }) => item.id === album);
		assert.deepEqual([shared.role, shared.imageCount, shared.ownerName], ["viewer", 1, "alice"]);
		const seen = await bob.get(`/api/albums/${album}`);
		assert.equal(seen.body.album.role, "viewer");
		assert.equal(seen.body.members, undefined, "only the owner sees the members");
		assert.deepEqual(idsOf(await bob.get(`/api/albums/${album}/images`)), [inside]);

		assert.equal((await bob.get(`/api/images/${inside}`)).status, 200);
		assert.equal((await bob.download(`/api/images/${inside}/content`)).status, 200);
		assert.equal((await bob.download(`/api/images/${inside}/content?w=64`)).status !== 404, true);
		assertError(await bob.get(`/api/images/${outside}`), 404);
		assert.equal((await bob.download(`/api/images/${outside}/content`)).status, 404);
		assertError(await bob.patch(`/api/images/${inside}`, { name: "mine" }), 404);
		assertError(await bob.delete(`/api/images/${inside}`), 404);

		assert.deepEqual(idsOf(await bob.get(`/api/images?q=${encodeURIComponent(`album:${album}`)}`)), [inside]);
		assert.deepEqual(idsOf(await bob.get(`/api/images?q=${encodeURIComponent(`album:${album} harbour`)}`)), [inside]);
		assert.deepEqual(idsOf(await bob.get(`/api/images?q=harbour`)), [], "the owner's other images stay hidden");
		assertError(await carol.get(`/api/images?q=${encodeURIComponent(`album:${album}`)}`), 404);
		assertError(await anon.get(`/api/images?q=${encodeURIComponent(`album:${album}`)}`), 404);
		assertError(await anon.get(`/api/images/${inside}`), 404);

		assertError(await bob.post(`/api/albums/${album}/images`, { ids: [bobsOwn] }), 403, "FORBIDDEN");
		assertError(await bob.request("DELETE", `/api/albums/${album}/images`, { ids: [inside] }), 403);
		assertError(await bob.patch(`/api/albums/${album}`, { name: "Bob's" }), 403);
		assertError(await bob.delete(`/api/albums/${album}`), 403);
		assertError(await bob.post(`/api/albums/${album}/members`, { username: "carol", role: "viewer" }), 403);

		assert.equal((await alice.delete(`/api/albums/${album}/members/${bobId}`)).status, 204);
		assert.equal((await alice.delete(`/api/albums/${album}/members/${bobId}`)).status, 204, "idempotent");
		assertError(await bob.get(`/api/images/${inside}`), 404);
		assert.equal((await bob.download(`/api/images/${inside}/content`)).status, 404, "a removed member sees nothing at once");
		assertError(await bob.get(`/api/albums/${album}`), 404);
		assertError(await bob.get(`/api/images?q=${encodeURIComponent(`album:${album}`)}`), 404);
	});

	it("lets a contributor add and remove their own images only, and a member leave", async () => {
		const album = await newAlbum(alice);
		const alices = await uploadOne(alice);
		const carols = await uploadOne(carol);
		await alice.post(`/api/albums/${album}/images`, { ids: [alices] });
		const carolId = (await carol.get("/api/auth/me")).body.id;
		assert.equal((await alice.post(`/api/albums/${album}/members`, { username: "carol", role: "contributor" })).status, 201);

		assert.equal((await carol.post(`/api/albums/${album}/images`, { ids: [carols] })).body.added, 1);
		assertError(await carol.post(`/api/albums/${album}/images`, { ids: [alices] }), 404, undefined);
		assertError(await carol.request("DELETE", `/api/albums/${album}/images`, { ids: [alices] }), 403);
		assert.deepEqual(idsOf(await alice.get(`/api/albums/${album}/images`)), [carols, alices]);
		assert.equal((await alice.get(`/api/images/${carols}`)).status, 200, "the owner sees what contributors added");
		assert.equal((await carol.request("DELETE", `/api/albums/${album}/images`, { ids: [carols] })).body.removed, 1);
		assertError(await carol.patch(`/api/albums/${album}`, { name: "x" }), 403);

		await carol.post(`/api/albums/${album}/images`, { ids: [carols] });
		assert.equal((await alice.request("DELETE", `/api/albums/${album}/images`, { ids: [carols] })).body.removed, 1, "the owner removes anyone's");
		assert.equal((await carol.delete(`/api/albums/${album}/members/${carolId}`)).status, 204, "a member may leave");
		assertError(await carol.get(`/api/albums/${album}`), 404);
	});

	it("sorts by when a photo was taken, read by the pipeline after the image was added", async () => {
		const album = await newAlbum(alice);
		// No EXIF: sorts by its upload time, earlier than the camera photo's upload but later than its date taken.
		const plainPng = await sharp({ create: { width: 32, height: 32, channels: 3, background: "#336699" } }).png().toBuffer();
		const plain = (await alice.upload([{ name: "plain.png", bytes: plainPng }])).body.images[0].id;
		const camera = (await alice.upload([{ name: "camera.jpg", bytes: await cameraJpeg(64, 48) }])).body.images[0].id;
		await alice.post(`/api/albums/${album}/images`, { ids: [plain, camera] });
		assert.equal((await settled(alice, camera)).metadata.takenAt, "2023-04-05T06:07:08");
		await waitFor("the album to sort the camera photo by its date taken", async () => {
			const ids = idsOf(await alice.get(`/api/albums/${album}/images?sort=takenAt`));
			return ids[0] === camera ? ids : undefined;
		});
		assert.deepEqual(idsOf(await alice.get(`/api/albums/${album}/images?sort=-takenAt`)), [plain, camera]);
	});

	it("drops a deleted image from its albums, and a deleted account's albums and memberships", async () => {
		const album = await newAlbum(alice);
		const [kept, gone] = [await uploadOne(alice), await uploadOne(alice)];
		await alice.post(`/api/albums/${album}/images`, { ids: [kept, gone] });
		assert.equal((await alice.delete(`/api/images/${gone}`)).status, 204);
		assert.deepEqual(idsOf(await alice.get(`/api/albums/${album}/images`)), [kept]);

		const dave = await anon.register("dave");
		const daves = await newAlbum(dave, "Dave's");
		await dave.post(`/api/albums/${daves}/members`, { username: "alice", role: "viewer" });
		await alice.post(`/api/albums/${album}/members`, { username: "dave", role: "contributor" });
		assert.ok(idsOf(await alice.get("/api/albums")).includes(daves));
		assert.equal((await dave.delete("/api/auth/me")).status, 204);
		await waitFor("dave's album and membership to go", async () => {
			const listed = idsOf(await alice.get("/api/albums")).includes(daves);
			const members = (await alice.get(`/api/albums/${album}`)).body.members;
			return !listed && members.length === 0 ? true : undefined;
		});
		assertError(await admin.get(`/api/albums/${daves}`), 404);
	});
}

describe("albums on SQLite", () => {
	albumSuite(() => startServer());
});

describeOnFerretDb("albums on MongoDB (FerretDB)", ferret => {
	albumSuite(() => startServer({ MONGO_URL: ferret().databaseUrl(), MONGO_TIMEOUT_MS: "2000", JWT_SECRET: randomBytes(32).toString("hex") }));
});

describe("a node without the albums service", () => {
	let server: RunningServer;
	before(async () => {
		server = await startServer({ SERVICES: "api,users,images,categories,storage,health,worker" });
	});
	after(() => server?.stop());

	it("keeps other people's private images hidden (404, not 503), and answers album: searches 503", async () => {
		const anon = new Client(server.url);
		const [alice, bob] = [await anon.register("alice"), await anon.register("bob")];
		const id = await uploadOne(alice);
		assertError(await bob.get(`/api/images/${id}`), 404);
		assert.equal((await alice.get(`/api/images/${id}`)).status, 200);
		assertError(await bob.get(`/api/images?q=${encodeURIComponent("album:x")}`), 503);
	});
});
