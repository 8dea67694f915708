/**
 * What a node leaves on disk is for its own user only: DATA_DIR and everything in it (SQLite
 * databases with their -wal and -shm files, blobs, secrets) is 0700/0600, from the first start,
 * and a DATA_DIR left readable by an older version is closed at the next start.
 */
import assert from "node:assert/strict";
import { chmodSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client, fileFrom } from "../helpers/client.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

/** Paths under `dir` (and `dir` itself) that users other than the owner may read, write or enter. */
function openToOthers(dir: string): string[] {
	const entries = readdirSync(dir, { recursive: true, withFileTypes: true }).map(entry => join(entry.parentPath, entry.name));
	return [dir, ...entries].filter(path => (statSync(path).mode & 0o077) !== 0).map(path => `${path} ${(statSync(path).mode & 0o777).toString(8)}`);
}

describe("file modes", () => {
	let server: RunningServer;

	before(async () => {
		server = await startServer();
	});
	after(() => server?.stop());

	it("creates DATA_DIR and everything in it for the node's user only", async () => {
		const anon = new Client(server.url);
		const alice = await anon.register("alice");
		assert.equal((await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))])).status, 201);
		assert.equal((await alice.post("/api/imports", { source: "urls", urls: ["http://127.0.0.1:9/x.jpg"] })).status, 202);
		const names = readdirSync(server.dataDir);
		for (const db of ["users.db", "images.db", "imports.db"]) assert.ok(names.includes(db), `${db} in ${names}`);
		assert.ok(names.some(name => name.endsWith("-wal")), "WAL files exist and are checked too");
		assert.deepEqual(openToOthers(server.dataDir), []);
	});

	it("closes a DATA_DIR an older version left open, at the next start", async () => {
		await server.stop({ keepData: true });
		chmodSync(server.dataDir, 0o755);
		for (const name of readdirSync(server.dataDir)) {
			const path = join(server.dataDir, name);
			chmodSync(path, statSync(path).isDirectory() ? 0o755 : 0o644);
		}
		server = await startServer({}, { dataDir: server.dataDir });
		assert.equal(statSync(server.dataDir).mode & 0o777, 0o700);
		const topLevel = readdirSync(server.dataDir).map(name => join(server.dataDir, name));
		assert.deepEqual(
			topLevel.filter(path => (statSync(path).mode & 0o077) !== 0),
			[],
			"databases, their -wal/-shm files, secrets and the blob and tmp directories"
		);
	});
});
