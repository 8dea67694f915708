/**
 * `POST /api/admin/storage/migrate {to}` on a real node, from fs and from GridFS (FerretDB) into
 * SeaweedFS, and back from SeaweedFS to fs, on a library of a plain and an encrypted image with
 * their renditions and a cached variant each: a dry run copies nothing; a migration killed
 * half-way (SIGKILL) resumes on the next run, which skips what was copied; then the node restarted
 * with STORAGE=<to> on the same DATA_DIR serves every original and rendition byte-identical, and
 * the variants from its cache.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { Client, fileFrom } from "../helpers/client.ts";
import { type FerretDb, ferretDbSkipReason, startFerretDb } from "../helpers/ferretdb.ts";
import { blobFileCount, settled, waitFor } from "../helpers/jobs.ts";
import { s3SkipReason, startS3, type TestS3 } from "../helpers/s3.ts";
import { ADMIN_PASSWORD, type RunningServer, SHARED_IMAGES, startServer } from "../helpers/server.ts";

/** Every download an image answers that the migration must keep: original, renditions, a variant. */
const PATHS = ["/content", "/renditions/240", "/renditions/720", "/content?w=100&format=webp"];
/** Slow enough that a kill lands between the first copy and the last. */
const SLOW_BYTES_PER_SECOND = 32 * 1024;

type Backend = "fs" | "gridfs" | "s3";

interface Source {
	env: Record<string, string>;
	stop(): Promise<void>;
}

/** What a migration from `from` to `to` is tested on; SeaweedFS runs for every one (the source or the target). */
interface Migration {
	from: Backend;
	to: Backend;
	skip: string | false;
	/** Starts what the source needs besides SeaweedFS (FerretDB for GridFS). */
	startSource(): Promise<Source>;
}

function migrationSuite({ from, to, skip, startSource }: Migration): void {
	describe(`storage migrate from ${from} to ${to}`, { skip: s3SkipReason() || skip }, () => {
		let s3: TestS3;
		let source: Source;
		let prefix: string;
		let env: Record<string, string>;
		let node: RunningServer;
		let alice: Client;
		const expected = new Map<string, Buffer>();

		/** How many blobs the target physically holds: objects under the prefix, or blob files. */
		const objectCount = async () => {
			if (to === "fs") return blobFileCount(node.dataDir);
			const client = s3.client();
			try {
				return ((await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }))).Contents ?? []).length;
			} finally {
				client.destroy();
			}
		};
		const admin = () => new Client(node.url).login("admin", ADMIN_PASSWORD);

		before(async () => {
			[s3, source] = await Promise.all([startS3(), startSource()]);
			const location = s3.location();
			prefix = location.prefix;
			// With another STORAGE, the S3_* variables name the target; STORAGE still says where the blobs are now.
			env = { ...s3.nodeEnv(location), ...source.env, STORAGE: from, JWT_SECRET: randomBytes(32).toString("hex"), STORAGE_MASTER_KEY: randomBytes(32).toString("hex") };
			node = await startServer(env);
			alice = await new Client(node.url).register("alice");
			const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));
			const plain = await alice.upload([dog], { visibility: "public" });
			const secret = await alice.upload([dog], { name: "secret dog", encrypted: "true" });
			for (const answer of [plain, secret]) {
				assert.equal(answer.status, 201, JSON.stringify(answer.body));
				const id = answer.body.images[0].id;
				assert.equal((await settled(alice, id)).status, "ready");
				for (const path of PATHS) {
					const download = await alice.download(`/api/images/${id}${path}`);
					assert.equal(download.status, 200, `${path}: ${download.status}`);
					expected.set(`/api/images/${id}${path}`, download.bytes);
				}
			}
			const boss = await admin();
			await waitFor("both variants cached", async () => ((await boss.get("/api/transform/stats")).body.entries >= 2 ? true : undefined));
		});
		after(async () => {
			await node?.stop();
			await Promise.all([s3?.stop(), source?.stop()]);
		});

		it("a dry run counts every blob and copies nothing", async () => {
			const dry = await (await admin()).post("/api/admin/storage/migrate", { to, dryRun: true });
			assert.equal(dry.status, 200, JSON.stringify(dry.body));
			// Two originals (the same bytes, but one encrypted), their 240 and 720 renditions, two variants.
			assert.ok(dry.body.copied >= 6, JSON.stringify(dry.body));
			assert.equal(dry.body.copied, dry.body.blobs);
			assert.deepEqual(dry.body.failed, []);
			assert.equal(await objectCount(), 0, "nothing on the target");
		});

		it("a migration killed half-way resumes without copying anything twice", async () => {
			const boss = await admin();
			// Not awaited: the node is killed under it.
			boss.post("/api/admin/storage/migrate", { to, bytesPerSecond: SLOW_BYTES_PER_SECOND }).catch(() => undefined);
			await waitFor("the first blob copied", async () => ((await boss.get("/api/admin/storage/migrate")).body.running?.copied >= 1 ? true : undefined));
			const exited = new Promise(resolve => node.process.once("exit", resolve));
			node.process.kill("SIGKILL");
			await exited;
			const copiedBeforeKill = await objectCount();

			node = await startServer(env, { dataDir: node.dataDir });
			const resumed = await (await admin()).post("/api/admin/storage/migrate", { to });
			assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
			const report = resumed.body;
			assert.deepEqual([report.failed, report.errors], [[], []]);
			assert.ok(report.skipped >= 1, `what the killed run copied is skipped: ${JSON.stringify(report)}`);
			assert.equal(report.copied + report.skipped, report.blobs);
			// One copy in flight at the kill may have left an object no index entry points at (S3's
			// orphan sweep removes it; fs copies in a temp file, emptied at start): never more.
			const objects = await objectCount();
			assert.ok(objects >= report.blobs && objects <= report.blobs + 1, `${objects} objects for ${report.blobs} blobs (${copiedBeforeKill} before the kill)`);

			const again = await (await admin()).post("/api/admin/storage/migrate", { to });
			assert.deepEqual([again.body.copied, again.body.skipped], [0, report.blobs], "a third run copies nothing");
			assert.equal(await objectCount(), objects);
		});

		it(`after a restart on STORAGE=${to}, every image and rendition is byte-identical and the variants come from the cache`, async () => {
			await node.stop({ keepData: true });
			node = await startServer({ ...env, STORAGE: to }, { dataDir: node.dataDir });
			const objects = await objectCount();
			const reader = new Client(node.url).withToken(alice.token);
			for (const [path, bytes] of expected) {
				const download = await reader.download(path);
				assert.equal(download.status, 200, `${path}: ${download.status}`);
				assert.ok(download.bytes.equals(bytes), `${path} is byte-identical`);
			}
			const stats = (await (await admin()).get("/api/transform/stats")).body;
			assert.equal(stats.renders, 0, "no variant rendered again");
			assert.ok(stats.hits >= 2, JSON.stringify(stats));
			assert.equal(await objectCount(), objects, "nothing new stored");
		});
	});
}

const nothingElse = async (): Promise<Source> => ({ env: {}, stop: async () => {} });

migrationSuite({ from: "fs", to: "s3", skip: false, startSource: nothingElse });

migrationSuite({
	from: "gridfs",
	to: "s3",
	skip: ferretDbSkipReason(),
	startSource: async () => {
		const mongo: FerretDb = await startFerretDb();
		return { env: { MONGO_URL: mongo.databaseUrl() }, stop: () => mongo.stop() };
	}
});

migrationSuite({ from: "s3", to: "fs", skip: false, startSource: nothingElse });
