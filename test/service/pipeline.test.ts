/**
 * The ingest pipeline in embedded mode, over REST on a real node: every upload becomes `ready`
 * with its metadata and 240/720 WebP renditions (real sharp, the shared photos and generated
 * camera JPEGs), renditions hold no GPS and are encrypted when the original is, a broken image
 * becomes `failed` with a reason, deletion releases the renditions, and images left
 * `processing` by a restart are picked up again.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { thumbHashToRGBA } from "thumbhash";
import { renderImage } from "../../models/pipeline/renditions.ts";
import { Client, fileFrom } from "../helpers/client.ts";
import { cameraJpeg, findFilesContaining, poisonJpeg, settled } from "../helpers/jobs.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const RENDER = { maxInputPixels: 100_000_000 };
const SQUEEZENET = fileURLToPath(new URL("../../config/models/squeezenet-fp16.json", import.meta.url));

/** 64 bytes from the middle of a buffer: found in a file only if the file holds these bytes in plaintext. */
const sample = (bytes: Buffer) => bytes.subarray(bytes.length >> 1, (bytes.length >> 1) + 64);

/**
 * An image's ThumbHash placeholder is base64 that decodes to a small picture of the image's shape
 * (ThumbHash stores the aspect ratio coarsely: within 15 %).
 */
function assertThumbHash(thumbhash: unknown, width: number, height: number): void {
	assert.equal(typeof thumbhash, "string");
	assert.match(thumbhash as string, /^[A-Za-z0-9+/]{16,}={0,2}$/);
	const placeholder = thumbHashToRGBA(Buffer.from(thumbhash as string, "base64"));
	assert.equal(placeholder.rgba.length, placeholder.w * placeholder.h * 4);
	const ratio = placeholder.w / placeholder.h;
	assert.ok(Math.abs(ratio / (width / height) - 1) < 0.15, `placeholder ${placeholder.w}x${placeholder.h} for a ${width}x${height} image`);
}

describe("ingest pipeline (embedded)", () => {
	let server: RunningServer;
	let alice: Client;

	before(async () => {
		server = await startServer();
		alice = await new Client(server.url).register("alice");
	});
	after(() => server.stop());

	const blobs = () => join(server.dataDir, "blobs");

	it("makes every shared photo ready with metadata and renditions of the right sizes, original byte-exact", async () => {
		const names = ["dog.jpg", "chelsea.png", "kitten_224.png", "mug-cc0.jpeg"];
		const res = await alice.upload(names.map(name => fileFrom(join(SHARED_IMAGES, name))));
		assert.equal(res.status, 201);
		for (const uploaded of res.body.images) {
			const doc = await settled(alice, uploaded.id);
			const original = readFileSync(join(SHARED_IMAGES, uploaded.filename));
			const { width, height } = await sharp(original).metadata();
			assert.equal(doc.status, "ready", doc.statusReason);
			assert.equal(doc.statusReason, null);
			assert.deepEqual([doc.metadata.width, doc.metadata.height, doc.metadata.space], [width, height, "srgb"]);
			assertThumbHash(doc.metadata.thumbhash, width!, height!);
			assert.deepEqual(doc.renditions.map((r: { name: string }) => r.name), ["240", "720"]);
			for (const rendition of doc.renditions) {
				assert.equal(rendition.blob, undefined, "storage keys stay internal");
				assert.equal(rendition.format, "webp");
				// Shortest edge = the rendition's size, or the original's when smaller (never upscaled).
				assert.equal(Math.min(rendition.width, rendition.height), Math.min(Number(rendition.name), width!, height!));
				assert.ok(Math.abs(rendition.width / rendition.height - width! / height!) < 0.01, "aspect ratio kept");
			}
			const download = await alice.download(`/api/images/${uploaded.id}/content`);
			assert.ok(download.bytes.equals(original), "the original is served byte-exact");
		}
	});

	it("auto-orients, reads camera EXIF and keeps GPS out of every rendition", async () => {
		// Stored 1600x1000 with orientation 6 (rotate 90°): the upright image is 1000x1600.
		const photo = await cameraJpeg(1600, 1000, 6);
		const res = await alice.upload([{ name: "camera.jpg", bytes: photo }]);
		const doc = await settled(alice, res.body.images[0].id);
		assert.equal(doc.status, "ready");
		const { thumbhash, ...metadata } = doc.metadata;
		assertThumbHash(thumbhash, 1000, 1600);
		assert.deepEqual(metadata, {
			width: 1000,
			height: 1600,
			format: "jpeg",
			orientation: 6,
			space: "srgb",
			hasAlpha: false,
			density: null,
			cameraMake: "TestCam",
			cameraModel: "Model 7",
			takenAt: "2023-04-05T06:07:08",
			hasGps: true
		});
		assert.deepEqual(
			doc.renditions.map((r: { width: number; height: number }) => [r.width, r.height]),
			[[240, 384], [720, 1152]]
		);
		// The renditions the worker stored are these bytes (sharp is deterministic): plain on disk here,
		// and without any EXIF block.
		const rendered = await renderImage(photo, RENDER);
		for (const rendition of rendered.renditions) {
			assert.equal(findFilesContaining(blobs(), sample(rendition.bytes)).length, 1, `rendition ${rendition.name} is stored once`);
			const meta = await sharp(rendition.bytes).metadata();
			assert.equal(meta.exif, undefined, "no EXIF, so no GPS, in a rendition");
			assert.equal(meta.orientation, undefined);
		}
		assert.ok((await alice.download(`/api/images/${doc.id}/content`)).bytes.equals(photo), "the original keeps its EXIF");
	});

	it("encrypts the renditions of an encrypted image, and releases them when it is deleted", async () => {
		const photo = await cameraJpeg(900, 600);
		const rendered = await renderImage(photo, RENDER);
		const res = await alice.upload([{ name: "secret.jpg", bytes: photo }], { encrypted: "true" });
		const doc = await settled(alice, res.body.images[0].id);
		assert.equal(doc.status, "ready");
		assert.equal(doc.renditions.length, 2);
		for (const rendition of rendered.renditions) {
			assert.deepEqual(findFilesContaining(blobs(), sample(rendition.bytes)), [], "no plaintext rendition on disk");
		}
		// The same photo in plain: its renditions are on disk until the image goes.
		const plain = await settled(alice, (await alice.upload([{ name: "plain.jpg", bytes: photo }])).body.images[0].id);
		const needle = sample(rendered.renditions[1]!.bytes);
		assert.equal(findFilesContaining(blobs(), needle).length, 1);
		assert.equal((await alice.delete(`/api/images/${plain.id}`)).status, 204);
		assert.equal(findFilesContaining(blobs(), needle).length, 1, "kept while the image is in the trash");
		assert.equal((await alice.delete(`/api/trash/${plain.id}`)).status, 204);
		assert.deepEqual(findFilesContaining(blobs(), needle), [], "renditions are released with the image");
	});

	it("fails a corrupt image with the decoder's reason and keeps going", async () => {
		const good = readFileSync(join(SHARED_IMAGES, "dog.jpg"));
		const corrupt = poisonJpeg(good);
		const res = await alice.upload([
			{ name: "corrupt.jpg", bytes: corrupt },
			{ name: "dog.jpg", bytes: good }
		]);
		assert.equal(res.status, 201, JSON.stringify(res.body));
		const [broken, fine] = await Promise.all(res.body.images.map((image: { id: string }) => settled(alice, image.id)));
		assert.equal(broken.status, "failed");
		assert.match(broken.statusReason, /jpeg|corrupt|premature|marker/i);
		assert.deepEqual(broken.renditions, []);
		assert.equal(fine.status, "ready");
		assert.ok((await alice.download(`/api/images/${broken.id}/content`)).bytes.equals(corrupt), "the failed original is still there");
	});
});

describe("reconciler (embedded)", () => {
	it("processes images a restart left in processing", async () => {
		// A node without the worker: uploads stay processing, as when a node dies before its queue drains.
		const first = await startServer({ SERVICES: "api,images,users,categories,storage,health" });
		let server: RunningServer | undefined;
		try {
			const alice = await new Client(first.url).register("alice");
			const res = await alice.upload([fileFrom(join(SHARED_IMAGES, "hummingbird.jpg"))]);
			const id = res.body.images[0].id;
			assert.equal((await alice.get(`/api/images/${id}`)).body.status, "processing");
			await first.stop({ keepData: true });

			server = await startServer({}, { dataDir: first.dataDir });
			const doc = await settled(new Client(server.url, alice.token), id);
			assert.equal(doc.status, "ready");
			assert.equal(doc.renditions.length, 2);
		} finally {
			await (server ?? first).stop();
		}
	});
});

describe("reconciler (embedded), on a node that takes seconds to start", () => {
	it("enqueues the images a restart left in processing only once the worker listens, so none waits for the stuck timeout", async () => {
		const first = await startServer({ SERVICES: "api,images,users,categories,storage,health" });
		let server: RunningServer | undefined;
		try {
			const alice = await new Client(first.url).register("alice");
			const id = (await alice.upload([fileFrom(join(SHARED_IMAGES, "mug-cc0.jpeg"))])).body.images[0].id;
			await first.stop({ keepData: true });

			// Loading a classifier model keeps the broker starting for a while after the images
			// service is up: the reconciler's first pass used to run then, before the worker's channel
			// was subscribed, and the in-process queue dropped its jobs (the next pass only looks at
			// images stuck for RECONCILE_STUCK_AFTER_MS, ten minutes).
			server = await startServer({ CLASSIFIER_MODEL: SQUEEZENET }, { dataDir: first.dataDir });
			const doc = await settled(new Client(server.url, alice.token), id);
			assert.equal(doc.status, "ready");
			assert.equal(doc.renditions.length, 2);
		} finally {
			await (server ?? first).stop();
		}
	});
});

describe("renditions", () => {
	it("serves a thumbnail made on the spot with the same bytes and ETag as the one the pipeline stores later", async () => {
		// No worker at first: the image stays processing, so its thumbnails are made on request.
		const first = await startServer({ SERVICES: "api,images,users,categories,storage,transform,health" });
		let server: RunningServer | undefined;
		try {
			const alice = await new Client(first.url).register("alice");
			const id = (await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))])).body.images[0].id;
			const onTheSpot = await Promise.all(["240", "720"].map(size => alice.download(`/api/images/${id}/thumbnail?size=${size}`)));
			assert.equal((await alice.get(`/api/images/${id}`)).body.renditions.length, 0, "nothing was stored yet");
			await first.stop({ keepData: true });

			server = await startServer({}, { dataDir: first.dataDir });
			const owner = new Client(server.url, alice.token);
			assert.equal((await settled(owner, id)).renditions.length, 2);
			for (const [index, size] of ["240", "720"].entries()) {
				const stored = await owner.download(`/api/images/${id}/thumbnail?size=${size}`);
				assert.equal(stored.status, 200);
				assert.equal(stored.headers.get("etag"), onTheSpot[index]!.headers.get("etag"), `ETag of the ${size} thumbnail`);
				assert.ok(stored.bytes.equals(onTheSpot[index]!.bytes), `bytes of the ${size} thumbnail`);
				const revalidated = await owner.download(`/api/images/${id}/thumbnail?size=${size}`, { "if-none-match": onTheSpot[index]!.headers.get("etag")! });
				assert.equal(revalidated.status, 304, "a client's copy made on the spot stays valid");
			}
		} finally {
			await (server ?? first).stop();
		}
	});
});
