/**
 * Refused uploads when storage is another node: the bytes of each file travel as a stream call
 * over Redis, and a refusal must still end every one of them on the storage node (no temp file,
 * no descriptor left open there) and be answered at once.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client } from "../helpers/client.ts";
import { clusterEnv, redisSkipReason, startNode, startRedis, waitForRoutes, type RedisServer } from "../helpers/cluster.ts";
import { blobFiles, multipart, openFds, type Part, postMultipart, settledFds, tempFiles, tinyJpeg, within } from "../helpers/hostile-uploads.ts";
import type { RunningServer } from "../helpers/server.ts";

/** Far above how long a refusal may take: a request still open at ANSWER_BOUND_MS has hung. */
const REQUEST_TIMEOUT_MS = 60_000;
const ANSWER_BOUND_MS = 15_000;

describe("refused uploads with storage on its own node", { skip: redisSkipReason(), timeout: 180_000 }, () => {
	let redis: RedisServer;
	let storage: RunningServer;
	let images: RunningServer;
	let gateway: RunningServer;
	let token: string;
	let jpeg: Buffer;
	const image = (filename: string): Part => ({ field: "file", filename, bytes: jpeg });

	before(async () => {
		jpeg = await tinyJpeg();
		redis = await startRedis();
		const env = { ...clusterEnv(redis), MAX_UPLOAD_FILES: "3", REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) };
		[storage, images, gateway] = await Promise.all([
			startNode(env, ["storage"], { nodeId: "storage-1" }),
			startNode(env, ["images", "categories", "users"], { nodeId: "images-1" }),
			startNode(env, ["api", "health"], { nodeId: "gateway-1" })
		]);
		await waitForRoutes(gateway.url);
		token = (await new Client(gateway.url).register("mallory")).token!;
	});
	after(async () => {
		await Promise.allSettled([gateway?.stop(), images?.stop(), storage?.stop()]);
		await redis?.stop();
	});

	const hostile: [string, () => Buffer, string][] = [
		["more files than MAX_UPLOAD_FILES", () => multipart(Array.from({ length: 12 }, (_, i) => image(`dog${i}.jpg`))), "TOO_MANY_FILES"],
		["a text field after the files", () => multipart([image("a.jpg"), image("b.jpg"), { field: "visibility", value: "public" }]), "FIELD_AFTER_FILE"],
		["a file that is not an image", () => multipart([{ field: "file", filename: "x.jpg", bytes: Buffer.from("not an image") }]), "UNSUPPORTED_MEDIA_TYPE"]
	];

	for (const [label, build, type] of hostile) {
		it(`answers at once for ${label}, and the storage node keeps nothing of it`, async () => {
			const baseline = openFds(storage);
			const answers = await within(ANSWER_BOUND_MS, label, Promise.all(Array.from({ length: 5 }, () => postMultipart(`${gateway.url}/api/images`, token, build()))));
			for (const answer of answers) assert.equal(answer.body?.type, type, JSON.stringify(answer.body));
			assert.ok((await settledFds(storage, baseline)) <= baseline, `storage node descriptors: ${openFds(storage)} after, ${baseline} before`);
			assert.deepEqual(tempFiles(storage), [], "no temp file left in blobs/tmp");
			assert.deepEqual(blobFiles(storage), [], "no blob left that no image references");
		});
	}
});
