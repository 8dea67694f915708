/**
 * The garbage collector's sweep (models/storage/garbage-collector.ts) over a real FsBlobStore, with
 * the owners' answers given by the test: what it drops and counts, what a dry run reports, that
 * two sweeps at once count each blob once, and that a put re-holding a reference while the owner
 * is being asked keeps it.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { RefEntry } from "../../../models/storage/blob-store.ts";
import { Keyring } from "../../../models/storage/envelope-crypto.ts";
import { FsBlobStore } from "../../../models/storage/fs-blob-store.ts";
import { collectGarbage, type GcOptions } from "../../../models/storage/garbage-collector.ts";
import { type GcReport, newGcReport } from "../../../models/storage/gc-report.ts";

const LIMIT = 1024 * 1024;

/** A time strictly later than every time taken before the call. */
async function instantAfterNow(): Promise<Date> {
	const now = Date.now();
	while (Date.now() <= now) await new Promise(resolve => setImmediate(resolve));
	return new Date();
}

describe("garbage collector", () => {
	let root: string;
	let store: FsBlobStore;
	const put = (ref: string, bytes: Buffer, encrypt = false) => store.put(Readable.from([bytes]), { encrypt, ref, maxBytes: LIMIT });

	beforeEach(() => {
		root = mkdtempSync(join(tmpdir(), "imgmesh-gc-"));
		store = new FsBlobStore({ root, keyring: new Keyring(randomBytes(32)) });
	});
	afterEach(async () => {
		await store.close();
		rmSync(root, { recursive: true, force: true });
	});

	/** A run where the references in `dead` are no longer used by their owner, the rest are. */
	async function run(dead: Set<string>, options: Partial<GcOptions> = {}): Promise<GcReport> {
		const report = newGcReport(options.dryRun ?? false);
		const held = async (refs: RefEntry[]) => refs.map(entry => !dead.has(entry.ref));
		await collectGarbage(store, { olderThan: await instantAfterNow(), dryRun: false, batch: 2, isJudged: () => true, held, ...options }, report);
		return report;
	}

	it("drops the references no owner uses and the blobs they leave unreferenced, page by page; a dry run only counts them", async () => {
		const shared = randomBytes(1000);
		const live = await put("live", shared);
		await put("dead-sharing", shared);
		const alone = await put("dead-alone", randomBytes(700), true);
		const unjudged = await put("variant-x", randomBytes(300));
		const dead = new Set(["dead-sharing", "dead-alone", "variant-x"]);
		const isJudged = (ref: string) => !ref.startsWith("variant-");

		const dry = await run(dead, { dryRun: true, isJudged });
		assert.deepEqual({ ...dry, startedAt: "", finishedAt: null }, {
			startedAt: "",
			finishedAt: null,
			dryRun: true,
			refsChecked: 3,
			refsReleased: 2,
			blobsDeleted: 1,
			bytesReclaimed: 700,
			tempFilesRemoved: 0,
			errors: []
		});
		assert.equal((await store.stat(alone.key))?.refs, 1, "a dry run drops nothing");

		const report = await run(dead, { isJudged });
		assert.deepEqual([report.refsChecked, report.refsReleased, report.blobsDeleted, report.bytesReclaimed], [3, 2, 1, 700]);
		assert.equal(await store.stat(alone.key), null);
		assert.equal((await store.stat(live.key))?.refs, 1, "the live reference keeps the shared blob");
		assert.equal((await store.stat(unjudged.key))?.refs, 1, "a reference nobody can judge stays");
	});

	it("counts each reclaimed blob once when two sweeps run at once", async () => {
		const dead = new Set<string>();
		for (let i = 0; i < 6; i++) {
			await put(`dead-${i}`, randomBytes(100 + i), i % 2 === 0);
			dead.add(`dead-${i}`);
		}
		const live = await put("live", randomBytes(100));
		const [first, second] = await Promise.all([run(dead), run(dead)]);
		assert.equal(first.refsReleased + second.refsReleased, 6);
		assert.equal(first.blobsDeleted + second.blobsDeleted, 6);
		assert.equal((await store.stat(live.key))?.refs, 1);
		assert.deepEqual((await store.listRefs({ olderThan: await instantAfterNow(), limit: 10 })).refs.map(entry => entry.ref), ["live"]);
	});

	it("keeps a reference that a put re-holds while its owner is being asked", async () => {
		const bytes = randomBytes(2000);
		const blob = await put("rerun", bytes);
		const report = newGcReport(false);
		await collectGarbage(
			store,
			{
				olderThan: await instantAfterNow(),
				dryRun: false,
				batch: 10,
				isJudged: () => true,
				// The owner answers "not mine" from its state before a rerun stores the same bytes again.
				held: async refs => {
					await put("rerun", bytes);
					return refs.map(() => false);
				}
			},
			report
		);
		assert.deepEqual([report.refsChecked, report.refsReleased, report.blobsDeleted], [1, 0, 0]);
		assert.equal((await store.stat(blob.key))?.refs, 1);
	});
});
