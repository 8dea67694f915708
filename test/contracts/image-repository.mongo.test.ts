/**
 * The image and category repository contract against MongoDB (FerretDB): one server for the
 * file, a fresh database for every test; and how a repository lives through MongoDB going away.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { MongoClient, type ObjectId } from "mongodb";
import { UnavailableError } from "../../models/shared/errors.ts";
import type { Category } from "../../models/categories/category.ts";
import { MongoCategoryRepository } from "../../models/categories/mongo-repository.ts";
import { MongoImageRepository } from "../../models/images/mongo-repository.ts";
import { describeOnFerretDb, dropDatabase } from "../helpers/ferretdb.ts";
import { imageRepositoryContract } from "./image-repository.contract.ts";

const TIMEOUT_MS = 2000;

describeOnFerretDb("MongoDB image repository (FerretDB)", ferretDb => {
	// Both repositories in one database, as the services run them.
	imageRepositoryContract("MongoDB", async () => {
		const url = ferretDb().databaseUrl();
		const images = new MongoImageRepository({ url, timeoutMs: TIMEOUT_MS });
		const categories = new MongoCategoryRepository({ url, timeoutMs: TIMEOUT_MS });
		return { images, categories, cleanup: () => dropDatabase(url) };
	});

	it("reads showMetadata false from an image stored before the field existed", async () => {
		const url = ferretDb().databaseUrl();
		const images = new MongoImageRepository({ url, timeoutMs: TIMEOUT_MS });
		const client = new MongoClient(url);
		try {
			const createdAt = "2024-01-01T00:00:00.000Z";
			await client.db().collection("images").insertOne({
				_id: "old" as unknown as ObjectId, owner: "u-alice", ownerName: "alice", name: "Old", description: "", filename: "a.png",
				contentType: "image/png", format: "png", size: 1, width: 1, height: 1, sha256: "0".repeat(64), encrypted: false,
				visibility: "public", category: null, tags: [], views: 0, status: "ready", statusReason: null, metadata: null,
				renditions: [], blob: "b", createdAt, updatedAt: createdAt, keywords: ["old"], searchText: "old", tagLabels: [], rev: 0
			});
			assert.equal((await images.get("old"))?.showMetadata, false);
		} finally {
			await client.close();
			await images.close();
			await dropDatabase(url);
		}
	});

	// Last: it stops the server the other tests use.
	it("fails with UnavailableError while MongoDB is down and recovers by itself, indexes included", async () => {
		const server = ferretDb();
		const url = server.databaseUrl();
		const nature: Category = { id: "nature", name: "Nature", description: "", createdAt: "2024-01-01T00:00:00.000Z", updatedAt: "2024-01-01T00:00:00.000Z" };
		const running = new MongoCategoryRepository({ url, timeoutMs: 300 });
		await running.insert(nature);
		await server.down();
		// Opened while the server is down: its indexes cannot be made yet.
		const late = new MongoCategoryRepository({ url, timeoutMs: 300 });
		try {
			await assert.rejects(running.list(), UnavailableError);
			await assert.rejects(running.ping(), UnavailableError);
			await assert.rejects(late.insert({ ...nature, id: "other" }), UnavailableError);
			await server.up();
			assert.deepEqual(await running.list(), [nature], "the data survived");
			assert.equal(await late.ping(), true);
			await assert.rejects(late.insert({ ...nature, id: "nature-2", name: "NATURE" }), { name: "ConflictError", data: { name: "NATURE" } }, "the unique name index exists");
		} finally {
			await server.up();
			await running.close();
			await late.close();
			await dropDatabase(url);
		}
	});
});
