/**
 * The garbage collector of bytes on files and SQLite (storage-gc.suite.ts), and the sweep of import
 * temp files a crash left (issue 13, D3).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { redisSkipReason } from "../helpers/cluster.ts";
import { waitFor } from "../helpers/jobs.ts";
import { startServer } from "../helpers/server.ts";
import { storageGcSuite } from "./storage-gc.suite.ts";

storageGcSuite("fs", redisSkipReason(), async () => ({ env: {}, stop: async () => {} }));

describe("import temp files a crash left", () => {
	it("are deleted at start once older than GC_GRACE_MS; younger ones are kept", async () => {
		const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-test-"));
		const imports = join(dataDir, "tmp", "imports");
		mkdirSync(imports, { recursive: true });
		writeFileSync(join(imports, "stale-download"), "partial");
		writeFileSync(join(imports, "fresh-download"), "partial");
		const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
		utimesSync(join(imports, "stale-download"), twoHoursAgo, twoHoursAgo);

		const node = await startServer({ GC_GRACE_MS: String(3600_000) }, { dataDir });
		try {
			await waitFor("the stale temp file to go", async () => (readdirSync(imports).includes("stale-download") ? undefined : true), 10_000);
			assert.deepEqual(readdirSync(imports), ["fresh-download"]);
		} finally {
			await node.stop();
		}
	});
});
