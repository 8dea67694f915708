/**
 * Direct reads (mixins/blob-reader.mixin.ts): on GridFS, and on S3 with its index in MongoDB, a node that serves or processes bytes
 * reads them from the backend itself, not from a storage node through the transporter. Proved by
 * taking the storage node away: the gateway (api + images + transform, on MongoDB) still serves
 * originals, plain and encrypted, ranges and uncached transforms byte for byte, while writes, which
 * stay with the storage service, are refused. With BLOB_READS=storage the same read fails: the
 * fallback goes through the storage node.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ServiceBroker } from "moleculer";
import sharp from "sharp";
import { Client, fileFrom } from "../helpers/client.ts";
import { clusterEnv, nodesWith, redisSkipReason, startNode, startObserver, startRedis, waitForCluster, waitForRoutes, type RedisServer } from "../helpers/cluster.ts";
import { ferretDbSkipReason, startFerretDb, type FerretDb } from "../helpers/ferretdb.ts";
import { s3SkipReason, startS3, type TestS3 } from "../helpers/s3.ts";
import { SHARED_IMAGES, type RunningServer } from "../helpers/server.ts";

const DOG = readFileSync(join(SHARED_IMAGES, "dog.jpg"));

directReads("gridfs", redisSkipReason() || ferretDbSkipReason() || undefined);
directReads("s3", redisSkipReason() || ferretDbSkipReason() || s3SkipReason() || undefined);

function directReads(storage: "gridfs" | "s3", skip: string | undefined): void {
	describe(`direct reads on ${storage}: bytes never pass through the storage node`, { skip, timeout: 180_000 }, () => {
		let redis: RedisServer;
		let mongo: FerretDb;
		let s3: TestS3 | undefined;
		let env: Record<string, string>;
		let observer: ServiceBroker;
		let nodes: RunningServer[] = [];
		let storageNode: RunningServer;
		/** A second gateway that reads through the storage service (BLOB_READS=storage). */
		let fallback: RunningServer;
		let alice: Client;
		let plain: string;
		let encrypted: string;

		before(async () => {
			[redis, mongo, s3] = await Promise.all([startRedis(), startFerretDb(), storage === "s3" ? startS3() : undefined]);
			const backend = s3 ? s3.nodeEnv(s3.location()) : { STORAGE: "gridfs" };
			env = { ...clusterEnv(redis), MONGO_URL: mongo.databaseUrl(), ...backend };
			// Users first: it creates the admin account.
			const users = await startNode(env, ["users"], { nodeId: "users-1" });
			storageNode = await startNode(env, ["storage"], { nodeId: "storage-1" });
			const gateway = await startNode(env, ["api", "health", "images", "categories", "transform"], { nodeId: "gateway-1" });
			fallback = await startNode({ ...env, BLOB_READS: "storage" }, ["api", "health", "images", "categories"], { nodeId: "gateway-fallback" });
			nodes = [gateway, fallback, users];
			await Promise.all([waitForRoutes(gateway.url), waitForRoutes(fallback.url)]);
			observer = await startObserver(env);
			alice = await new Client(gateway.url).register("alice");
			const upload = async (fields: Record<string, string>) => {
				const res = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], fields);
				assert.equal(res.status, 201, JSON.stringify(res.body));
				return res.body.images[0].id as string;
			};
			plain = await upload({ visibility: "public" });
			encrypted = await upload({ encrypted: "true" });
			// Guests get the public link's copy without metadata, which a first request stores through the storage node.
			assert.equal((await new Client(gateway.url).download(`/p/${plain}`)).status, 200);

			await storageNode.stop();
			await waitForCluster("the storage node gone", () => nodesWith(observer, "storage").length === 0);
		}, { timeout: 120_000 });

		after(async () => {
			await observer?.stop();
			await Promise.all(nodes.map(node => node.stop()));
			await Promise.all([redis?.stop(), mongo?.stop(), s3?.stop()]);
		});

		it("serves originals, plain and encrypted, and ranges without the storage node", async () => {
			for (const id of [plain, encrypted]) {
				const content = await alice.download(`/api/images/${id}/content`);
				assert.equal(content.status, 200, `image ${id}`);
				assert.ok(content.bytes.equals(DOG), "byte-identical");
			}
			const range = await new Client(nodes[0].url).download(`/p/${plain}`, { range: "bytes=100-199" });
			assert.equal(range.status, 206);
			assert.ok(range.bytes.equals(DOG.subarray(100, 200)));
		});

		it("renders an uncached transform from the original read directly", async () => {
			const variant = await alice.download(`/api/images/${plain}/content.png?w=40`);
			assert.equal(variant.status, 200);
			assert.equal((await sharp(variant.bytes).metadata()).width, 40);
		});

		it("still refuses an upload: writes go through the storage service", async () => {
			const res = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))]);
			assert.equal(res.status, 503, JSON.stringify(res.body));
		});

		it("reads through the storage node with BLOB_READS=storage", async () => {
			const content = await new Client(fallback.url, alice.token).download(`/api/images/${plain}/content`);
			assert.equal(content.status, 503, "no storage node to read through");
		});
	});
}
