/**
 * Refused uploads are answered at once and leave nothing behind: no open file descriptor in the
 * server, no temp file in blobs/tmp, no stored blob. Repeated by one client, a leak would exhaust
 * the descriptor limit and fail every later upload (EMFILE).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client } from "../helpers/client.ts";
import { blobFiles, multipart, openFds, type Part, postMultipart, settledFds, sleep, tempFiles, tinyJpeg, within } from "../helpers/hostile-uploads.ts";
import { startServer, type RunningServer } from "../helpers/server.ts";

const MAX_UPLOAD_FILES = 3;
/** Far above how long a refusal may take: a request still open at ANSWER_BOUND_MS has hung. */
const REQUEST_TIMEOUT_MS = 60_000;
const ANSWER_BOUND_MS = 15_000;

describe("refused uploads leak nothing", () => {
	let server: RunningServer;
	let token: string;
	let jpeg: Buffer;
	const image = (filename?: string, type?: string): Part => ({ field: "file", filename, type, bytes: jpeg });

	async function untilProcessed(url: string): Promise<void> {
		for (let waited = 0; waited < 20_000; waited += 100) {
			const doc = (await (await fetch(url, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string };
			if (doc.status !== "processing") return;
			await sleep(100);
		}
		throw new Error(`${url} still processing after 20 s`);
	}

	before(async () => {
		jpeg = await tinyJpeg();
		server = await startServer({ MAX_UPLOAD_FILES: String(MAX_UPLOAD_FILES), REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) });
		token = (await new Client(server.url).register("mallory")).token!;
		// Once through multipart, the sniffer and storage, so lazily opened files count in the baseline.
		await postMultipart(`${server.url}/api/images`, token, multipart([{ field: "file", filename: "x.jpg", bytes: Buffer.from("not an image") }]));
	});
	after(() => server.stop());

	const hostile: [string, () => Buffer, string][] = [
		["more files than MAX_UPLOAD_FILES", () => multipart(Array.from({ length: 12 }, (_, i) => image(`dog${i}.jpg`))), "TOO_MANY_FILES"],
		[
			"more files than MAX_UPLOAD_FILES, with fields first",
			() => multipart([{ field: "name", value: "x" }, { field: "encrypted", value: "true" }, ...Array.from({ length: 12 }, (_, i) => image(`dog${i}.jpg`))]),
			"TOO_MANY_FILES"
		],
		["a text field after the files", () => multipart([image("a.jpg"), image("b.jpg"), { field: "visibility", value: "public" }]), "FIELD_AFTER_FILE"],
		["a file part without a filename", () => multipart([image(undefined, "application/octet-stream")]), ""]
	];

	for (const [label, build, type] of hostile) {
		it(`answers at once for ${label}, and frees every descriptor, temp file and blob`, async () => {
			const baseline = openFds(server);
			const url = `${server.url}/api/images`;
			const answers = await within(ANSWER_BOUND_MS, label, Promise.all(Array.from({ length: 5 }, () => postMultipart(url, token, build()))));
			for (const answer of answers) {
				if (type) {
					assert.equal(answer.status, 400, JSON.stringify(answer.body));
					assert.equal(answer.body.type, type);
				} else {
					// Nothing wrong with the image: it is stored under a file name of its own.
					assert.equal(answer.status, 201, JSON.stringify(answer.body));
				}
			}
			const stored = answers.flatMap(answer => (answer.status === 201 ? answer.body.images : []));
			for (const doc of stored) {
				// The pipeline's renditions are stored in the background: delete once they are in.
				await untilProcessed(`${url}/${doc.id}`);
				const res = await fetch(`${url}/${doc.id}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
				assert.equal(res.status, 204);
				// Out of the trash too, so its bytes go.
				const purged = await fetch(`${server.url}/api/trash/${doc.id}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
				assert.equal(purged.status, 204);
			}
			assert.ok((await settledFds(server, baseline)) <= baseline, `open descriptors: ${openFds(server)} after, ${baseline} before`);
			assert.deepEqual(tempFiles(server), [], "no temp file left in blobs/tmp");
			assert.deepEqual(blobFiles(server), [], "no blob left that no image references");
		});
	}
});
