/**
 * Automatic tagging over REST, with both real models in ../shared/models and the real photos in
 * ../shared/images: POST /api/classify, retagging through the `imgmesh.classify` job stream,
 * bad input, a node with no model, and a manifest that does not fit its model.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Client, fileFrom } from "../helpers/client.ts";
import { settled } from "../helpers/jobs.ts";
import { failingModel } from "../helpers/onnx-model.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const MODELS_DIR = fileURLToPath(new URL("../../config/models/", import.meta.url));
const MODELS = [
	{ name: "MobileNetV2 int8", manifest: join(MODELS_DIR, "mobilenet-v2-uint8.json"), id: "mobilenet_v2_uint8" },
	{ name: "SqueezeNet 1.1 fp16", manifest: join(MODELS_DIR, "squeezenet-fp16.json"), id: "squeezenet1.1_fp16" }
];

/** ImageNet's domestic cat classes, as friendly labels. */
const CATS = ["tabby cat", "tiger cat", "persian cat", "siamese cat", "egyptian cat"];

/** Each shared photo, and what must be among its first `within` labels. */
const EXPECTED: { photo: string; within: number; accepts: string[] }[] = [
	{ photo: "dog.jpg", within: 1, accepts: ["golden retriever"] },
	{ photo: "kitten_224.png", within: 3, accepts: CATS },
	{ photo: "chelsea.png", within: 3, accepts: CATS },
	{ photo: "mug-cc0.jpeg", within: 2, accepts: ["coffee mug"] },
	{ photo: "hummingbird.jpg", within: 2, accepts: ["hummingbird"] },
	{ photo: "binoculars-cc0.jpeg", within: 2, accepts: ["binoculars"] }
];

const photo = (name: string) => fileFrom(join(SHARED_IMAGES, name));

/** Polls `read` until `done` holds for its value; fails with the last value after `timeoutMs`. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const value = await read();
		if (done(value)) return value;
		if (Date.now() > deadline) assert.fail(`condition not reached within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
		await new Promise(resolve => setTimeout(resolve, 100));
	}
}

/**
 * A node with a classifier model. /api/ready waits for the model to load; the gateway then
 * learns the classifier's routes after its alias debounce, so the first call waits for those.
 */
async function startWithModel(env: Record<string, string>): Promise<{ server: RunningServer; alice: Client }> {
	const server = await startServer(env);
	const alice = await new Client(server.url).register("alice");
	await eventually(() => alice.post("/api/classify", {}), res => res.status !== 404);
	return { server, alice };
}

for (const model of MODELS) {
	describe(`classifier with ${model.name}`, () => {
		let server: RunningServer;
		let alice: Client;

		before(async () => {
			({ server, alice } = await startWithModel({ CLASSIFIER_MODEL: model.manifest }));
		});
		after(() => server.stop());

		it("reports the model in /api/ready", async () => {
			const res = await new Client(server.url).get("/api/ready");
			assert.equal(res.status, 200);
			assert.equal(res.body.classifier.enabled, true);
			assert.equal(res.body.classifier.model, model.id);
		});

		for (const { photo: name, within, accepts } of EXPECTED) {
			it(`POST /api/classify: ${name} -> ${accepts.length > 1 ? "a cat" : accepts[0]} within the top ${within}`, async () => {
				const res = await alice.upload([photo(name)], {}, "/api/classify");
				assert.equal(res.status, 200, JSON.stringify(res.body));
				assert.equal(res.body.model, model.id);
				assert.equal(typeof res.body.ms, "number");
				const labels: { label: string; score: number }[] = res.body.labels;
				const top = labels.slice(0, within).map(entry => entry.label);
				assert.ok(top.some(label => accepts.includes(label)), `top ${within} of ${name}: ${JSON.stringify(labels)}`);
				for (const entry of labels) assert.ok(entry.score >= 0.2 && entry.score <= 1, `score above the floor: ${JSON.stringify(entry)}`);
				const scores = labels.map(entry => entry.score);
				assert.deepEqual(scores, [...scores].sort((a, b) => b - a), "best first");
			});
		}
	});
}

describe("classifier: tags, retagging and bad input (MobileNetV2)", () => {
	let server: RunningServer;
	let anon: Client;
	let admin: Client;
	let alice: Client;
	let bob: Client;
	const dog = readFileSync(join(SHARED_IMAGES, "dog.jpg"));

	before(async () => {
		({ server, alice } = await startWithModel({ CLASSIFIER_MODEL: MODELS[0]!.manifest, MAX_UPLOAD_BYTES: String(1024 * 1024) }));
		anon = new Client(server.url);
		admin = await anon.login("admin", ADMIN_PASSWORD);
		bob = await anon.register("bob");
	});
	after(() => server.stop());

	const autoTags = (doc: any) => doc.tags.filter((tag: any) => tag.source === "auto");

	it("an upload over REST ends ready with automatic tags from the pipeline, after the user's", async () => {
		const names = EXPECTED.map(entry => entry.photo);
		const upload = await alice.upload(names.map(photo), { tags: "garden, hummingbird", description: "#summer", visibility: "public" });
		assert.equal(upload.status, 201, JSON.stringify(upload.body));
		for (const [index, uploaded] of upload.body.images.entries()) {
			assert.equal(uploaded.status, "processing");
			const doc = await settled(alice, uploaded.id);
			const { within, accepts } = EXPECTED[index]!;
			assert.equal(doc.status, "ready", doc.statusReason);
			assert.equal(doc.statusReason, null);
			assert.deepEqual(doc.renditions.map((r: { name: string }) => r.name), ["240", "720"], "the earlier steps ran");
			const labels = doc.tags.map((tag: any) => `${tag.source}:${tag.label}`);
			assert.deepEqual(labels.slice(0, 3), ["user:garden", "user:hummingbird", "hashtag:summer"], "the user's tags first, untouched");
			const auto = autoTags(doc);
			assert.ok(auto.length > 0, `${doc.filename}: ${JSON.stringify(doc.tags)}`);
			for (const tag of auto) {
				assert.equal(tag.model, "mobilenet_v2_uint8");
				assert.ok(tag.score >= 0.2 && tag.score <= 1);
			}
			// "hummingbird" was the user's already: it stays theirs and is not added twice.
			assert.equal(labels.filter((label: string) => label.endsWith(":hummingbird")).length, 1, JSON.stringify(labels));
			if (doc.filename !== "hummingbird.jpg") {
				const top = auto.slice(0, within).map((tag: any) => tag.label);
				assert.ok(top.some((label: string) => accepts.includes(label)), `${doc.filename}: ${JSON.stringify(auto)}`);
			}
		}
		// Searchable like any tag, by anyone for public images (who, as a guest, is not shown the uploaded file name).
		const dog = upload.body.images.find((image: any) => image.filename === "dog.jpg").id;
		const found = await bob.get("/api/images?tag=golden retriever");
		assert.deepEqual(found.body.items.map((item: any) => item.id), [dog]);
	});

	it("retag replaces only the automatic tags, never the user's", async () => {
		const upload = await alice.upload([photo("dog.jpg")], { tags: "puppy" });
		const id = upload.body.images[0].id;
		const tagged = await settled(alice, id);
		assert.deepEqual(tagged.tags.map((tag: any) => `${tag.source}:${tag.label}`), ["user:puppy", "auto:golden retriever"]);
		// The user now gives the same label: after a retag it is theirs alone, not there twice.
		assert.equal((await alice.patch(`/api/images/${id}`, { tags: ["puppy", "golden retriever"] })).status, 200);
		const before = (await alice.get(`/api/images/${id}`)).body;
		assert.equal(autoTags(before).length, 1, "a user edit keeps the automatic tags");
		const queued = await alice.post(`/api/images/${id}/retag`);
		assert.equal(queued.status, 202, JSON.stringify(queued.body));
		assert.deepEqual(queued.body, { id, queued: true });
		const after = (await eventually(() => alice.get(`/api/images/${id}`), res => res.body.updatedAt !== before.updatedAt)).body;
		assert.deepEqual(after.tags.map((tag: any) => `${tag.source}:${tag.label}`), ["user:puppy", "user:golden retriever"]);
		assert.equal(after.status, "ready");
		// An admin may retag too; the same job twice gives the same tags (idempotent).
		assert.equal((await alice.patch(`/api/images/${id}`, { tags: ["puppy"] })).status, 200);
		const edited = (await alice.get(`/api/images/${id}`)).body;
		await Promise.all([admin.post(`/api/images/${id}/retag`), alice.post(`/api/images/${id}/retag`)]);
		const twice = (await eventually(() => alice.get(`/api/images/${id}`), res => autoTags(res.body).length > 0 && res.body.updatedAt !== edited.updatedAt)).body;
		assert.deepEqual(twice.tags.map((tag: any) => `${tag.source}:${tag.label}`), ["user:puppy", "auto:golden retriever"]);
	});

	it("retag is for the owner or an admin only; unknown images are 404", async () => {
		const upload = await alice.upload([photo("mug-cc0.jpeg")], { visibility: "public" });
		const id = upload.body.images[0].id;
		assert.equal((await bob.post(`/api/images/${id}/retag`)).status, 404, "a public image is not bob's to retag");
		assert.equal((await anon.post(`/api/images/${id}/retag`)).status, 401);
		assert.equal((await alice.post("/api/images/nope/retag")).status, 404);
	});

	it("POST /api/classify needs a user and stores nothing", async () => {
		assert.equal((await anon.upload([photo("dog.jpg")], {}, "/api/classify")).status, 401);
		const before = (await admin.get("/api/images")).body.total;
		assert.equal((await bob.upload([photo("dog.jpg")], {}, "/api/classify")).status, 200);
		assert.equal((await admin.get("/api/images")).body.total, before);
	});

	const refusals: [string, () => Parameters<Client["upload"]>[0], number, string?][] = [
		// A readable header and an end marker get past the upload checks; the pixels do not decode.
		["a JPEG whose pixel data is corrupt", () => [{ name: "bad.jpg", bytes: Buffer.concat([dog.subarray(0, 700), Buffer.alloc(20_000, 0x17), Buffer.from([0xff, 0xd9])]) }], 422, "CORRUPT_IMAGE"],
		["a truncated JPEG", () => [{ name: "cut.jpg", bytes: dog.subarray(0, dog.length >> 1) }], 422, "TRUNCATED_IMAGE"],
		["a text file", () => [{ name: "notes.jpg", bytes: Buffer.from("not an image at all") }], 415],
		["a file over MAX_UPLOAD_BYTES", () => [{ name: "big.jpg", bytes: Buffer.concat([dog, Buffer.alloc(1024 * 1024)]) }], 413],
		["two files", () => [photo("dog.jpg"), photo("mug-cc0.jpeg")], 400, "TOO_MANY_FILES"]
	];
	for (const [what, files, status, type] of refusals) {
		it(`POST /api/classify refuses ${what} with ${status}`, async () => {
			const res = await alice.upload(files(), {}, "/api/classify");
			assert.equal(res.status, status, JSON.stringify(res.body));
			assert.equal(res.body.code, status);
			if (type) assert.equal(res.body.type, type);
		});
	}

	it("POST /api/classify without a multipart body is 400", async () => {
		const res = await alice.post("/api/classify", {});
		assert.equal(res.status, 400);
		assert.equal(res.body.type, "EXPECTED_MULTIPART");
	});
});

describe("classifier: no model configured", () => {
	let server: RunningServer;
	let alice: Client;

	before(async () => {
		server = await startServer();
		alice = await new Client(server.url).register("alice");
	});
	after(() => server.stop());

	it("makes images ready untagged, and answers /api/classify and retag with 503 and a clear message", async () => {
		const res = await alice.upload([photo("dog.jpg")], {}, "/api/classify");
		assert.equal(res.status, 503);
		assert.match(res.body.message, /no classifier model is configured.*CLASSIFIER_MODEL/);
		const upload = await alice.upload([photo("dog.jpg")]);
		assert.equal(upload.status, 201);
		const doc = await settled(alice, upload.body.images[0].id);
		assert.equal(doc.status, "ready", "images become ready untagged");
		assert.equal(doc.statusReason, null);
		assert.deepEqual(doc.tags, []);
		assert.equal((await alice.post(`/api/images/${doc.id}/retag`)).status, 503);
	});

	it("stays ready and says the classifier is disabled", async () => {
		const res = await alice.get("/api/ready");
		assert.equal(res.status, 200);
		assert.equal(res.body.status, "ready");
		assert.equal(res.body.classifier.enabled, false);
		assert.match(res.body.classifier.reason, /CLASSIFIER_MODEL/);
	});
});

describe("classifier: a model that fails at run time", () => {
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-failing-"));
	let server: RunningServer;
	let alice: Client;

	before(async () => {
		writeFileSync(join(dir, "failing.onnx"), failingModel(8));
		writeFileSync(join(dir, "labels.txt"), "anything\n");
		const manifest = {
			id: "failing",
			file: "failing.onnx",
			labels: "labels.txt",
			input: { name: "pixels", type: "float32", layout: "NHWC", size: 8, channels: "RGB", scale: 1, mean: [0, 0, 0], std: [1, 1, 1], resize: "stretch" },
			output: { name: "score", softmax: true }
		};
		writeFileSync(join(dir, "failing.json"), JSON.stringify(manifest));
		({ server, alice } = await startWithModel({ CLASSIFIER_MODEL: join(dir, "failing.json"), CLASSIFIER_RETRIES: "1" }));
	});
	after(async () => {
		await server.stop();
		rmSync(dir, { recursive: true, force: true });
	});

	const runs = async () => (await alice.get("/api/ready")).body.classifier.runs as number;

	it("retries, then makes the image ready without automatic tags, saying why", async () => {
		const before = await runs();
		const upload = await alice.upload([photo("mug-cc0.jpeg")], { tags: "kitchen" });
		const doc = await settled(alice, upload.body.images[0].id);
		assert.equal(doc.status, "ready", "the image stays usable");
		assert.match(doc.statusReason, /^automatic tagging failed: Inference failed: .*Gather/);
		assert.deepEqual(doc.tags, [{ label: "kitchen", source: "user" }]);
		assert.deepEqual(doc.renditions.map((r: { name: string }) => r.name), ["240", "720"]);
		assert.equal(await runs(), before + 2, "one attempt and CLASSIFIER_RETRIES=1 retry");
		const content = await alice.download(`/api/images/${doc.id}/content`);
		assert.equal(content.status, 200);
	});

	it("answers /api/classify with a 500 that leaks nothing", async () => {
		const res = await alice.upload([photo("dog.jpg")], {}, "/api/classify");
		assert.equal(res.status, 500);
		assert.deepEqual(res.body, { name: "InternalServerError", message: "Internal server error", code: 500, type: "INTERNAL_ERROR" });
	});
});

describe("classifier: a manifest that does not fit its model", () => {
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-manifest-"));
	after(() => rmSync(dir, { recursive: true, force: true }));

	/** The shipped MobileNetV2 manifest with `change` applied, written with absolute paths. */
	function manifestWith(change: (manifest: any) => void): string {
		const manifest = JSON.parse(readFileSync(MODELS[0]!.manifest, "utf8"));
		manifest.file = join(MODELS_DIR, manifest.file);
		manifest.labels = join(MODELS_DIR, manifest.labels);
		change(manifest);
		const path = join(dir, `manifest-${Math.random().toString(36).slice(2)}.json`);
		writeFileSync(path, JSON.stringify(manifest));
		return path;
	}

	it("stops the node at start with an error naming the field", async () => {
		const cases: [(manifest: any) => void, RegExp][] = [
			[m => (m.input.name = "pixels"), /input\.name: the model has no input "pixels" \(its inputs: input\)/],
			[m => (m.input.size = 192), /input\.layout\/input\.size: the model's input shape is \[1, 3, 224, 224\], which does not fit NCHW at 192x192/]
		];
		for (const [change, message] of cases) {
			await assert.rejects(startServer({ CLASSIFIER_MODEL: manifestWith(change) }), (err: Error) => {
				assert.match(err.message, /imgmesh exited with 1/);
				assert.match(err.message, message);
				return true;
			});
		}
	});
});
