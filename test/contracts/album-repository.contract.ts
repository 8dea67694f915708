/**
 * The behaviour every AlbumRepository backend must have: albums and their members, entries added
 * once, keyset pages in both orders, the view grant through membership, and the clean-ups when an
 * image or an account goes. A backend's test file calls albumRepositoryContract with a factory for
 * fresh, empty repositories; every test gets its own.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { Album, AlbumEntry, AlbumRepository, AlbumSort } from "../../models/albums/album.ts";

export interface AlbumContractFixture {
	repo: AlbumRepository;
	/** Removes what the repository was stored in, once the contract has closed it. */
	cleanup(): Promise<void>;
}

let nextId = 0;

function newAlbum(owner = "u-alice", createdAt = new Date().toISOString()): Album {
	return { id: `album-${++nextId}`, owner, ownerName: owner.slice(2), name: `Album ${nextId}`, description: "", createdAt, updatedAt: createdAt };
}

/** Entries whose added and taken times run in opposite orders: img-0 added first, taken last. */
function entries(n: number, prefix = "img", owner = "u-alice"): AlbumEntry[] {
	return Array.from({ length: n }, (_, i) => ({
		imageId: `${prefix}-${i}`,
		imageOwner: owner,
		addedBy: owner,
		addedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
		takenAt: new Date(Date.UTC(2020, 0, 1, 0, 0, n - i)).toISOString()
	}));
}

export function albumRepositoryContract(name: string, open: () => Promise<AlbumContractFixture>): void {
	describe(`AlbumRepository contract: ${name}`, () => {
		let fixture: AlbumContractFixture;
		let repo: AlbumRepository;
		beforeEach(async () => {
			fixture = await open();
			repo = fixture.repo;
		});
		afterEach(async () => {
			await repo.close();
			await fixture.cleanup();
		});

		/** Every entry id of the album in `sort` order, read page by page. */
		async function allPages(albumId: string, sort: AlbumSort, limit: number): Promise<string[]> {
			const ids: string[] = [];
			let cursor: string | undefined;
			do {
				const page = await repo.imagePage(albumId, { sort, limit, cursor });
				assert.ok(page.items.length <= limit);
				ids.push(...page.items.map(entry => entry.imageId));
				cursor = page.nextCursor ?? undefined;
			} while (cursor);
			return ids;
		}

		it("stores, updates and removes an album", async () => {
			const album = newAlbum();
			await repo.insert(album);
			assert.deepEqual(await repo.get(album.id), album);
			const updated = await repo.update(album.id, { name: "Holidays", description: undefined });
			assert.equal(updated?.name, "Holidays");
			assert.equal(updated?.description, "");
			assert.ok(updated!.updatedAt >= album.updatedAt);
			assert.deepEqual(await repo.get(album.id), updated);
			assert.equal(await repo.update("nope", { name: "x" }), null);
			assert.equal(await repo.remove(album.id), true);
			assert.equal(await repo.remove(album.id), false);
			assert.equal(await repo.get(album.id), null);
		});

		it("lists a user's own albums and those shared with them, with role, counts and cover", async () => {
			const older = newAlbum("u-alice", "2026-01-01T00:00:00.000Z");
			const newer = newAlbum("u-alice", "2026-01-02T00:00:00.000Z");
			const bobs = newAlbum("u-bob", "2026-01-03T00:00:00.000Z");
			const hidden = newAlbum("u-bob", "2026-01-04T00:00:00.000Z");
			for (const album of [older, newer, bobs, hidden]) await repo.insert(album);
			await repo.addImages(older.id, entries(3));
			await repo.setMember(bobs.id, { userId: "u-alice", username: "alice", role: "viewer", addedAt: "2026-01-05T00:00:00.000Z" });
			await repo.setMember(older.id, { userId: "u-carol", username: "carol", role: "contributor", addedAt: "2026-01-05T00:00:00.000Z" });

			const mine = await repo.listFor("u-alice");
			assert.deepEqual(mine.map(album => [album.id, album.role, album.imageCount, album.memberCount, album.cover]), [
				[bobs.id, "viewer", 0, 1, null],
				[newer.id, "owner", 0, 0, null],
				[older.id, "owner", 3, 1, "img-2"]
			]);
			assert.deepEqual((await repo.listFor("u-carol")).map(album => [album.id, album.role]), [[older.id, "contributor"]]);
			assert.deepEqual(await repo.listFor("u-nobody"), []);
		});

		it("adds members once, changes their role, and removes them", async () => {
			const album = newAlbum();
			await repo.insert(album);
			assert.equal(await repo.memberRole(album.id, "u-bob"), null);
			await repo.setMember(album.id, { userId: "u-bob", username: "bob", role: "viewer", addedAt: "2026-01-01T00:00:00.000Z" });
			await repo.setMember(album.id, { userId: "u-carol", username: "carol", role: "viewer", addedAt: "2026-01-02T00:00:00.000Z" });
			await repo.setMember(album.id, { userId: "u-bob", username: "bob", role: "contributor", addedAt: "2026-01-03T00:00:00.000Z" });
			assert.equal(await repo.memberRole(album.id, "u-bob"), "contributor");
			assert.deepEqual(
				(await repo.members(album.id)).map(member => [member.userId, member.username, member.role]),
				[["u-bob", "bob", "contributor"], ["u-carol", "carol", "viewer"]],
				"in the order they first joined"
			);
			assert.equal(await repo.memberRole(album.id, "u-alice"), null, "the owner is no member");
			assert.equal(await repo.removeMember(album.id, "u-bob"), true);
			assert.equal(await repo.removeMember(album.id, "u-bob"), false);
			assert.equal(await repo.memberRole(album.id, "u-bob"), null);
		});

		it("adds an image once, removes it idempotently, and tells which are in the album", async () => {
			const album = newAlbum();
			await repo.insert(album);
			const list = entries(3);
			assert.equal(await repo.addImages(album.id, list.slice(0, 2)), 2);
			assert.equal(await repo.addImages(album.id, list), 1, "only img-2 was new");
			assert.equal(await repo.addImages(album.id, []), 0);
			assert.deepEqual((await repo.imageIds(album.id)).sort(), ["img-0", "img-1", "img-2"]);
			const found = await repo.entries(album.id, ["img-1", "img-9"]);
			assert.deepEqual(found, [list[1]]);
			assert.equal(await repo.removeImages(album.id, ["img-1", "img-9"]), 1);
			assert.equal(await repo.removeImages(album.id, ["img-1"]), 0);
			assert.deepEqual((await repo.imageIds(album.id)).sort(), ["img-0", "img-2"]);
		});

		it("pages an album by time added and by time taken, in both directions", async () => {
			const album = newAlbum();
			await repo.insert(album);
			const list = entries(7);
			await repo.addImages(album.id, list);
			const ids = list.map(entry => entry.imageId);
			assert.deepEqual(await allPages(album.id, "-addedAt", 3), [...ids].reverse());
			assert.deepEqual(await allPages(album.id, "addedAt", 2), ids);
			assert.deepEqual(await allPages(album.id, "-takenAt", 3), ids);
			assert.deepEqual(await allPages(album.id, "takenAt", 4), [...ids].reverse());
			const first = await repo.imagePage(album.id, { sort: "-addedAt", limit: 7 });
			assert.equal(first.nextCursor, null);
			await assert.rejects(repo.imagePage(album.id, { sort: "addedAt", limit: 2, cursor: "garbage" }), { type: "INVALID_CURSOR" });
			const page = await repo.imagePage(album.id, { sort: "-addedAt", limit: 2 });
			await assert.rejects(repo.imagePage(album.id, { sort: "takenAt", limit: 2, cursor: page.nextCursor! }), { type: "INVALID_CURSOR" });
		});

		it("breaks ties by image id, so equal times still page without repeats", async () => {
			const album = newAlbum();
			await repo.insert(album);
			const at = "2026-01-01T00:00:00.000Z";
			const list = ["c", "a", "d", "b"].map(imageId => ({ imageId, imageOwner: "u-alice", addedBy: "u-alice", addedAt: at, takenAt: at }));
			await repo.addImages(album.id, list);
			assert.deepEqual(await allPages(album.id, "addedAt", 1), ["a", "b", "c", "d"]);
			assert.deepEqual(await allPages(album.id, "-takenAt", 3), ["d", "c", "b", "a"]);
		});

		it("grants a view of an image to the owner and members of an album holding it, to nobody else", async () => {
			const album = newAlbum("u-alice");
			await repo.insert(album);
			await repo.addImages(album.id, entries(1));
			await repo.setMember(album.id, { userId: "u-bob", username: "bob", role: "viewer", addedAt: "2026-01-01T00:00:00.000Z" });
			assert.equal(await repo.grantsView("img-0", "u-alice"), true);
			assert.equal(await repo.grantsView("img-0", "u-bob"), true);
			assert.equal(await repo.grantsView("img-0", "u-carol"), false);
			assert.equal(await repo.grantsView("img-1", "u-bob"), false);
			await repo.removeMember(album.id, "u-bob");
			assert.equal(await repo.grantsView("img-0", "u-bob"), false, "a removed member sees nothing");
			await repo.setMember(album.id, { userId: "u-bob", username: "bob", role: "viewer", addedAt: "2026-01-01T00:00:00.000Z" });
			await repo.removeImages(album.id, ["img-0"]);
			assert.equal(await repo.grantsView("img-0", "u-bob"), false, "nor an image taken out");
		});

		it("refreshes an image's time taken in every album, and drops a deleted image from all of them", async () => {
			const [one, two] = [newAlbum(), newAlbum()];
			for (const album of [one, two]) {
				await repo.insert(album);
				await repo.addImages(album.id, entries(2));
			}
			assert.equal(await repo.setTakenAt("img-0", "1999-01-01T00:00:00"), 2);
			assert.deepEqual((await repo.entries(two.id, ["img-0"]))[0]!.takenAt, "1999-01-01T00:00:00");
			assert.deepEqual((await repo.imagePage(one.id, { sort: "takenAt", limit: 1 })).items[0]!.imageId, "img-0");
			assert.equal(await repo.removeImageEverywhere("img-0"), 2);
			assert.equal(await repo.removeImageEverywhere("img-0"), 0);
			assert.deepEqual(await repo.imageIds(one.id), ["img-1"]);
			assert.deepEqual(await repo.imageIds(two.id), ["img-1"]);
		});

		it("leaves an image in the trash out of every album's counts, cover, pages and ids, and back in once restored", async () => {
			const [one, two] = [newAlbum(), newAlbum()];
			for (const album of [one, two]) {
				await repo.insert(album);
				await repo.addImages(album.id, entries(3));
			}
			const shown = async () => ({
				listed: (await repo.listFor("u-alice")).map(album => [album.imageCount, album.cover]),
				ids: [await repo.imageIds(one.id), await repo.imageIds(two.id)],
				pages: [await allPages(one.id, "-addedAt", 1), await allPages(two.id, "takenAt", 1)]
			});
			const before = await shown();
			assert.equal(await repo.setTrashed("img-2", true), 2);
			assert.equal(await repo.setTrashed("img-2", true), 0, "idempotent");
			assert.deepEqual(await shown(), {
				listed: [[2, "img-1"], [2, "img-1"]],
				ids: [["img-1", "img-0"], ["img-1", "img-0"]],
				pages: [["img-1", "img-0"], ["img-1", "img-0"]]
			});
			assert.equal((await repo.entries(one.id, ["img-2"])).length, 1, "it keeps its place in the album");
			assert.equal(await repo.setTrashed("img-2", false), 2);
			assert.deepEqual(await shown(), before);
		});

		it("removing an album takes its entries and members along, never touching other albums", async () => {
			const [gone, kept] = [newAlbum(), newAlbum()];
			for (const album of [gone, kept]) {
				await repo.insert(album);
				await repo.addImages(album.id, entries(2));
				await repo.setMember(album.id, { userId: "u-bob", username: "bob", role: "viewer", addedAt: "2026-01-01T00:00:00.000Z" });
			}
			await repo.remove(gone.id);
			assert.deepEqual(await repo.imageIds(gone.id), []);
			assert.deepEqual(await repo.members(gone.id), []);
			assert.deepEqual((await repo.imageIds(kept.id)).sort(), ["img-0", "img-1"]);
			assert.deepEqual((await repo.listFor("u-bob")).map(album => album.id), [kept.id]);
		});

		it("removes a deleted account's albums and memberships", async () => {
			const alices = newAlbum("u-alice");
			const bobs = newAlbum("u-bob");
			for (const album of [alices, bobs]) await repo.insert(album);
			await repo.addImages(alices.id, entries(2));
			await repo.setMember(bobs.id, { userId: "u-alice", username: "alice", role: "contributor", addedAt: "2026-01-01T00:00:00.000Z" });
			await repo.setMember(alices.id, { userId: "u-bob", username: "bob", role: "viewer", addedAt: "2026-01-01T00:00:00.000Z" });
			assert.equal(await repo.removeUser("u-alice"), 1);
			assert.equal(await repo.get(alices.id), null);
			assert.deepEqual(await repo.imageIds(alices.id), []);
			assert.deepEqual(await repo.members(bobs.id), []);
			assert.deepEqual((await repo.listFor("u-bob")).map(album => album.id), [bobs.id]);
			assert.equal(await repo.removeUser("u-alice"), 0);
		});

		it("answers ping", async () => {
			assert.equal(await repo.ping(), true);
		});
	});
}
