/**
 * The image flow of a real user over REST, on the real photos in ../shared/images: upload,
 * list, search, view, download (plain and encrypted), share publicly, edit, delete.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client, fileFrom } from "../helpers/client.ts";
import { findFilesContaining, waitFor } from "../helpers/jobs.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const PHOTOS = readdirSync(SHARED_IMAGES).filter(name => /\.(jpe?g|png)$/i.test(name));
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The image's view count once it reached `expected` (batches are written a second apart), or what it is after 3 s. */
async function viewsOnceWritten(owner: Client, id: string, expected: number): Promise<number> {
	const read = async () => (await owner.get(`/api/images/${id}`)).body.views as number;
	return waitFor(`${expected} views of ${id}`, async () => ((await read()) >= expected ? read() : undefined), 3000).catch(read);
}

describe("images", () => {
	let server: RunningServer;
	let anon: Client;
	let admin: Client;
	let alice: Client;
	let bob: Client;
	const ids: Record<string, string> = {};

	before(async () => {
		server = await startServer();
		anon = new Client(server.url);
		admin = await anon.login("admin", ADMIN_PASSWORD);
		alice = await anon.register("alice");
		bob = await anon.register("bob");
		assert.equal((await admin.post("/api/categories", { name: "Animals", description: "Furry and feathered" })).status, 201);
		assert.equal((await admin.post("/api/categories", { name: "Things" })).status, 201);
	});
	after(() => server.stop());

	it("uploads every shared photo in one multipart request", async () => {
		assert.ok(PHOTOS.length >= 6, "the shared photos are there");
		const res = await alice.upload(
			PHOTOS.map(name => fileFrom(join(SHARED_IMAGES, name))),
			{ category: "animals", tags: "Photo, Test", description: "From the shared set #sample #CC0" }
		);
		assert.equal(res.status, 201, JSON.stringify(res.body));
		assert.equal(res.body.images.length, PHOTOS.length);
		for (const image of res.body.images) {
			ids[image.filename] = image.id;
			const bytes = readFileSync(join(SHARED_IMAGES, image.filename));
			assert.equal(image.size, bytes.length);
			assert.equal(image.sha256, sha256(bytes));
			assert.equal(image.visibility, "private");
			// Processed in the background (test/service/pipeline.test.ts follows it to ready).
			assert.equal(image.status, "processing");
			assert.equal(image.category, "animals");
			assert.equal(image.blob, undefined, "the storage key stays internal");
			assert.ok(image.width > 0 && image.height > 0);
			assert.deepEqual(
				image.tags.map((tag: { label: string; source: string }) => `${tag.source}:${tag.label}`).sort(),
				["hashtag:cc0", "hashtag:sample", "user:photo", "user:test"]
			);
		}
		const dog = res.body.images.find((image: { filename: string }) => image.filename === "dog.jpg");
		assert.equal(dog.format, "jpeg");
		assert.equal(dog.contentType, "image/jpeg");
		assert.equal(dog.width, 1080);
		assert.equal(dog.name, "dog");
		const chelsea = res.body.images.find((image: { filename: string }) => image.filename === "chelsea.png");
		assert.equal(chelsea.format, "png");
	});

	it("lists the owner's images newest first, with cursor pages", async () => {
		const first = await alice.get("/api/images?limit=4");
		assert.equal(first.status, 200);
		assert.equal(first.body.total, PHOTOS.length);
		assert.equal(first.body.totalIsEstimate, false, "a total this small is exact");
		assert.equal(first.body.items.length, 4);
		assert.ok(first.body.nextCursor);
		const second = await alice.get(`/api/images?limit=4&cursor=${encodeURIComponent(first.body.nextCursor)}`);
		const seen = [...first.body.items, ...second.body.items].map((image: { id: string }) => image.id);
		assert.equal(new Set(seen).size, PHOTOS.length);
		assert.equal(second.body.nextCursor, null);
	});

	it("hides private images from others (404, not 403) and from anonymous lists", async () => {
		const id = ids["dog.jpg"]!;
		assert.equal((await bob.get(`/api/images/${id}`)).status, 404);
		assert.equal((await bob.get(`/api/images/${id}/content`)).status, 404);
		assert.equal((await anon.get(`/api/images/${id}`)).status, 404);
		assert.equal((await anon.get("/api/images")).body.total, 0);
		assert.equal((await bob.get("/api/images")).body.total, 0);
		assert.equal((await admin.get(`/api/images/${id}`)).status, 200);
	});

	it("searches by hashtag, tag, category, words and date", async () => {
		const search = async (q: string) => (await alice.get(`/api/images?q=${encodeURIComponent(q)}`)).body;
		assert.equal((await search("tag:sample")).total, PHOTOS.length);
		assert.equal((await search("category:animals")).total, PHOTOS.length);
		assert.equal((await search("category:things")).total, 0);
		assert.equal((await search("hummingbird")).total, 1);
		assert.equal((await search("humm")).total, 1, "the last word is a prefix");
		assert.equal((await search("kitten tag:photo")).total, 1);
		assert.equal((await search(`date:${new Date().getUTCFullYear()}`)).total, PHOTOS.length);
		assert.equal((await search("date:1999")).total, 0);
		assert.equal((await search('"shared set"')).total, PHOTOS.length);
		assert.equal((await alice.get("/api/images?tag=cc0")).body.total, PHOTOS.length);
		assert.equal((await alice.get("/api/images?owner=alice&category=animals")).body.total, PHOTOS.length);
		const invalid = await alice.get(`/api/images?q=${encodeURIComponent("date:31-02-2024")}`);
		assert.equal(invalid.status, 400);
	});

	it("finds multi-word tags as people type them, and searches one field with name:, desc: and tags:", async () => {
		const search = async (q: string) => (await alice.get(`/api/images?q=${encodeURIComponent(q)}`)).body;
		const dog = ids["dog.jpg"]!;
		await alice.patch(`/api/images/${dog}`, { tags: ["golden retriever", "sunny"] });
		const idsOf = (page: { items: { id: string }[] }) => page.items.map(item => item.id);
		assert.deepEqual(idsOf(await search("tag:golden retriever")), [dog], "without quotes");
		assert.deepEqual(idsOf(await search('tag:"golden retriever"')), [dog]);
		assert.deepEqual(idsOf(await search("tags:golden retriever")), [dog]);
		assert.deepEqual(idsOf(await search("tag:golden retriever tag:sunny")), [dog]);
		assert.equal((await search("name:hummingbird")).total, 1, "hummingbird.jpg is named hummingbird");
		assert.equal((await search("desc:hummingbird")).total, 0, "no description says hummingbird");
		assert.equal((await search('desc:"shared set"')).total, PHOTOS.length);
	});

	it("serves the original bytes with ETag, 304 and ranges, counting views of others", async () => {
		const id = ids["mug-cc0.jpeg"]!;
		const original = readFileSync(join(SHARED_IMAGES, "mug-cc0.jpeg"));
		await alice.patch(`/api/images/${id}`, { visibility: "public" });

		const full = await bob.download(`/api/images/${id}/content`);
		assert.equal(full.status, 200);
		assert.ok(full.bytes.equals(original));
		assert.equal(full.headers.get("content-type"), "image/jpeg");
		assert.equal(full.headers.get("content-length"), String(original.length));
		// bob is a guest: the copy without metadata (the same bytes here: the file has none), its own ETag.
		assert.match(full.headers.get("etag")!, /^"[0-9a-f]{64}"$/);
		assert.notEqual(full.headers.get("etag"), `"${sha256(original)}"`);
		assert.equal((await alice.download(`/api/images/${id}/content`, { range: "bytes=0-0" })).headers.get("etag"), `"${sha256(original)}"`, "the owner's is the original's SHA-256");
		assert.match(full.headers.get("cache-control")!, /public/);

		const notModified = await bob.download(`/api/images/${id}/content`, { "if-none-match": full.headers.get("etag")! });
		assert.equal(notModified.status, 304);
		assert.equal(notModified.bytes.length, 0);

		const range = await bob.download(`/api/images/${id}/content`, { range: "bytes=100-199" });
		assert.equal(range.status, 206);
		assert.equal(range.headers.get("content-range"), `bytes 100-199/${original.length}`);
		assert.ok(range.bytes.equals(original.subarray(100, 200)));

		const suffix = await bob.download(`/api/images/${id}/content`, { range: "bytes=-10" });
		assert.ok(suffix.bytes.equals(original.subarray(-10)));
		assert.equal((await bob.download(`/api/images/${id}/content`, { range: `bytes=${original.length}-` })).status, 416);

		// Own views do not count; bob's full, 304 and suffix... only the ones starting at 0 count.
		await alice.download(`/api/images/${id}/content`);
		// Views are written in batches, a second apart (docs/api.md).
		const views = await viewsOnceWritten(alice, id, 2);
		assert.equal(views, 2, "bob's 200 and 304 count; ranges not starting at 0 and the owner's views do not");
	});

	it("counts 1,000 parallel views exactly", async () => {
		const id = ids["binoculars-cc0.jpeg"]!;
		await alice.patch(`/api/images/${id}`, { visibility: "public" });
		const statuses = await Promise.all(
			Array.from({ length: 1000 }, async () => {
				const res = await fetch(`${server.url}/api/images/${id}/content`, { headers: { "if-none-match": "\"x\"" } });
				await res.arrayBuffer();
				return res.status;
			})
		);
		assert.ok(statuses.every(status => status === 200));
		assert.equal(await viewsOnceWritten(alice, id, 1000), 1000);
	});

	it("shares public images at /p/:id without a token; private ones are 404", async () => {
		const publicId = ids["mug-cc0.jpeg"]!;
		const shared = await anon.download(`/p/${publicId}`);
		assert.equal(shared.status, 200);
		assert.ok(shared.bytes.equals(readFileSync(join(SHARED_IMAGES, "mug-cc0.jpeg"))));
		const privateId = ids["dog.jpg"]!;
		const hidden = await anon.get(`/p/${privateId}`);
		assert.equal(hidden.status, 404);
		assert.equal(hidden.body.code, 404);
		assert.equal((await anon.get("/p/does-not-exist")).status, 404);
		assert.equal((await anon.get("/api/images")).body.total, 2, "anonymous lists show public images");
	});

	it("stores an encrypted upload that downloads intact, never in plaintext on disk", async () => {
		const bytes = readFileSync(join(SHARED_IMAGES, "dog.jpg"));
		const res = await bob.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { encrypted: "true", name: "Secret dog" });
		assert.equal(res.status, 201, JSON.stringify(res.body));
		const image = res.body.images[0];
		assert.equal(image.encrypted, true);
		assert.equal(image.sha256, sha256(bytes));
		const download = await bob.download(`/api/images/${image.id}/content`);
		assert.equal(download.status, 200);
		assert.ok(download.bytes.equals(bytes));
		const part = await bob.download(`/api/images/${image.id}/content`, { range: "bytes=70000-140000" });
		assert.ok(part.bytes.equals(bytes.subarray(70000, 140001)));
		assert.equal(findFilesContaining(join(server.dataDir, "blobs"), bytes.subarray(1000, 1064)).length, 1, "only alice's plain copy holds these bytes");
	});

	it("stores identical plain bytes once, and keeps them until the last reference goes", async () => {
		const bytes = readFileSync(join(SHARED_IMAGES, "hummingbird.jpg"));
		const copy = (await bob.upload([fileFrom(join(SHARED_IMAGES, "hummingbird.jpg"))])).body.images[0];
		assert.equal(findFilesContaining(join(server.dataDir, "blobs"), bytes.subarray(2000, 2064)).length, 1);
		// Deleting moves to the trash; purging it (test/service/trash.test.ts) releases the bytes.
		assert.equal((await alice.delete(`/api/images/${ids["hummingbird.jpg"]}`)).status, 204);
		assert.equal((await alice.delete(`/api/trash/${ids["hummingbird.jpg"]}`)).status, 204);
		assert.equal((await alice.get(`/api/images/${ids["hummingbird.jpg"]}`)).status, 404);
		const still = await bob.download(`/api/images/${copy.id}/content`);
		assert.ok(still.bytes.equals(bytes));
		assert.equal((await bob.delete(`/api/images/${copy.id}`)).status, 204);
		assert.equal((await bob.delete(`/api/trash/${copy.id}`)).status, 204);
		assert.equal(findFilesContaining(join(server.dataDir, "blobs"), bytes.subarray(2000, 2064)).length, 0);
	});

	it("lets only the owner or an admin edit and delete", async () => {
		const id = ids["mug-cc0.jpeg"]!;
		assert.equal((await bob.patch(`/api/images/${id}`, { name: "mine now" })).status, 404);
		assert.equal((await bob.delete(`/api/images/${id}`)).status, 404);
		const edited = await alice.patch(`/api/images/${id}`, { name: "Coffee mug", description: "Morning #coffee", tags: ["kitchen"], category: "things" });
		assert.equal(edited.status, 200);
		assert.equal(edited.body.name, "Coffee mug");
		assert.equal(edited.body.category, "things");
		assert.deepEqual(edited.body.tags.map((tag: { label: string }) => tag.label).sort(), ["coffee", "kitchen"]);
		assert.equal((await admin.patch(`/api/images/${id}`, { description: "Checked by an admin" })).status, 200);
		assert.equal((await alice.patch(`/api/images/${id}`, { category: "no-such-category" })).status, 400);
		assert.equal((await alice.patch(`/api/images/${id}`, { owner: "bob" })).status, 400);
		// null for an optional field is "not given" (a null category alone means: none).
		const nulls = await alice.patch(`/api/images/${id}`, { name: null, description: null, tags: null, visibility: null });
		assert.equal(nulls.status, 200, JSON.stringify(nulls.body));
		assert.equal(nulls.body.name, "Coffee mug");
		assert.equal(nulls.body.visibility, edited.body.visibility);
		assert.deepEqual(nulls.body.tags, (await alice.get(`/api/images/${id}`)).body.tags);
		assert.ok(nulls.body.tags.some((tag: { label: string }) => tag.label === "kitchen"));
	});

	it("manages categories: admins only, images listed newest first, deletion clears them", async () => {
		assert.equal((await alice.post("/api/categories", { name: "Mine" })).status, 403);
		assert.equal((await admin.post("/api/categories", { name: "animals" })).status, 409);
		const list = await anon.get("/api/categories");
		assert.deepEqual(list.body.items.map((category: { id: string }) => category.id).sort(), ["animals", "things"]);
		const inAnimals = await alice.get("/api/categories/animals/images");
		assert.equal(inAnimals.status, 200);
		const dates = inAnimals.body.items.map((image: { createdAt: string }) => image.createdAt);
		assert.deepEqual(dates, [...dates].sort().reverse());
		assert.equal((await admin.patch("/api/categories/things", { description: "Objects" })).body.description, "Objects");
		const nulls = await admin.patch("/api/categories/things", { name: null, description: null });
		assert.equal(nulls.status, 200, JSON.stringify(nulls.body));
		assert.equal(nulls.body.description, "Objects");
		assert.equal((await admin.delete("/api/categories/things")).status, 204);
		assert.equal((await alice.get(`/api/images/${ids["mug-cc0.jpeg"]}`)).body.category, null);
		assert.equal((await alice.get("/api/categories/things/images")).status, 404);
	});

	it("reports stats of what the caller may see; site-wide figures to admins only", async () => {
		const visibleTo = async (client: Client) => (await client.get("/api/images?limit=1")).body.total;
		const mine = (await alice.get("/api/stats")).body;
		assert.equal(mine.users, undefined, "how many users there are is for admins");
		assert.equal(mine.images.count, await visibleTo(alice));
		assert.equal(mine.encrypted.count, 0, "bob's encrypted secret dog is not alice's to count");
		assert.ok(mine.byFormat.jpeg.count >= 1);
		assert.ok(mine.byFormat.png.count >= 1);
		assert.ok(mine.totalViews >= 1002);
		assert.ok(mine.topTags.some((tag: { label: string }) => tag.label === "sample"));

		const site = (await admin.get("/api/stats")).body;
		assert.equal(site.users, 3);
		assert.equal(site.images.count, PHOTOS.length); // alice's minus the deleted bird, plus bob's secret dog
		assert.equal(site.images.count, await visibleTo(admin));
		assert.equal(site.encrypted.count, 1);
		assert.equal((await anon.get("/api/stats")).status, 401);
	});

	it("removes a user's images when the account is deleted", async () => {
		const dave = await anon.register("dave");
		const uploaded = (await dave.upload([fileFrom(join(SHARED_IMAGES, "kitten_224.png"))], { visibility: "public" })).body.images[0];
		assert.equal((await dave.delete("/api/auth/me")).status, 204);
		assert.equal((await anon.get(`/api/images/${uploaded.id}`)).status, 404);
	});
});
