/**
 * The migration between blob stores (models/storage/blob-migrator.ts) from one real FsBlobStore to
 * another: every blob with every reference and its time, a blob corrupt at the source listed and
 * skipped while the others go on, a second run that copies nothing, a dry run that writes nothing,
 * and the rate limit.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { afterEach, beforeEach, describe, it } from "node:test";
import { pacer } from "../../../models/storage/blob-support.ts";
import { migrateBlobs } from "../../../models/storage/blob-migrator.ts";
import { Keyring } from "../../../models/storage/envelope-crypto.ts";
import { FsBlobStore } from "../../../models/storage/fs-blob-store.ts";
import { type MigrationReport, newMigrationReport } from "../../../models/storage/migration-report.ts";

const LIMIT = 1024 * 1024;
const EVERY_REF = new Date(8.64e15);
const FAST = { batch: 2, pace: async () => {} };

describe("blob migration", () => {
	let dir: string;
	let source: FsBlobStore;
	let target: FsBlobStore;
	const put = (ref: string, bytes: Buffer, encrypt = false) => source.put(Readable.from([bytes]), { encrypt, ref, maxBytes: LIMIT });
	const migrate = async (dryRun = false, options: { batch: number; pace(bytes: number): Promise<void> } = FAST): Promise<MigrationReport> => {
		const report = newMigrationReport("fs", dryRun);
		await migrateBlobs(source, target, { dryRun, ...options }, report);
		return report;
	};
	const refsOf = async (store: FsBlobStore) =>
		(await store.listRefs({ olderThan: EVERY_REF, limit: 100 })).refs.map(({ key, ref, addedAt }) => ({ key, ref, addedAt: addedAt.getTime() }));

	beforeEach(() => {
		dir = mkdtempSync(join(tmpdir(), "imgmesh-migrate-"));
		const keyring = new Keyring(randomBytes(32));
		source = new FsBlobStore({ root: join(dir, "source"), keyring });
		target = new FsBlobStore({ root: join(dir, "target"), keyring });
	});
	afterEach(async () => {
		await Promise.all([source.close(), target.close()]);
		rmSync(dir, { recursive: true, force: true });
	});

	it("copies every blob under its key with its references and their times; a second run copies nothing", async () => {
		const shared = randomBytes(5000);
		const plain = await put("image-1", shared);
		await put("image-2", shared);
		const secret = await put("image-3", randomBytes(7000), true);
		const report = await migrate();
		assert.deepEqual([report.blobs, report.copied, report.skipped, report.bytesCopied, report.failed], [2, 2, 0, 12000, []]);
		assert.deepEqual(await refsOf(target), await refsOf(source), "three references, two pages, times kept");
		for (const key of [plain.key, secret.key]) assert.deepEqual(await buffer(await target.open(key)), await buffer(await source.open(key)));

		const again = await migrate();
		assert.deepEqual([again.blobs, again.copied, again.skipped], [2, 0, 2]);
	});

	it("lists a blob corrupt at the source and copies the others", async () => {
		const bytes = randomBytes(3000);
		const bad = await put("image-1", bytes);
		const good = await put("image-2", randomBytes(3000), true);
		const sha = createHash("sha256").update(bytes).digest("hex");
		const path = join(dir, "source", sha.slice(0, 2), bad.key);
		const stored = readFileSync(path);
		stored[100]! ^= 0x01;
		writeFileSync(path, stored);

		const report = await migrate();
		assert.deepEqual(
			report.failed.map(entry => entry.key),
			[bad.key]
		);
		assert.equal(report.copied, 1);
		assert.equal(await target.stat(bad.key), null, "nothing of it on the target");
		assert.equal((await target.stat(good.key))?.refs, 1);
	});

	it("counts in a dry run and writes nothing", async () => {
		await put("image-1", randomBytes(1000));
		await put("image-2", randomBytes(2000), true);
		const report = await migrate(true);
		assert.deepEqual([report.blobs, report.copied, report.bytesCopied, report.dryRun], [2, 2, 3000, true]);
		assert.deepEqual(await refsOf(target), []);
	});

	it("reads the source no faster than its pace allows", async () => {
		await put("image-1", randomBytes(100_000));
		const started = performance.now();
		await migrate(false, { batch: 10, pace: pacer(200_000) });
		assert.ok(performance.now() - started >= 450, "100 kB at 200 kB/s takes half a second");
	});
});
