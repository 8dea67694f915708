/**
 * The trash over REST, run on each metadata backend (trash.test.ts: SQLite and files;
 * trash-mongo.test.ts: MongoDB and GridFS): DELETE moves an image to the trash, where it is
 * invisible everywhere yet keeps its bytes; restore brings it back exactly; purging (one, all,
 * after TRASH_RETENTION_DAYS, or the account's deletion) releases the bytes as deletion did.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client, fileFrom } from "../helpers/client.ts";
import { ADMIN_PASSWORD, type RunningServer, SHARED_IMAGES, startServer } from "../helpers/server.ts";

export interface TrashBackend {
	/** Extra environment for the node (the metadata and blob backends). */
	env(): Record<string, string>;
	/** How many stored blobs hold these bytes (to see them kept, then released). */
	copiesOf(server: RunningServer, bytes: Buffer): Promise<number>;
}

const ids = (page: { items: { id: string }[] }) => page.items.map(item => item.id);

async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const value = await read();
		if (done(value) || Date.now() > deadline) return value;
		await new Promise(resolve => setTimeout(resolve, 100));
	}
}

export function trashSuite(name: string, backend: TrashBackend, options: { skip?: string | false } = {}): void {
	describe(`trash (${name})`, { skip: options.skip }, () => {
		let server: RunningServer;
		let anon: Client;
		let admin: Client;
		let alice: Client;
		let bob: Client;
		const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));
		const mug = fileFrom(join(SHARED_IMAGES, "mug-cc0.jpeg"));

		before(async () => {
			server = await startServer(backend.env());
			anon = new Client(server.url);
			admin = await anon.login("admin", ADMIN_PASSWORD);
			alice = await anon.register("alice");
			bob = await anon.register("bob");
		});
		after(() => server?.stop());

		async function upload(client: Client, file = dog, fields: Record<string, string> = {}): Promise<{ id: string }> {
			const res = await client.upload([file], fields);
			assert.equal(res.status, 201, JSON.stringify(res.body));
			return res.body.images[0];
		}

		it("moves a deleted image to the trash: 404 on every read path, out of lists, search and stats, bytes kept", async () => {
			const image = await upload(alice, dog, { visibility: "public", description: "Trash #bin" });
			const kept = await upload(alice, mug, { visibility: "public" });
			const before = (await alice.get(`/api/images/${image.id}`)).body;
			assert.equal(before.trashedAt, null);

			assert.equal((await alice.delete(`/api/images/${image.id}`)).status, 204);
			for (const path of [`/api/images/${image.id}`, `/api/images/${image.id}/content`, `/api/images/${image.id}/content?w=50`, `/api/images/${image.id}/thumbnail`]) {
				const res = await alice.get(path);
				assert.equal(res.status, 404, path);
				assert.equal(res.body.code, 404, `${path}: a JSON error`);
			}
			assert.equal((await alice.patch(`/api/images/${image.id}`, { name: "x" })).status, 404);
			assert.equal((await alice.delete(`/api/images/${image.id}`)).status, 404, "already in the trash");
			for (const path of [`/p/${image.id}`, `/p/${image.id}/thumbnail`]) assert.equal((await anon.get(path)).status, 404, path);
			for (const client of [alice, admin, anon]) {
				const page = (await client.get("/api/images")).body;
				assert.ok(!ids(page).includes(image.id));
				assert.ok(ids(page).includes(kept.id));
			}
			assert.deepEqual(ids((await alice.get("/api/images?q=tag:bin")).body), []);
			assert.equal((await alice.get("/api/stats")).body.images.count, 1);
			assert.equal(await backend.copiesOf(server, dog.bytes as Buffer), 1, "the bytes stay while the image is in the trash");
		});

		it("lists my trash (admins: everyone's), most recently trashed first, in keyset pages", async () => {
			const mine = [await upload(alice, dog), await upload(alice, mug), await upload(alice, dog)];
			const bobs = await upload(bob, mug);
			for (const image of mine) assert.equal((await alice.delete(`/api/images/${image.id}`)).status, 204);
			assert.equal((await bob.delete(`/api/images/${bobs.id}`)).status, 204);

			const first = await alice.get("/api/trash?limit=2");
			assert.equal(first.status, 200);
			assert.deepEqual(ids(first.body), [mine[2]!.id, mine[1]!.id]);
			assert.ok(first.body.items[0].trashedAt >= first.body.items[1].trashedAt);
			assert.equal(first.body.items[0].blob, undefined, "storage keys stay internal");
			const second = (await alice.get(`/api/trash?limit=2&cursor=${first.body.nextCursor}`)).body;
			assert.equal(second.items[0].id, mine[0]!.id);
			assert.ok(!ids(second).includes(bobs.id), "only my trash");
			assert.ok(!ids((await bob.get("/api/trash")).body).some(id => mine.some(image => image.id === id)));
			const all = ids((await admin.get("/api/trash?limit=100")).body);
			assert.ok([...mine, bobs].every(image => all.includes(image.id)), "admins see everyone's trash");
			assert.equal((await anon.get("/api/trash")).status, 401);
			assert.equal((await alice.get("/api/trash?cursor=nonsense")).status, 400);
		});

		it("restores an image exactly as it was; only its owner or an admin can", async () => {
			const image = await upload(alice, mug, { visibility: "public", description: "Back #again" });
			await eventually(() => alice.get(`/api/images/${image.id}`), res => res.body.status !== "processing");
			const before = (await alice.get(`/api/images/${image.id}`)).body;
			assert.equal((await alice.delete(`/api/images/${image.id}`)).status, 204);

			assert.equal((await bob.post(`/api/trash/${image.id}/restore`)).status, 404, "someone else's trash does not exist");
			assert.equal((await alice.post("/api/trash/no-such-image/restore")).status, 404);
			const restored = await alice.post(`/api/trash/${image.id}/restore`);
			assert.equal(restored.status, 200, JSON.stringify(restored.body));
			assert.deepEqual(restored.body, before);
			assert.deepEqual((await alice.get(`/api/images/${image.id}`)).body, before);
			assert.equal((await alice.post(`/api/trash/${image.id}/restore`)).status, 200, "restoring again is harmless");
			assert.ok(ids((await alice.get("/api/images?q=tag:again")).body).includes(image.id));
			assert.equal((await anon.download(`/p/${image.id}`)).status, 200);
			assert.ok(!ids((await alice.get("/api/trash")).body).includes(image.id));

			assert.equal((await alice.delete(`/api/images/${image.id}`)).status, 204);
			assert.equal((await admin.post(`/api/trash/${image.id}/restore`)).status, 200, "admins may restore anyone's");
		});

		it("purges one image or the whole trash, releasing the bytes through reference counting", async () => {
			const carol = await anon.register("carol");
			const kitten = fileFrom(join(SHARED_IMAGES, "kitten_224.png"));
			const bird = fileFrom(join(SHARED_IMAGES, "hummingbird.jpg"));
			const [one, two, other] = [await upload(carol, kitten), await upload(carol, bird), await upload(carol, bird)];
			const live = await upload(carol, mug);
			for (const image of [one, two, other]) assert.equal((await carol.delete(`/api/images/${image.id}`)).status, 204);

			assert.equal((await carol.delete(`/api/trash/${live.id}`)).status, 404, "only what is in the trash can be purged");
			assert.equal((await bob.delete(`/api/trash/${one.id}`)).status, 404, "nor someone else's");
			assert.equal((await carol.delete(`/api/trash/${one.id}`)).status, 204);
			assert.equal((await carol.delete(`/api/trash/${one.id}`)).status, 404, "gone for good");
			assert.equal((await carol.post(`/api/trash/${one.id}/restore`)).status, 404);
			assert.equal(await eventually(() => backend.copiesOf(server, kitten.bytes as Buffer), n => n === 0), 0, "its bytes are released");

			const emptied = await carol.delete("/api/trash");
			assert.equal(emptied.status, 200);
			assert.deepEqual(emptied.body, { purged: 2 });
			assert.deepEqual(ids((await carol.get("/api/trash")).body), []);
			assert.equal((await carol.get(`/api/images/${live.id}`)).status, 200, "emptying the trash leaves the library alone");
			assert.equal(await eventually(() => backend.copiesOf(server, bird.bytes as Buffer), n => n === 0), 0);
			assert.deepEqual((await carol.delete("/api/trash")).body, { purged: 0 });
		});

		it("purges an account's trash with its images when the account is deleted", async () => {
			const dave = await anon.register("dave");
			const binoculars = fileFrom(join(SHARED_IMAGES, "binoculars-cc0.jpeg"));
			const trashed = await upload(dave, binoculars);
			await upload(dave, binoculars);
			assert.equal((await dave.delete(`/api/images/${trashed.id}`)).status, 204);
			assert.equal((await dave.delete("/api/auth/me")).status, 204);
			assert.ok(!ids((await admin.get("/api/trash?limit=100")).body).includes(trashed.id));
			assert.equal(await eventually(() => backend.copiesOf(server, binoculars.bytes as Buffer), n => n === 0), 0);
		});
	});

	describe(`trash retention (${name})`, { skip: options.skip }, () => {
		let server: RunningServer;

		before(async () => {
			// Nothing is kept past the next sweep, which runs every 200 ms.
			server = await startServer({ ...backend.env(), TRASH_RETENTION_DAYS: "0", TRASH_SWEEP_INTERVAL_MS: "200" });
		});
		after(() => server?.stop());

		it("purges what stayed in the trash longer than TRASH_RETENTION_DAYS, and nothing else", async () => {
			const erin = await new Client(server.url).register("erin");
			const chelsea = fileFrom(join(SHARED_IMAGES, "chelsea.png"));
			const [gone, kept] = [(await erin.upload([chelsea])).body.images[0], (await erin.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))])).body.images[0]];
			assert.equal((await erin.delete(`/api/images/${gone.id}`)).status, 204);
			const trash = await eventually(() => erin.get("/api/trash"), res => res.body.items.length === 0);
			assert.deepEqual(ids(trash.body), []);
			assert.equal((await erin.post(`/api/trash/${gone.id}/restore`)).status, 404);
			assert.equal(await eventually(() => backend.copiesOf(server, chelsea.bytes as Buffer), n => n === 0), 0);
			assert.equal((await erin.get(`/api/images/${kept.id}`)).status, 200);
		});
	});
}
