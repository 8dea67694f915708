/**
 * S3_PRESIGNED_REDIRECT on a real node and SeaweedFS: a plain public image's original, stored
 * renditions and cached variants answer 302 to a presigned URL of the bucket that gives the same
 * bytes and headers;
 * an encrypted or a private image, and any HEAD, is always served by imgmesh itself.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client, fileFrom } from "../helpers/client.ts";
import { settled, waitFor } from "../helpers/jobs.ts";
import { s3SkipReason, startS3, type TestS3 } from "../helpers/s3.ts";
import { ADMIN_PASSWORD, type RunningServer, SHARED_IMAGES, startServer } from "../helpers/server.ts";

interface Answer {
	status: number;
	headers: Headers;
	bytes: Buffer;
}

/** One request, redirects not followed: what imgmesh itself answered. */
async function request(url: string, headers: Record<string, string> = {}, method = "GET"): Promise<Answer> {
	const res = await fetch(url, { method, headers, redirect: "manual" });
	return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

describe("presigned redirects to the bucket (SeaweedFS)", { skip: s3SkipReason() }, () => {
	let s3: TestS3;
	let node: RunningServer;
	let alice: Client;
	const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));

	before(async () => {
		s3 = await startS3();
		node = await startServer({ ...s3.nodeEnv(s3.location()), S3_PRESIGNED_REDIRECT: "true", S3_PRESIGNED_TTL_SECONDS: "60" });
		alice = await new Client(node.url).register("alice");
	});
	after(async () => {
		await node?.stop();
		await s3?.stop();
	});

	const asAlice = () => ({ authorization: `Bearer ${alice.token}` });

	async function uploadReady(fields: Record<string, string>): Promise<string> {
		const res = await alice.upload([dog], fields);
		assert.equal(res.status, 201, JSON.stringify(res.body));
		const id = res.body.images[0].id as string;
		assert.equal((await settled(alice, id)).status, "ready");
		return id;
	}

	/** Asserts a 302 to the bucket and returns what its URL answers. */
	async function followToBucket(answer: Answer, headers: Record<string, string> = {}): Promise<Answer> {
		assert.equal(answer.status, 302);
		assert.equal(answer.headers.get("cache-control"), "no-store", "the redirect outlives no URL");
		const location = answer.headers.get("location")!;
		assert.ok(location.startsWith(`${s3.endpoint}/${s3.bucket}/`), location);
		return request(location, headers);
	}

	it("sends a plain public original and rendition to the bucket, which serves their bytes and headers", async () => {
		const id = await uploadReady({ visibility: "public" });
		// Guests get the stripped copy (the same bytes: dog.jpg has no metadata) under the image's id;
		// the owner's answers, the original, are for no shared cache.
		for (const [path, headers, name, cache] of [
			[`/p/${id}`, {}, id, "public"],
			[`/api/images/${id}/content`, asAlice(), "dog", "private"]
		] as const) {
			const fetched = await followToBucket(await request(node.url + path, headers));
			assert.equal(fetched.status, 200);
			assert.deepEqual(fetched.bytes, Buffer.from(dog.bytes));
			assert.equal(fetched.headers.get("content-type"), "image/jpeg");
			assert.equal(fetched.headers.get("content-disposition"), `inline; filename*=UTF-8''${name}.jpg`);
			assert.equal(fetched.headers.get("cache-control"), `${cache}, max-age=3600`);
		}
		const part = await followToBucket(await request(`${node.url}/p/${id}`, { range: "bytes=100-199" }), { range: "bytes=100-199" });
		assert.equal(part.status, 206, "the bucket serves the range the client asks it for");
		assert.deepEqual(part.bytes, Buffer.from(dog.bytes.subarray(100, 200)));
		const head = await request(`${node.url}/p/${id}`, {}, "HEAD");
		assert.equal(head.status, 200, "HEAD is answered here: the URL is signed for GET only");
		assert.equal(head.headers.get("location"), null);

		// The rendition as imgmesh streams it (private: no redirect), then as the bucket serves it.
		assert.equal((await alice.patch(`/api/images/${id}`, { visibility: "private" })).status, 200);
		const streamed = await request(`${node.url}/api/images/${id}/thumbnail`, asAlice());
		assert.equal(streamed.status, 200);
		assert.equal((await alice.patch(`/api/images/${id}`, { visibility: "public" })).status, 200);
		const thumbnail = await followToBucket(await request(`${node.url}/p/${id}/thumbnail`));
		assert.equal(thumbnail.status, 200);
		assert.deepEqual(thumbnail.bytes, streamed.bytes);
		assert.equal(thumbnail.headers.get("content-type"), streamed.headers.get("content-type"));
	});

	it("sends a plain public image's cached variant to the bucket once it is cached; renders the first itself", async () => {
		const id = await uploadReady({ visibility: "public" });
		const path = `${node.url}/p/${id}?preset=small`;
		const rendered = await request(path);
		assert.equal(rendered.status, 200, "not cached yet: rendered and streamed here");
		// Storing the render in the cache does not hold up its answer: a later request finds it there.
		const redirected = await waitFor("the variant cached", async () => {
			const answer = await request(path);
			return answer.status === 302 ? answer : undefined;
		});
		const fetched = await followToBucket(redirected);
		assert.equal(fetched.status, 200);
		assert.deepEqual(fetched.bytes, rendered.bytes);
		assert.equal(fetched.headers.get("content-type"), "image/jpeg", "the preset's format=auto for a client that names no format");

		const encrypted = await uploadReady({ visibility: "public", encrypted: "true" });
		const secretPath = `${node.url}/p/${encrypted}?preset=small`;
		assert.equal((await request(secretPath)).status, 200);
		// The encrypted variant, once cached, is read from the cache and still streamed here.
		const stats = async () => (await (await new Client(node.url).login("admin", ADMIN_PASSWORD)).get("/api/transform/stats")).body as { hits: number };
		await waitFor("the encrypted variant cached", async () => {
			const hits = (await stats()).hits;
			const answer = await request(secretPath);
			assert.equal(answer.status, 200, "an encrypted variant is never redirected");
			assert.equal(answer.headers.get("location"), null);
			return (await stats()).hits > hits ? true : undefined;
		});
	});

	it("never redirects an encrypted or a private image: imgmesh serves their bytes", async () => {
		const encrypted = await uploadReady({ visibility: "public", encrypted: "true" });
		const secret = await uploadReady({ visibility: "private" });
		for (const [path, headers] of [
			[`/p/${encrypted}`, {}],
			[`/p/${encrypted}/thumbnail`, {}],
			[`/api/images/${encrypted}/content`, asAlice()],
			[`/api/images/${secret}/content`, asAlice()],
			[`/api/images/${secret}/thumbnail`, asAlice()]
		] as const) {
			const answer = await request(node.url + path, headers);
			assert.equal(answer.status, 200, path);
			assert.equal(answer.headers.get("location"), null, path);
			if (path.endsWith("/content") || path === `/p/${encrypted}`) assert.deepEqual(answer.bytes, Buffer.from(dog.bytes), path);
		}
	});
});
