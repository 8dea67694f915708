/**
 * Garbage collection of bytes (issue 13, D2) on a real cluster, for each blob backend (run by
 * storage-gc.fs.test.ts, storage-gc.gridfs.test.ts and storage-gc.s3.test.ts: moleculer-repl
 * allows one REPL per process): a front node (gateway, images, worker, transform) and a storage
 * node of its own over Redis. Leaks are made the way faults make them: bytes stored for an image
 * that was never inserted (a crash between the two), a second set of renditions under the same
 * references (a worker killed after storing its set: the rerun stores another), a purge from the
 * trash while the storage node is down (it stands, its releases fail), cached variants of an image
 * deleted.
 * The collector is driven through the REPL's `storage gc` and the admin REST API, with a short
 * GC_GRACE_MS; and it must never take what a live image or a put in flight holds.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { ServiceBroker } from "moleculer";
import type { GcReport } from "../../models/storage/gc-report.ts";
import { Client, fileFrom } from "../helpers/client.ts";
import { clusterEnv, startNode, startObserver, startRedis, waitForCluster, waitForRoutes, type RedisServer } from "../helpers/cluster.ts";
import { settled, waitFor } from "../helpers/jobs.ts";
import { hasStackTrace, openRepl, type ReplSession } from "../helpers/repl.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, type RunningServer } from "../helpers/server.ts";

/** Short enough for a test to wait out, far longer than a put and its record take here. */
const GRACE_MS = 3000;
const MAX_BYTES = 1024 * 1024;

interface BlobRef {
	key: string;
	size: number;
}
interface Rendition {
	name: string;
	blob: string;
}
interface ImageDoc {
	id: string;
	blob: string;
	renditions: Rendition[];
}

/** Waits until the clock is past `since` plus the grace period: what was stored by then may be judged. */
async function pastGrace(since: number): Promise<void> {
	await waitFor("the grace period to pass", async () => (Date.now() > since + GRACE_MS + 100 ? true : undefined), GRACE_MS + 5000);
}

/** The servers a blob backend needs, started for the suite. */
export interface BackendServers {
	/** What every node's environment needs to use them (STORAGE, MONGO_URL, …). */
	env: Record<string, string>;
	stop(): Promise<void>;
}

/**
 * The suite on blob backend `backend` (a name for test titles and node ids), whose servers
 * `startBackend` starts; skipped with the reason `skip`.
 */
export function storageGcSuite(backend: string, skip: string | undefined, startBackend: () => Promise<BackendServers>): void {
	describe(`garbage collection of bytes (${backend})`, { skip }, () => {
		let redis: RedisServer;
		let servers: BackendServers | undefined;
		let env: Record<string, string>;
		let front: RunningServer;
		let store: RunningServer;
		let observer: ServiceBroker;
		let repl: ReplSession;
		let admin: Client;
		let alice: Client;

		const startStore = (dataDir?: string) => startNode(env, ["storage"], { nodeId: `store-${backend}`, ...(dataDir ? { dataDir } : {}) });
		const storageUp = () => observer.registry.getServiceList({ onlyAvailable: true }).some(service => service.name === "storage");
		const put = (ref: string, bytes: Buffer, encrypt = false) =>
			observer.call<BlobRef, object>("storage.put", { encrypt, ref, maxBytes: MAX_BYTES }, { stream: Readable.from([bytes]) });
		const refsOf = async (key: string) => (await observer.call<{ refs: number } | null, object>("storage.stat", { key }))?.refs ?? 0;
		const find = (id: string) => observer.call<ImageDoc | null, object>("images.find", { id });
		const blobsOf = (doc: ImageDoc) => [doc.blob, ...doc.renditions.map(r => r.blob)];

		/** `storage gc` typed at the REPL: its output, which never holds a stack trace. */
		async function replGc(options = ""): Promise<string> {
			const { text } = await repl.exec(`storage gc ${options}`.trim());
			assert.equal(hasStackTrace(text), false, text);
			return text;
		}

		/** An image's original and renditions as its owner downloads them. */
		async function contentOf(owner: Client, doc: ImageDoc): Promise<Buffer[]> {
			const paths = [`/api/images/${doc.id}/content`, ...doc.renditions.map(r => `/api/images/${doc.id}/renditions/${r.name}`)];
			return Promise.all(
				paths.map(async path => {
					const res = await owner.download(path);
					assert.equal(res.status, 200, path);
					return res.bytes;
				})
			);
		}

		async function uploadReady(owner: Client, file: string, fields: Record<string, string> = {}): Promise<ImageDoc> {
			const res = await owner.upload([fileFrom(join(SHARED_IMAGES, file))], fields);
			assert.equal(res.status, 201, JSON.stringify(res.body));
			const image = await settled(owner, res.body.images[0].id);
			assert.equal(image.status, "ready");
			return (await find(image.id))!;
		}

		before(async () => {
			redis = await startRedis();
			servers = await startBackend();
			env = { ...clusterEnv(redis), GC_GRACE_MS: String(GRACE_MS), GC_INTERVAL_MS: "0", ...servers.env };
			[front, store] = await Promise.all([startNode(env, ["api", "health", "users", "images", "categories", "worker", "transform"], { nodeId: `front-${backend}` }), startStore()]);
			observer = await startObserver(env);
			await waitForCluster("a storage node", storageUp);
			await waitForRoutes(front.url, ["/api/images", "/api/admin/storage/gc"]);
			repl = await openRepl(observer);
			admin = await new Client(front.url).login("admin", ADMIN_PASSWORD);
			alice = await new Client(front.url).register(`alice-${backend}`);
		});

		after(async () => {
			repl?.close();
			await observer?.stop();
			await Promise.all([front?.stop(), store?.stop()]);
			await Promise.all([redis?.stop(), servers?.stop()]);
		});

		it("reclaims the bytes of an image never inserted once the grace period is over, not before; a dry run only reports them", async () => {
			// What a kill -9 between storing an upload's bytes and inserting its image leaves.
			const orphan = await put("neverInsertedImage0001", randomBytes(50_000));
			const storedAt = Date.now();
			await replGc();
			assert.equal(await refsOf(orphan.key), 1, "inside the grace period: kept");

			await pastGrace(storedAt);
			const dry = await admin.post("/api/admin/storage/gc", { dryRun: true });
			assert.equal(dry.status, 200, JSON.stringify(dry.body));
			const report = dry.body as GcReport;
			assert.equal(report.dryRun, true);
			assert.deepEqual(report.errors, []);
			assert.ok(report.refsReleased >= 1 && report.blobsDeleted >= 1 && report.bytesReclaimed >= orphan.size, JSON.stringify(report));
			assert.equal(await refsOf(orphan.key), 1, "a dry run reclaims nothing");
			const status = await admin.get("/api/admin/storage/gc");
			assert.equal(status.status, 200);
			assert.deepEqual(status.body.lastRun, report);
			assert.equal(status.body.running, null);
			assert.equal((await alice.post("/api/admin/storage/gc", {})).status, 403, "administrators only");
			assert.equal((await alice.get("/api/admin/storage/gc")).status, 403);
			assert.equal((await admin.post("/api/admin/storage/gc", { dryRun: "yes please" })).status, 400);

			const printed = await replGc("--dry-run");
			assert.match(printed, /^Dry run on store-\w+: \d+ reference\(s\) checked, [1-9]\d* released \(would be\)/m);
			const collected = await replGc();
			assert.match(collected, /^Collected on store-\w+: \d+ reference\(s\) checked, [1-9]\d* released, [1-9]\d* blob\(s\) deleted/m);
			assert.equal(await refsOf(orphan.key), 0, "reclaimed");
			assert.equal((await admin.get("/api/admin/storage/gc")).body.lastRun.dryRun, false);
		});

		it("reclaims a second set of renditions, keeps the live set byte-identical, and never takes a live blob or a put racing the sweep", async () => {
			const encrypted = await uploadReady(alice, "hummingbird.jpg", { encrypted: "true" });
			const plain = await uploadReady(alice, "dog.jpg");
			const before = await Promise.all([contentOf(alice, encrypted), contentOf(alice, plain)]);
			// A worker killed after storing its renditions: the rerun stored another set under the
			// same references, and encrypted blobs never share a key.
			const stale = await Promise.all(encrypted.renditions.map(r => put(`${encrypted.id}:${r.name}`, randomBytes(20_000), true)));
			await pastGrace(Date.now());

			// Puts racing the sweep: young, so never collected, whatever the interleaving.
			const racing = Array.from({ length: 8 }, (_, i) => put(`racingUpload${backend}${i}`, randomBytes(10_000 + i)));
			const [printed, fresh] = await Promise.all([replGc(), Promise.all(racing)]);
			assert.match(printed, /^Collected on /m, printed);

			for (const blob of stale) assert.equal(await refsOf(blob.key), 0, `the stale rendition ${blob.key} is reclaimed`);
			for (const doc of [encrypted, plain]) {
				assert.deepEqual(blobsOf((await find(doc.id))!), blobsOf(doc), "the image's blobs are untouched");
				for (const key of blobsOf(doc)) assert.equal(await refsOf(key), 1, `live blob ${key} kept`);
			}
			assert.deepEqual(await Promise.all([contentOf(alice, encrypted), contentOf(alice, plain)]), before, "byte-identical");
			for (const blob of fresh) assert.equal(await refsOf(blob.key), 1, "a fresh reference is kept");
		});

		it("drops the cached variants of a deleted image's original once idle for the grace period, and keeps a live image's", async () => {
			const deleted = await uploadReady(alice, "binoculars-cc0.jpeg", { visibility: "public" });
			const live = await uploadReady(alice, "chelsea.png");
			const variantOf = (doc: ImageDoc) => alice.download(`/api/images/${doc.id}/content?w=64&format=webp`);
			const cache = async () => (await admin.get("/api/transform/stats")).body as { entries: number; hits: number };
			const entriesBefore = (await cache()).entries;
			for (const doc of [deleted, live]) assert.equal((await variantOf(doc)).status, 200);
			// The copy without metadata that guests get of the public one is cached like a variant, and goes like one.
			assert.equal((await new Client(admin.base).download(`/p/${deleted.id}`)).status, 200);
			await waitFor("both variants and the guests' copy cached", async () => ((await cache()).entries === entriesBefore + 3 ? true : undefined));
			const liveVariant = (await variantOf(live)).bytes;
			assert.equal((await alice.delete(`/api/images/${deleted.id}`)).status, 204);
			assert.equal((await alice.delete(`/api/trash/${deleted.id}`)).status, 204);

			await pastGrace(Date.now());
			assert.match(await replGc(), /^Collected on /m);
			assert.equal((await cache()).entries, entriesBefore + 1, "the deleted image's variant and copy are gone");
			const hits = (await cache()).hits;
			const again = await variantOf(live);
			assert.deepEqual(again.bytes, liveVariant, "the live image's variant is served from the cache");
			assert.equal((await cache()).hits, hits + 1);
		});

		it("reclaims the blobs of a purge that could not release them while the storage node was down", async () => {
			const doc = await uploadReady(alice, "mug-cc0.jpeg");
			assert.equal((await alice.delete(`/api/images/${doc.id}`)).status, 204);
			store.process.kill("SIGKILL");
			await store.stop({ keepData: true });
			await waitForCluster("the storage node gone", () => !storageUp());
			// Removing the record is the commit point: the purge stands, the bytes are left to the collector.
			assert.equal((await alice.delete(`/api/trash/${doc.id}`)).status, 204);
			assert.equal((await alice.get(`/api/images/${doc.id}`)).status, 404);

			store = await startStore(store.dataDir);
			await waitForCluster("the storage node back", storageUp);
			for (const key of blobsOf(doc)) assert.equal(await refsOf(key), 1, `${key} is still held: its release failed`);
			await pastGrace(Date.now());
			assert.match(await replGc(), /^Collected on /m);
			for (const key of blobsOf(doc)) assert.equal(await refsOf(key), 0, `${key} of the deleted image is reclaimed`);
		});
	});
}
