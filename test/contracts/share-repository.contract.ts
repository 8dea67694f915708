/**
 * The behaviour every ShareRepository backend must have: links found by their token's hash only,
 * owners' lists in keyset pages, patches that clear expiry and password, and the sweeps that
 * delete an image's, an album's or an account's links. A backend's test file calls
 * shareRepositoryContract with a factory for fresh, empty repositories; every test gets its own.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { ConflictError } from "../../models/shared/errors.ts";
import { newShareToken, tokenHashOf, type ShareDoc, type ShareRepository } from "../../models/shares/share.ts";

export interface ShareContractFixture {
	repo: ShareRepository;
	/** Removes what the repository was stored in, once the contract has closed it. */
	cleanup(): Promise<void>;
}

let nextId = 0;

function newShare(fields: Partial<ShareDoc> = {}): ShareDoc {
	const at = fields.createdAt ?? new Date(Date.UTC(2026, 0, 1, 0, 0, ++nextId)).toISOString();
	return {
		id: `share-${++nextId}`,
		owner: "u-alice",
		imageId: "img-1",
		albumId: null,
		tokenHash: tokenHashOf(newShareToken()),
		passwordHash: null,
		expiresAt: null,
		allowDownload: true,
		showMetadata: false,
		createdAt: at,
		updatedAt: at,
		...fields
	};
}

export function shareRepositoryContract(name: string, open: () => Promise<ShareContractFixture>): void {
	describe(`ShareRepository contract: ${name}`, () => {
		let fixture: ShareContractFixture;
		let repo: ShareRepository;
		beforeEach(async () => {
			fixture = await open();
			repo = fixture.repo;
		});
		afterEach(async () => {
			await repo.close();
			await fixture.cleanup();
		});

		it("stores a link and finds it by id and by its token's hash, nothing else", async () => {
			const share = newShare({ passwordHash: "scrypt$x", expiresAt: "2027-01-01T00:00:00.000Z", allowDownload: false, showMetadata: true });
			await repo.insert(share);
			assert.deepEqual(await repo.get(share.id), share);
			assert.deepEqual(await repo.findByTokenHash(share.tokenHash), share);
			assert.equal(await repo.findByTokenHash(tokenHashOf(newShareToken())), null);
			assert.equal(await repo.get("share-missing"), null);
			const album = newShare({ imageId: null, albumId: "album-1" });
			await repo.insert(album);
			assert.deepEqual(await repo.findByTokenHash(album.tokenHash), album);
		});

		it("refuses a second link with the same id or token hash", async () => {
			const share = newShare();
			await repo.insert(share);
			await assert.rejects(repo.insert({ ...newShare(), tokenHash: share.tokenHash }), ConflictError);
			await assert.rejects(repo.insert({ ...newShare(), id: share.id }), ConflictError);
		});

		it("lists an owner's links newest first in keyset pages, and only theirs", async () => {
			const mine = [newShare(), newShare(), newShare()];
			for (const share of [...mine, newShare({ owner: "u-bob" })]) await repo.insert(share);
			const first = await repo.listByOwner("u-alice", 2);
			assert.deepEqual(first.items.map(share => share.id), [mine[2]!.id, mine[1]!.id]);
			assert.ok(first.nextCursor);
			// A link made since does not shift the next page.
			await repo.insert(newShare());
			const second = await repo.listByOwner("u-alice", 2, first.nextCursor);
			assert.deepEqual([second.items.map(share => share.id), second.nextCursor], [[mine[0]!.id], null]);
			assert.deepEqual((await repo.listByOwner("u-carol", 10)).items, []);
			await assert.rejects(repo.listByOwner("u-alice", 2, "not-a-cursor"), { code: 400, type: "INVALID_CURSOR" });
		});

		it("patches only the fields given: null clears the expiry and the password", async () => {
			const share = newShare({ passwordHash: "scrypt$x", expiresAt: "2027-01-01T00:00:00.000Z" });
			await repo.insert(share);
			const updated = await repo.update(share.id, { allowDownload: false, expiresAt: undefined });
			assert.deepEqual({ ...updated, updatedAt: share.updatedAt }, { ...share, allowDownload: false });
			assert.ok(updated!.updatedAt > share.updatedAt);
			const cleared = await repo.update(share.id, { passwordHash: null, expiresAt: null, showMetadata: true });
			assert.deepEqual([cleared!.passwordHash, cleared!.expiresAt, cleared!.showMetadata, cleared!.allowDownload], [null, null, true, false]);
			assert.deepEqual(await repo.get(share.id), cleared);
			assert.equal(await repo.update("share-missing", { showMetadata: true }), null);
		});

		it("removes a link once: its token finds nothing afterwards", async () => {
			const share = newShare();
			await repo.insert(share);
			assert.equal(await repo.remove(share.id), true);
			assert.equal(await repo.remove(share.id), false);
			assert.equal(await repo.findByTokenHash(share.tokenHash), null);
		});

		it("removes every link to an image, to an album, or of an owner", async () => {
			const image = [newShare({ imageId: "img-x" }), newShare({ imageId: "img-x", owner: "u-bob" })];
			const album = [newShare({ imageId: null, albumId: "album-x" })];
			const other = newShare({ imageId: "img-y" });
			const bobs = newShare({ imageId: "img-z", owner: "u-bob" });
			for (const share of [...image, ...album, other, bobs]) await repo.insert(share);
			assert.equal(await repo.removeByTarget({ imageId: "img-x" }), 2);
			assert.equal(await repo.removeByTarget({ albumId: "album-x" }), 1);
			assert.equal(await repo.removeByTarget({ albumId: "img-y" }), 0, "an album id never matches an image's link");
			assert.equal(await repo.removeByOwner("u-bob"), 1);
			assert.deepEqual((await repo.listByOwner("u-alice", 10)).items.map(share => share.id), [other.id]);
			assert.equal(await repo.removeByOwner("u-bob"), 0);
		});

		it("answers ping", async () => {
			assert.equal(await repo.ping(), true);
		});
	});
}
