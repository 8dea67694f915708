/**
 * What someone who can write to the storage folder, but holds no key, can do with encrypted
 * blobs: nothing. An envelope copied over another blob (a victim's over one's own) does not open.
 * And a plain blob whose bytes changed on disk is never served whole under its original ETag.
 */
import assert from "node:assert/strict";
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client, fileFrom } from "../helpers/client.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

/** Paths of the stored blob files (blobs/<xx>/<key>), temp files and the index left out. */
function blobFiles(dataDir: string): string[] {
	const root = join(dataDir, "blobs");
	return readdirSync(root, { withFileTypes: true })
		.filter(entry => entry.isDirectory() && entry.name.length === 2)
		.flatMap(dir => readdirSync(join(root, dir.name)).map(name => join(root, dir.name, name)));
}

describe("encrypted blobs at rest", () => {
	let server: RunningServer;

	// No worker: only the originals are stored, so each upload adds exactly one blob file.
	before(async () => {
		server = await startServer({ SERVICES: "api,users,images,categories,storage,health" });
	});
	after(() => server.stop());

	it("never serves a victim's encrypted image through another image whose file was overwritten with it", async () => {
		const anon = new Client(server.url);
		const victim = await anon.register("victim");
		const mallory = await anon.register("mallory");

		const secret = readFileSync(join(SHARED_IMAGES, "dog.jpg"));
		const before = new Set(blobFiles(server.dataDir));
		await victim.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { encrypted: "true" });
		const [victimFile] = blobFiles(server.dataDir).filter(path => !before.has(path));
		const mine = (await mallory.upload([fileFrom(join(SHARED_IMAGES, "mug-cc0.jpeg"))], { encrypted: "true" })).body.images[0];
		const [malloryFile] = blobFiles(server.dataDir).filter(path => !before.has(path) && path !== victimFile);
		assert.ok(victimFile && malloryFile, "each upload stored one encrypted blob");

		copyFileSync(victimFile, malloryFile);
		const res = await mallory.download(`/api/images/${mine.id}/content`);
		assert.notEqual(res.status, 200, "the copied envelope does not open under mallory's blob");
		assert.equal(res.bytes.includes(secret.subarray(1000, 1064)), false, "no byte of the victim's image");
	});

	it("cuts the download of a plain image whose blob changed on disk, refuses it at once, and takes a re-upload as its repair", async () => {
		const owner = await new Client(server.url).register("plain-owner");
		const before = new Set(blobFiles(server.dataDir));
		const image = (await owner.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))])).body.images[0];
		const [file] = blobFiles(server.dataDir).filter(path => !before.has(path));
		assert.ok(file, "the upload stored one blob");
		const stored = readFileSync(file);
		stored[Math.floor(stored.length / 2)]! ^= 0x01;
		writeFileSync(file, stored);

		const res = await fetch(`${server.url}/api/images/${image.id}/content`, { headers: { Authorization: `Bearer ${owner.token}` } });
		assert.equal(res.status, 200, "the headers go out before the last byte is read");
		const body = await res.arrayBuffer().then(
			bytes => Buffer.from(bytes),
			() => null
		);
		assert.ok(body === null || body.length < stored.length, `the transfer broke off (${body?.length} of ${stored.length} bytes)`);
		assert.equal(body?.equals(stored) ?? false, false);

		const started = Date.now();
		const again = await owner.download(`/api/images/${image.id}/content`);
		// Refused before any byte is read: no 200 and a broken body this time. The details stay in the
		// logs and the blob's stat (server faults never reach the client).
		assert.equal(again.status, 500);

		// The same bytes uploaded again (their key is their hash) replace the corrupt copy.
		const original = readFileSync(join(SHARED_IMAGES, "dog.jpg"));
		assert.equal((await owner.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))])).status, 201);
		const repaired = await owner.download(`/api/images/${image.id}/content`);
		assert.equal(repaired.status, 200);
		assert.deepEqual(repaired.bytes, original);
		assert.ok(Date.now() - started < 2000, "refused at once");
	});
});
