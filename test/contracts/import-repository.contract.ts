/**
 * The behaviour every ImportRepository backend must have: items run and count once, counters
 * always add up, the dispatch window, cancel and retry, stalled-job claims and content claims.
 * A backend's test file calls importRepositoryContract with a factory for fresh, empty
 * repositories; every test gets its own.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { newImportJob, type ImportJob, type ImportRepository, type ImportSource, type NewItem } from "../../models/imports/import-job.ts";

export interface ImportContractFixture {
	repo: ImportRepository;
	/** Removes what the repositories were stored in, once the contract has closed them. */
	cleanup(): Promise<void>;
}

const LEASE = 60_000;
let nextId = 0;

function newJob(owner = "u-alice", createdAt = new Date().toISOString(), source: ImportSource = { type: "urls", count: 0 }): ImportJob {
	const options = { category: null, visibility: "private" as const, encrypted: false };
	return newImportJob({ id: `job-${++nextId}`, owner, ownerName: owner.slice(2), source, options }, createdAt);
}

const DRIVE_SOURCE: ImportSource = { type: "google-drive", folder: "folder01", recursive: false, sealedApiKey: "sealed-key" };

const items = (n: number, prefix = "http://e.com/"): NewItem[] => Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}`, url: `${prefix}${i}`, name: `${i}.jpg` }));

export function importRepositoryContract(name: string, open: () => Promise<ImportContractFixture>): void {
	describe(`ImportRepository contract: ${name}`, () => {
		let fixture: ImportContractFixture;
		let repo: ImportRepository;
		beforeEach(async () => {
			fixture = await open();
			repo = fixture.repo;
		});
		afterEach(async () => {
			await repo.close();
			await fixture.cleanup();
		});

		/** A job with `n` listed items, listing finished. */
		async function listedJob(n: number): Promise<ImportJob> {
			const job = newJob();
			await repo.createJob(job, items(n).map(item => item.url));
			assert.ok(await repo.claimListing(job.id, LEASE));
			assert.deepEqual(await repo.addItems(job.id, items(n), false, LEASE), Array.from({ length: n }, (_, i) => i));
			await repo.finishListing(job.id);
			return job;
		}

		it("stores a job with its URLs and lists jobs per owner, newest first, in pages", async () => {
			const old = newJob("u-alice", "2026-01-01T00:00:00.000Z");
			const mid = newJob("u-bob", "2026-01-02T00:00:00.000Z");
			const last = newJob("u-alice", "2026-01-03T00:00:00.000Z");
			for (const job of [old, mid, last]) await repo.createJob(job, ["http://e.com/a"]);
			assert.deepEqual(await repo.sourceUrls(old.id), ["http://e.com/a"]);
			const mine = await repo.listJobs("u-alice", 1);
			assert.deepEqual([mine.items.map(job => job.id), mine.total], [[last.id], 2]);
			const next = await repo.listJobs("u-alice", 1, mine.nextCursor!);
			assert.deepEqual([next.items.map(job => job.id), next.nextCursor], [[old.id], null]);
			assert.equal((await repo.listJobs(null, 10)).total, 3);
			assert.equal(await repo.getJob("nope"), null);
		});

		it("stores a long URL list whole and gives it back in ranges", async () => {
			const urls = Array.from({ length: 2500 }, (_, i) => `http://e.com/${i}`);
			const job = newJob("u-alice", undefined, { type: "urls", count: urls.length });
			await repo.createJob(job, urls);
			assert.deepEqual(await repo.sourceUrls(job.id), urls);
			assert.deepEqual(await repo.sourceUrls(job.id, 0, 1000), urls.slice(0, 1000));
			assert.deepEqual(await repo.sourceUrls(job.id, 999, 1002), urls.slice(999, 2001), "across parts");
			assert.deepEqual(await repo.sourceUrls(job.id, 2000, 1000), urls.slice(2000));
			assert.deepEqual(await repo.sourceUrls(job.id, 2500, 1000), []);
			assert.deepEqual(await repo.sourceUrls("nope", 0, 10), []);
		});

		it("counts an owner's open jobs and their items not yet done", async () => {
			assert.deepEqual(await repo.openWork("u-alice"), { jobs: 0, items: 0 });
			// A URL list counts whole before it is listed.
			const waiting = newJob("u-alice", undefined, { type: "urls", count: 5 });
			await repo.createJob(waiting, items(5).map(item => item.url));
			assert.deepEqual(await repo.openWork("u-alice"), { jobs: 1, items: 5 });
			// A listed job counts what is not yet processed or dropped.
			const running = await listedJob(4);
			await repo.finishItem(running.id, 0, { state: "succeeded", imageId: "a" });
			await repo.finishItem(running.id, 1, { state: "failed", error: "x" });
			assert.deepEqual(await repo.openWork("u-alice"), { jobs: 2, items: 7 });
			// A Drive folder counts its items listed so far.
			const drive = newJob("u-alice", undefined, DRIVE_SOURCE);
			await repo.createJob(drive);
			assert.ok(await repo.claimListing(drive.id, LEASE));
			await repo.addItems(drive.id, items(3, "gdrive:"), true, LEASE);
			assert.deepEqual(await repo.openWork("u-alice"), { jobs: 3, items: 10 });
			// Finished and cancelled jobs no longer count; other owners never do.
			await repo.cancel(running.id);
			await repo.finishItem(waiting.id, 0, { state: "succeeded", imageId: "b" });
			const done = await listedJob(1);
			await repo.finishItem(done.id, 0, { state: "succeeded", imageId: "c" });
			await repo.createJob(newJob("u-bob", undefined, { type: "urls", count: 2 }), ["http://e.com/x", "http://e.com/y"]);
			assert.deepEqual(await repo.openWork("u-alice"), { jobs: 2, items: 8 });
			assert.deepEqual(await repo.openWork("u-bob"), { jobs: 1, items: 2 });
		});

		it("gives a job back as it was stored, absent options staying absent", async () => {
			const job = newImportJob(
				{
					id: `job-${++nextId}`,
					owner: "u-alice",
					ownerName: "alice",
					source: { type: "google-drive", folder: "f1", recursive: false, apiKey: undefined },
					options: { category: "nature", tags: undefined, visibility: "public", encrypted: true }
				},
				new Date().toISOString()
			);
			await repo.createJob(job);
			const stored = (await repo.getJob(job.id))!;
			assert.deepEqual(stored, JSON.parse(JSON.stringify(job)));
			assert.equal("tags" in stored.options, false);
		});

		it("gives the listing to one node at a time and resumes a re-listing without repeats", async () => {
			const job = newJob();
			await repo.createJob(job);
			assert.ok(await repo.claimListing(job.id, LEASE));
			assert.equal(await repo.claimListing(job.id, LEASE), null, "leased");
			assert.deepEqual(await repo.addItems(job.id, items(3), true, LEASE), [0, 1, 2]);
			assert.deepEqual(await repo.addItems(job.id, items(4), true, LEASE), [3], "known keys skipped");
			const done = (await repo.finishListing(job.id))!;
			assert.deepEqual([done.status, done.total, done.listed], ["running", 4, true]);
			assert.equal(await repo.claimListing(job.id, 0), null, "a listed job is not listed again");
		});

		it("runs an item once and counts it once; counters always add up; the job settles", async () => {
			const job = await listedJob(3);
			const first = await repo.startItem(job.id, 0, LEASE);
			assert.equal(first?.state, "running");
			assert.equal(await repo.startItem(job.id, 0, LEASE), null, "a leased item is not started twice");
			assert.equal(await repo.finishItem(job.id, 0, { state: "succeeded", imageId: "img-1", bytes: 100 }), true);
			assert.equal(await repo.finishItem(job.id, 0, { state: "failed", error: "late twin" }), false, "counted once");
			assert.equal(await repo.startItem(job.id, 0, LEASE), null, "a finished item is not started again");
			await repo.finishItem(job.id, 1, { state: "duplicate", imageId: "img-1" });
			let current = (await repo.getJob(job.id))!;
			assert.equal(current.finishedAt, null);
			await repo.finishItem(job.id, 2, { state: "failed", error: "HTTP_404: HTTP 404" });
			current = (await repo.getJob(job.id))!;
			assert.deepEqual(
				[current.status, current.processed, current.succeeded, current.duplicates, current.failed, current.bytes],
				["completed_with_errors", 3, 1, 1, 1, 100]
			);
			assert.ok(current.finishedAt);
			const failed = await repo.listItems(job.id, { state: "failed", limit: 10 });
			assert.deepEqual(failed.items.map(item => [item.seq, item.error]), [[2, "HTTP_404: HTTP 404"]]);
		});

		it("counts concurrent finishes of many items exactly", async () => {
			const job = await listedJob(200);
			await Promise.all(
				Array.from({ length: 400 }, (_, i) =>
					repo.finishItem(job.id, i % 200, { state: i % 3 === 0 ? "failed" : "succeeded", imageId: `img-${i}`, error: "x" })
				)
			);
			const current = (await repo.getJob(job.id))!;
			assert.equal(current.processed, 200);
			assert.equal(current.processed, current.succeeded + current.duplicates + current.failed);
			assert.ok(current.finishedAt);
		});

		it("fails a job whose items all failed, and settles an empty job at once", async () => {
			const job = await listedJob(2);
			for (const seq of [0, 1]) await repo.finishItem(job.id, seq, { state: "failed", error: "no" });
			assert.equal((await repo.getJob(job.id))!.status, "failed");
			const empty = await listedJob(0);
			const settled = (await repo.getJob(empty.id))!;
			assert.deepEqual([settled.status, settled.total], ["completed", 0]);
			assert.ok(settled.finishedAt);
		});

		it("dispatches queued items in batches within the window", async () => {
			const job = await listedJob(50);
			const batches = await repo.dispatch(job.id, 8, 20, LEASE);
			assert.deepEqual(batches, [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15]]);
			assert.deepEqual(await repo.dispatch(job.id, 8, 20, LEASE), [], "the window is full");
			for (const seq of batches[0]!) await repo.startItem(job.id, seq, LEASE);
			assert.deepEqual(await repo.dispatch(job.id, 8, 20, LEASE), [[16, 17, 18, 19, 20, 21, 22, 23]], "started items left the window");
		});

		it("requeues items whose lease ran out, and lets another node take an expired running item", async () => {
			const job = await listedJob(3);
			await repo.dispatch(job.id, 2, 2, 0);
			await repo.startItem(job.id, 2, 0);
			await new Promise(resolve => setTimeout(resolve, 5));
			assert.equal((await repo.startItem(job.id, 2, LEASE))?.attempts, 2, "an expired running item is taken over");
			assert.equal(await repo.requeueExpired(job.id), 2);
			assert.deepEqual((await repo.listItems(job.id, { state: "queued", limit: 10 })).items.map(item => item.seq), [0, 1]);
		});

		it("puts an item back in the queue at once for the run that holds it, and only for that run", async () => {
			const job = await listedJob(2);
			await repo.dispatch(job.id, 1, 2, LEASE);
			const first = (await repo.startItem(job.id, 0, LEASE))!;
			assert.equal(await repo.requeueItem(job.id, 0, first.attempts), true);
			assert.deepEqual((await repo.listItems(job.id, { state: "queued", limit: 10 })).items.map(item => item.seq), [0]);
			assert.deepEqual(await repo.dispatch(job.id, 1, 2, LEASE), [[0]], "dispatched again at once");
			const second = (await repo.startItem(job.id, 0, LEASE))!;
			assert.equal(second.attempts, first.attempts + 1);
			assert.equal(await repo.requeueItem(job.id, 0, first.attempts), false, "a run that lost the item requeues nothing");
			await repo.finishItem(job.id, 0, { state: "succeeded", imageId: "img-0" });
			assert.equal(await repo.requeueItem(job.id, 0, second.attempts), false, "a finished item stays finished");
			assert.equal(await repo.requeueItem(job.id, 1, 0), false, "an item not running is left alone");
		});

		it("ends every lease at once for a node that restarted alone on its store", async () => {
			const job = await listedJob(3);
			await repo.dispatch(job.id, 2, 2, LEASE);
			await repo.startItem(job.id, 0, LEASE);
			assert.equal(await repo.requeueExpired(job.id), 0, "live leases hold");
			await repo.expireAllLeases();
			assert.equal(await repo.requeueExpired(job.id), 2, "the dispatched and the running item are queued again");
			assert.deepEqual((await repo.listItems(job.id, { state: "queued", limit: 10 })).items.map(item => item.seq), [0, 1, 2]);
		});

		it("records the image a running item is storing", async () => {
			const job = await listedJob(2);
			await repo.dispatch(job.id, 2, 2, LEASE);
			await repo.startItem(job.id, 0, LEASE);
			await repo.markStoring(job.id, 0, "img-0");
			await repo.markStoring(job.id, 1, "img-1");
			const items = (await repo.listItems(job.id, { limit: 10 })).items;
			assert.deepEqual(items.map(item => item.imageId), ["img-0", null], "only a running item is marked");
		});

		it("cancels: queued and dispatched items are dropped, running ones still count", async () => {
			const job = await listedJob(5);
			await repo.dispatch(job.id, 1, 1, LEASE);
			await repo.startItem(job.id, 1, LEASE);
			const cancelled = (await repo.cancel(job.id))!;
			assert.deepEqual([cancelled.status, cancelled.cancelled, cancelled.finishedAt], ["cancelled", 4, null]);
			assert.equal(await repo.startItem(job.id, 0, LEASE), null, "dropped items never run");
			await repo.finishItem(job.id, 1, { state: "succeeded", imageId: "img" });
			const done = (await repo.getJob(job.id))!;
			assert.deepEqual([done.status, done.processed, done.succeeded, done.processed + done.cancelled], ["cancelled", 1, 1, 5]);
			assert.ok(done.finishedAt);
			assert.equal((await repo.cancel(job.id))!.status, "cancelled", "cancelling twice changes nothing");
		});

		it("removes everything of an owner whose account is deleted: jobs, items, URL lists, content claims", async () => {
			const running = await listedJob(3);
			assert.ok(await repo.startItem(running.id, 0, LEASE));
			const finished = await listedJob(1);
			await repo.finishItem(finished.id, 0, { state: "succeeded", imageId: "img-a" });
			await repo.claimContent("u-alice", "sha-a", "img-a", 0);
			await repo.commitContent("u-alice", "sha-a", "img-a");
			const bobs = newJob("u-bob");
			await repo.createJob(bobs, ["http://e.com/b"]);
			await repo.claimContent("u-bob", "sha-a", "img-b", 0);

			assert.equal(await repo.removeByOwner("u-alice"), 2);
			assert.equal(await repo.getJob(running.id), null);
			assert.equal(await repo.getJob(finished.id), null);
			assert.equal((await repo.listItems(running.id, { limit: 10 })).total, 0);
			assert.deepEqual(await repo.sourceUrls(running.id), []);
			assert.equal((await repo.listJobs("u-alice", 10)).total, 0);
			// Work still in flight for the removed jobs finds nothing to change.
			assert.equal(await repo.finishItem(running.id, 0, { state: "succeeded", imageId: "img-late" }), false);
			assert.deepEqual(await repo.dispatch(running.id, 8, 16, LEASE), []);
			assert.equal((await repo.claimContent("u-alice", "sha-a", "img-new", 0)).imageId, "img-new", "the claim went too");
			// Another owner keeps everything.
			assert.ok(await repo.getJob(bobs.id));
			assert.deepEqual(await repo.sourceUrls(bobs.id), ["http://e.com/b"]);
			assert.equal((await repo.claimContent("u-bob", "sha-a", "img-other", 0)).imageId, "img-b");
			assert.equal(await repo.removeByOwner("u-nobody"), 0);
		});

		describe("the API key a Drive job carries", () => {
			/** A Drive job with `n` listed items, listing finished. */
			async function driveJob(n: number, source: ImportSource = DRIVE_SOURCE): Promise<ImportJob> {
				const job = newJob("u-alice", undefined, source);
				await repo.createJob(job);
				assert.ok(await repo.claimListing(job.id, LEASE));
				await repo.addItems(job.id, items(n), true, LEASE);
				await repo.finishListing(job.id);
				return job;
			}
			const keyOf = async (id: string) => {
				const source = (await repo.getJob(id))!.source as { sealedApiKey?: string; apiKey?: string };
				return source.sealedApiKey ?? source.apiKey;
			};

			it("is kept while the job runs and dropped when it finishes", async () => {
				const job = await driveJob(2);
				assert.equal(await keyOf(job.id), "sealed-key");
				await repo.finishItem(job.id, 0, { state: "succeeded", imageId: "a" });
				assert.equal(await keyOf(job.id), "sealed-key", "still needed");
				await repo.finishItem(job.id, 1, { state: "failed", error: "x" });
				assert.ok((await repo.getJob(job.id))!.finishedAt);
				assert.equal(await keyOf(job.id), undefined);
				assert.deepEqual((await repo.getJob(job.id))!.source, { type: "google-drive", folder: "folder01", recursive: false });
			});

			it("is dropped at once when the job is cancelled or fails, a key stored in clear too", async () => {
				const cancelled = await driveJob(2);
				assert.ok(await repo.startItem(cancelled.id, 0, LEASE));
				await repo.cancel(cancelled.id);
				assert.equal(await keyOf(cancelled.id), undefined, "the running item has its URL already");
				const failed = newJob("u-alice", undefined, { type: "google-drive", folder: "f", recursive: true, apiKey: "clear-key" });
				await repo.createJob(failed);
				await repo.failJob(failed.id, "listing failed");
				assert.equal(await keyOf(failed.id), undefined);
			});

			it("comes back with a retry that brings one, for the retried items", async () => {
				const job = await driveJob(1);
				await repo.finishItem(job.id, 0, { state: "failed", error: "x" });
				assert.equal(await keyOf(job.id), undefined);
				assert.deepEqual(await repo.retryFailed(job.id, "sealed-again"), [0]);
				assert.equal(await keyOf(job.id), "sealed-again");
				await repo.finishItem(job.id, 0, { state: "succeeded", imageId: "a" });
				assert.equal(await keyOf(job.id), undefined);
			});
		});

		it("retries only the failed items of a finished job", async () => {
			const job = await listedJob(3);
			assert.deepEqual(await repo.retryFailed(job.id), [], "not finished yet");
			await repo.finishItem(job.id, 0, { state: "succeeded", imageId: "a" });
			await repo.finishItem(job.id, 1, { state: "failed", error: "x" });
			await repo.finishItem(job.id, 2, { state: "failed", error: "y" });
			assert.deepEqual(await repo.retryFailed(job.id), [1, 2]);
			const running = (await repo.getJob(job.id))!;
			assert.deepEqual([running.status, running.processed, running.failed, running.finishedAt], ["running", 1, 0, null]);
			assert.equal(await repo.finishItem(job.id, 0, { state: "failed", error: "z" }), false, "finished items stay finished");
			await repo.finishItem(job.id, 1, { state: "succeeded", imageId: "b" });
			await repo.finishItem(job.id, 2, { state: "succeeded", imageId: "c" });
			const done = (await repo.getJob(job.id))!;
			assert.deepEqual([done.status, done.processed, done.succeeded, done.failed], ["completed", 3, 3, 0]);
		});

		it("hands stalled unfinished jobs to one claimant", async () => {
			const job = await listedJob(1);
			const future = new Date(Date.now() + 1000).toISOString();
			assert.deepEqual((await repo.claimStalled(future)).map(j => j.id), [job.id]);
			assert.deepEqual(await repo.claimStalled(new Date(Date.now() - 1000).toISOString()), [], "claiming refreshed it");
			await repo.finishItem(job.id, 0, { state: "succeeded", imageId: "a" });
			assert.deepEqual(await repo.claimStalled(new Date(Date.now() + 5000).toISOString()), [], "finished jobs are not resumed");
		});

		it("claims content for one image at a time; stale or released claims can be taken", async () => {
			assert.deepEqual(await repo.claimContent("u-a", "sha", "img-1", 0), { imageId: "img-1", committed: false });
			assert.deepEqual(await repo.claimContent("u-a", "sha", "img-2", 0), { imageId: "img-1", committed: false }, "a fresh claim holds");
			assert.deepEqual(await repo.claimContent("u-b", "sha", "img-3", 0), { imageId: "img-3", committed: false }, "claims are per owner");
			assert.deepEqual(await repo.claimContent("u-a", "sha", "img-2", Date.now() + 1000), { imageId: "img-2", committed: false }, "a stale one is taken over");
			await repo.commitContent("u-a", "sha", "img-2");
			assert.deepEqual(await repo.claimContent("u-a", "sha", "img-4", Date.now() + 1000), { imageId: "img-2", committed: true }, "a committed claim never goes stale");
			await repo.releaseContent("u-a", "sha", "img-2");
			assert.deepEqual(await repo.claimContent("u-a", "sha", "img-4", 0), { imageId: "img-4", committed: false });
		});
	});
}
