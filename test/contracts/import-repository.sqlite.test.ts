import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { newImportJob } from "../../models/imports/import-job.ts";
import { SqliteImportRepository } from "../../models/imports/sqlite-repository.ts";
import { importRepositoryContract } from "./import-repository.contract.ts";

importRepositoryContract("SQLite", async () => {
	const dir = await mkdtemp(join(tmpdir(), "imgmesh-imports-"));
	return { repo: new SqliteImportRepository(join(dir, "imports.db")), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

/** Counts turns of the event loop until stopped: work that yields lets it turn. */
function countTurns(): () => number {
	let turns = 0;
	let on = true;
	const spin = () => {
		if (!on) return;
		turns++;
		setImmediate(spin);
	};
	setImmediate(spin);
	return () => {
		on = false;
		return turns;
	};
}

// node:sqlite is synchronous: big writes must be cut up by the repository itself (MongoDB's
// driver waits on the network between writes anyway).
describe("SQLite import repository: big lists in slices", () => {
	it("stores a 4,100-URL list and cancels a 4,100-item job in slices, letting the event loop run", async () => {
		const dir = await mkdtemp(join(tmpdir(), "imgmesh-imports-"));
		const repo = new SqliteImportRepository(join(dir, "imports.db"));
		try {
			const LEASE = 60_000;
			const items = Array.from({ length: 4_100 }, (_, i) => ({ key: `http://e.com/${i}`, url: `http://e.com/${i}`, name: `${i}.jpg` }));
			const urls = items.map(item => item.url);
			const job = newImportJob({ id: "job-big", owner: "u-alice", ownerName: "alice", source: { type: "urls", count: urls.length }, options: { category: null, visibility: "private", encrypted: false } }, new Date().toISOString());
			let stop = countTurns();
			await repo.createJob(job, urls);
			assert.ok(stop() > 1, "the event loop turned while the list was stored");
			assert.deepEqual(await repo.sourceUrls(job.id, 4_090, 100), urls.slice(4_090));

			assert.ok(await repo.claimListing(job.id, LEASE));
			await repo.addItems(job.id, items, false, LEASE);
			await repo.finishListing(job.id);
			await repo.dispatch(job.id, 8, 16, LEASE);
			assert.ok(await repo.startItem(job.id, 0, LEASE));
			stop = countTurns();
			const cancelled = (await repo.cancel(job.id))!;
			assert.ok(stop() > 1, "the event loop turned while the items were dropped");
			assert.deepEqual([cancelled.status, cancelled.cancelled, cancelled.finishedAt], ["cancelled", 4_099, null]);
			assert.equal(await repo.startItem(job.id, 5, LEASE), null, "a dropped dispatched item never runs");
			assert.equal(await repo.startItem(job.id, 4_099, LEASE), null, "a dropped queued item never runs");
			await repo.finishItem(job.id, 0, { state: "succeeded", imageId: "img" });
			const done = (await repo.getJob(job.id))!;
			assert.deepEqual([done.status, done.processed + done.cancelled], ["cancelled", 4_100]);
			assert.ok(done.finishedAt);
		} finally {
			await repo.close();
			await rm(dir, { recursive: true, force: true });
		}
	});
});
