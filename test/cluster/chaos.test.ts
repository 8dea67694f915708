/**
 * Chaos (issue 13): one cluster, one fault after another while images are processed (a worker
 * and the data node killed with kill -9, Redis restarted without persistence, a worker stopped
 * with SIGTERM, and on MongoDB the database down and up; test/helpers/chaos.ts). Whatever the
 * fault, every acknowledged upload is kept byte for byte, every image ends `ready` with one set of
 * renditions, and after the garbage collector's grace period no stored blob is left that no image
 * references. Disk full is test/service/disk-full.test.ts (a tmpfs); Redis restarted from its
 * append-only file is test/cluster/job-faults.test.ts. bench/chaos.ts measures recovery times.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runChaos, type ChaosBackend } from "../helpers/chaos.ts";
import { redisSkipReason } from "../helpers/cluster.ts";
import { ferretDbSkipReason } from "../helpers/ferretdb.ts";

const skipRedis = redisSkipReason();

chaos("sqlite", skipRedis);
chaos("mongo", skipRedis ?? ferretDbSkipReason());

function chaos(backend: ChaosBackend, skip: string | false | undefined): void {
	describe(`chaos on ${backend === "sqlite" ? "SQLite and files" : "MongoDB and GridFS"}`, { skip: skip || undefined, timeout: 600_000 }, () => {
		it("loses no upload, ends every image ready with one set of renditions, leaves no orphan bytes after the GC", async t => {
			const result = await runChaos({ backend, imagesPerPhase: 4, phaseTimeoutMs: 90_000 });
			for (const phase of result.phases) t.diagnostic(`${phase.fault}: every image ready ${phase.recoveryMs} ms after the fault (${phase.load})`);
			assert.deepEqual(
				result.phases.filter(phase => phase.imagesLost > 0),
				[],
				"every acknowledged upload present and byte-identical"
			);
			assert.equal(result.notReady, 0, "every image ready");
			assert.equal(result.duplicateRenditions, 0, "one set of renditions per image");
			assert.equal(result.blobs, result.referencedBlobs, "after the GC, the store holds exactly the blobs the images reference");
		});
	});
}
