/**
 * Transforms off the gateway: a gateway node (api, images, storage; no transform service) and a
 * transform node of its own, joined over a real Redis with a namespace of their own. The gateway
 * answers every transform by calling the transform node, and compress jobs cross on Redis Streams.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { Client, fileFrom } from "../helpers/client.ts";
import { startNode, waitFor, type Node } from "../helpers/jobs.ts";
import { deleteNamespace, testRedis, type TestRedis } from "../helpers/redis.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

describe("transforms on a node of their own (Redis transporter)", () => {
	const namespace = `imgmesh-test-${randomUUID()}`;
	const transformDir = mkdtempSync(join(tmpdir(), "imgmesh-transform-node-"));
	let redis: TestRedis;
	let gateway: RunningServer;
	let transformer: Node;
	let admin: Client;

	const stats = async () => (await admin.get("/api/transform/stats")).body;

	before(async () => {
		redis = await testRedis();
		const cluster = { TRANSPORTER: redis.url, NAMESPACE: namespace };
		gateway = await startServer({ ...cluster, SERVICES: "api,images,users,categories,storage,health", NODE_ID: "gateway" });
		transformer = await startNode(transformDir, { ...cluster, SERVICES: "transform", NODE_ID: "transformer" });
		admin = await new Client(gateway.url).login("admin", ADMIN_PASSWORD);
		// The gateway learns of the transform node through the transporter's discovery.
		await waitFor("the transform node", async () => ((await admin.get("/api/transform/stats")).status === 200 ? true : undefined));
	});

	after(async () => {
		await transformer?.stop();
		await gateway?.stop();
		await deleteNamespace(redis.url, namespace);
		await redis.stop();
		rmSync(transformDir, { recursive: true, force: true });
	});

	it("renders on the transform node, for plain and encrypted images, and serves hits from its cache", async () => {
		const plain = (await admin.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))])).body.images[0];
		const secret = (await admin.upload([fileFrom(join(SHARED_IMAGES, "hummingbird.jpg"))], { encrypted: "true" })).body.images[0];
		for (const image of [plain, secret]) {
			const res = await admin.download(`/api/images/${image.id}/content.webp?w=100`);
			assert.equal(res.status, 200);
			const meta = await sharp(res.bytes).metadata();
			assert.deepEqual([meta.format, meta.width], ["webp", 100]);
			assert.equal(res.headers.get("content-length"), String(res.bytes.length), "the size crosses the transporter with the bytes");
		}
		const rendered = await waitFor("the variants to be stored", async () => {
			const now = await stats();
			return now.pending === 0 && now.entries === 2 ? now : undefined;
		});
		assert.equal(rendered.node, "transformer");
		assert.equal(rendered.renders, 2);
		assert.equal((await admin.download(`/api/images/${secret.id}/content.webp?w=100`)).status, 200);
		assert.equal((await stats()).hits, rendered.hits + 1);
	});

	it("runs compress jobs from the gateway on the transform node through Redis Streams", async () => {
		const image = (await admin.upload([fileFrom(join(SHARED_IMAGES, "mug-cc0.jpeg"))])).body.images[0];
		const before = await stats();
		const job = await admin.post(`/api/images/${image.id}/compress`, { quality: 50 });
		assert.equal(job.status, 202);
		await waitFor("the compress job", async () => ((await stats()).entries === before.entries + 1 ? true : undefined));
		const rendition = await admin.download(job.body.job.location);
		assert.equal(rendition.status, 200);
		assert.equal((await sharp(rendition.bytes).metadata()).format, "webp");
		const after = await stats();
		assert.equal(after.renders, before.renders + 1, "the rendition came from the job's render");
	});
});
