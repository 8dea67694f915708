/**
 * Nothing is lost across a restart: generated secrets are reused (tokens stay valid, encrypted
 * images still decrypt), metadata and blobs persist, and the secrets file is private.
 */
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Client, fileFrom } from "../helpers/client.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

describe("restart", () => {
	let server: RunningServer | undefined;
	after(async () => {
		await server?.stop();
	});

	it("keeps users, tokens, images and encrypted bytes across a restart", async () => {
		// No JWT_SECRET or STORAGE_MASTER_KEY: the node generates them.
		server = await startServer();
		const dataDir = server.dataDir;
		const secrets = join(dataDir, "secrets.json");
		assert.equal(statSync(secrets).mode & 0o777, 0o600);
		const generated = JSON.parse(readFileSync(secrets, "utf8"));
		assert.ok(generated.jwtSecret && generated.storageMasterKey);

		const alice = await new Client(server.url).register("alice");
		const bytes = readFileSync(join(SHARED_IMAGES, "dog.jpg"));
		const upload = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { encrypted: "true", tags: "kept" });
		assert.equal(upload.status, 201);
		const id = upload.body.images[0].id;

		await server.stop({ keepData: true });
		server = await startServer({}, { dataDir });
		assert.deepEqual(JSON.parse(readFileSync(secrets, "utf8")), generated, "secrets are reused, not regenerated");

		const same = new Client(server.url, alice.token);
		assert.equal((await same.get("/api/auth/me")).status, 200, "the old token is still valid");
		const download = await same.download(`/api/images/${id}/content`);
		assert.equal(download.status, 200);
		assert.ok(download.bytes.equals(bytes));
		assert.equal((await same.get("/api/images?q=tag:kept")).body.total, 1);
	});

	it("views counted just before a clean stop are written by it, not lost with the batch in memory", async () => {
		await server?.stop();
		server = await startServer();
		const dataDir = server.dataDir;
		const anon = new Client(server.url);
		const alice = await anon.register("alice");
		const bob = await anon.register("bob");
		const upload = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], { visibility: "public" });
		assert.equal(upload.status, 201);
		const id = upload.body.images[0].id;
		// Views are written in batches a second apart: these wait in memory when the stop comes.
		for (let i = 0; i < 5; i++) assert.equal((await bob.download(`/api/images/${id}/content`)).status, 200);

		await server.stop({ keepData: true });
		server = await startServer({}, { dataDir });
		assert.equal((await new Client(server.url, alice.token).get(`/api/images/${id}`)).body.views, 5);
	});

	it("a new ADMIN_PASSWORD at start is a reset: the admin's older tokens stop working", async () => {
		await server?.stop();
		server = await startServer();
		const dataDir = server.dataDir;
		const admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);

		await server.stop({ keepData: true });
		server = await startServer({}, { dataDir });
		assert.equal((await new Client(server.url, admin.token).get("/api/auth/me")).status, 200, "the same password keeps the admin signed in");

		await server.stop({ keepData: true });
		server = await startServer({ ADMIN_PASSWORD: "a-new-admin-password" }, { dataDir });
		const refused = await new Client(server.url, admin.token).get("/api/auth/me");
		assert.equal(refused.status, 401);
		assert.equal(refused.body.type, "TOKEN_REVOKED");
		const again = await new Client(server.url).login("admin", "a-new-admin-password");
		assert.equal((await again.get("/api/users")).status, 200);
	});

	it("refuses to start with a clear message when configuration is invalid", async () => {
		for (const [env, message] of [
			[{ PORT: "eighty" }, /PORT must be an integer/],
			[{ STORAGE_MASTER_KEY: "too-short" }, /STORAGE_MASTER_KEY must be 32 bytes/],
			[{ JWT_SECRET: "short" }, /JWT_SECRET must be at least 32 characters/],
			[{ SERVICES: "api,nope" }, /SERVICES names unknown services: nope/]
		] as const) {
			await assert.rejects(startServer(env), (err: Error) => message.test(err.message), JSON.stringify(env));
		}
	});
});
