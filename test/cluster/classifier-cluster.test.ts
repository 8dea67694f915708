/**
 * The classifier on dedicated nodes (SERVICES=classifier) of a Redis cluster: the gateway's
 * /api/classify reaches them (the upload streams over the transporter), uploads end ready with
 * automatic tags, and a classifier node killed mid-work loses no image: its jobs go to the other.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Client, fileFrom } from "../helpers/client.ts";
import { settled, startNode, waitFor, type Node } from "../helpers/jobs.ts";
import { testRedis, type TestRedis } from "../helpers/redis.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const MANIFEST = fileURLToPath(new URL("../../config/models/squeezenet-fp16.json", import.meta.url));
const PHOTOS = ["dog.jpg", "mug-cc0.jpeg", "hummingbird.jpg", "binoculars-cc0.jpeg", "chelsea.png", "kitten_224.png"];

describe("classifier nodes in a cluster", () => {
	const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-classifier-cluster-"));
	let redis: TestRedis;
	let gateway: RunningServer;
	let alice: Client;
	const classifiers: Node[] = [];

	before(async () => {
		redis = await testRedis();
		const cluster = {
			TRANSPORTER: redis.url,
			NAMESPACE: `imgmesh-test-${randomUUID()}`,
			CLASSIFIER_MODEL: MANIFEST,
			// A killed node's jobs come back to the other node after 2 s.
			JOB_REDELIVER_AFTER_MS: "2000",
			JOB_CLAIM_INTERVAL_MS: "100"
		};
		// One after the other: the first writes the data directory's generated secrets.
		for (const name of ["classifier-a", "classifier-b"]) classifiers.push(await startNode(dataDir, { ...cluster, SERVICES: "classifier", NODE_ID: name }));
		gateway = await startServer({ ...cluster, SERVICES: "api,users,images,categories,storage,health,worker", NODE_ID: "gateway" }, { dataDir });
		alice = await new Client(gateway.url).register("alice");
		// The gateway learns the classifier's routes after its alias debounce.
		await waitFor("the classify route", async () => ((await alice.post("/api/classify", {})).status === 404 ? undefined : true));
	});
	after(async () => {
		await gateway?.stop({ keepData: true });
		await Promise.all(classifiers.map(node => node.stop()));
		await redis?.stop();
		rmSync(dataDir, { recursive: true, force: true });
	});

	it("classifies an upload on a classifier node through the gateway", async () => {
		const res = await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))], {}, "/api/classify");
		assert.equal(res.status, 200, JSON.stringify(res.body));
		assert.equal(res.body.labels[0].label, "golden retriever");
		const ready = await alice.get("/api/ready");
		assert.equal(ready.body.classifier.enabled, true);
		assert.match(ready.body.classifier.node, /^classifier-[ab]$/);
	});

	it("tags every upload even when a classifier node is killed mid-work", async () => {
		const upload = await alice.upload(PHOTOS.map(name => fileFrom(join(SHARED_IMAGES, name))));
		assert.equal(upload.status, 201, JSON.stringify(upload.body));
		classifiers[0]!.process.kill("SIGKILL");
		for (const image of upload.body.images) {
			const doc = await settled(alice, image.id, 60_000);
			assert.equal(doc.status, "ready", doc.statusReason);
			assert.equal(doc.statusReason, null, `${doc.filename} was tagged, not given up on`);
			const auto = doc.tags.filter((tag: { source: string }) => tag.source === "auto");
			assert.ok(auto.length > 0 && auto.every((tag: { model: string }) => tag.model === "squeezenet1.1_fp16"), `${doc.filename}: ${JSON.stringify(doc.tags)}`);
		}
	});
});
