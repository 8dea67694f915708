/**
 * What someone who can write to the storage folder, but holds no key, can do with encrypted
 * blobs: nothing. An envelope copied over another blob (a victim's over one's own) does not open.
 */
import assert from "node:assert/strict";
import { copyFileSync, readdirSync, readFileSync } from "node:fs";
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
});
