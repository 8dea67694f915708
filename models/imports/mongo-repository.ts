/**
 * Import jobs on MongoDB (distributed mode); the same contract as the SQLite repository.
 *
 * No multi-document transactions (FerretDB v1 has none), so every invariant rests on
 * single-document atomic updates:
 * - an item changes state by a conditional findOneAndUpdate ({_id, state in allowed}); only the
 *   caller whose update matched counts it, by one `$inc` of processed and its outcome counter
 *   together on the job, so processed = succeeded + duplicates + failed in every state of the job,
 *   and that count is idempotent (count()), so a reconciler finishes the count of a dead node;
 * - leases are `leaseUntil` (epoch ms) compared in the filter;
 * - a job settles by an update conditional on the counters it was decided from (processed +
 *   cancelled = total among them), so a concurrent change makes it fail and the changer settles;
 * - `cancelled` is set from a count of the cancelled items ($max), so it can be recounted.
 * What is not exactly equivalent to the SQLite transactions is marked "Not atomic" below and
 * listed in docs/distributed.md ("MongoDB and GridFS").
 *
 * FerretDB v1 runs conditional updates and $inc as a read then a write, so this process's writes
 * to one job, item or content claim are serialized, as in the other MongoDB repositories.
 */
import type { Collection, Filter } from "mongodb";
import { nowIso } from "../shared/ids.ts";
import type { Page } from "../images/image.ts";
import {
	ITEM_FIELDS,
	SOURCE_SECRETS,
	JOB_FIELDS,
	isSettleable,
	settledStatus,
	type ContentClaim,
	decodeItemCursor,
	decodeJobCursor,
	encodeJobCursor,
	type ImportItem,
	type ImportJob,
	type ImportRepository,
	type ImportStatus,
	type ItemFilter,
	type ItemOutcome,
	type ItemResult,
	type ItemState,
	type NewItem,
	type OpenWork,
	OUTCOME_COUNTER,
	URLS_PER_PART
} from "./import-job.ts";
import { pick } from "../shared/fields.ts";
import { KeyedLock } from "../shared/keyed-lock.ts";
import { isDuplicateKey, MongoBackend, type MongoOptions } from "../db/mongo.ts";

interface JobRecord extends Omit<ImportJob, "id"> {
	_id: string;
	leaseUntil: number;
	/** Items counted in the counters whose records still say `uncounted` (see count()). */
	counting: number[];
}

interface ItemRecord extends ImportItem {
	/** `<jobId>/<seq>` */
	_id: string;
	leaseUntil: number;
	/** Finished but not yet known to be counted in the job (see count()). */
	uncounted: boolean;
}

/** A URL list in parts of URLS_PER_PART, far below the 16 MB document limit (URLs are ≤ 4 KB). */
interface UrlsRecord {
	_id: string;
	jobId: string;
	part: number;
	urls: string[];
}

interface ContentRecord {
	/** `<sha256>:<owner>` (the hex digest holds no colon) */
	_id: string;
	owner: string;
	sha256: string;
	imageId: string;
	committed: boolean;
	claimedAt: number;
}

/** URL list parts per insertMany (≈ 1.5 MB of BSON at most). */
const PARTS_PER_INSERT = 10;
const OPEN: ImportStatus[] = ["queued", "listing", "running"];
const UNFINISHED: ItemState[] = ["queued", "dispatched", "running"];

const itemId = (jobId: string, seq: number) => `${jobId}/${seq}`;

/** Drops the source's secrets (SOURCE_SECRETS), in the update that ends a job. */
const DROP_SECRETS = { $unset: Object.fromEntries(SOURCE_SECRETS.map(field => [`source.${field}`, "" as const])) };

function jobOf(record: JobRecord): ImportJob {
	return { id: record._id, ...pick(record, JOB_FIELDS) };
}

function itemOf(record: ItemRecord): ImportItem {
	return pick(record, ITEM_FIELDS);
}

export class MongoImportRepository extends MongoBackend implements ImportRepository {
	private readonly jobs: Collection<JobRecord>;
	private readonly items: Collection<ItemRecord>;
	private readonly urls: Collection<UrlsRecord>;
	private readonly contents: Collection<ContentRecord>;
	private readonly writes = new KeyedLock();
	/** Items this process has finished and is counting: the reconciler leaves them alone. */
	private readonly counting = new Set<string>();

	constructor(options: MongoOptions) {
		super(options, "The import job store");
		this.jobs = this.db.collection<JobRecord>("importJobs");
		this.items = this.db.collection<ItemRecord>("importItems");
		this.urls = this.db.collection<UrlsRecord>("importUrls");
		this.contents = this.db.collection<ContentRecord>("importContents");
	}

	protected async prepare(): Promise<void> {
		await this.ensureIndexes(this.jobs, [
			{ key: { owner: 1, createdAt: 1, _id: 1 } },
			{ key: { createdAt: 1, _id: 1 } },
			// claimStalled.
			{ key: { finishedAt: 1, updatedAt: 1 } }
		]);
		await this.ensureIndexes(this.items, [{ key: { jobId: 1, seq: 1 } }, { key: { jobId: 1, state: 1, seq: 1 } }, { key: { jobId: 1, key: 1 } }, { key: { jobId: 1, uncounted: 1 } }]);
		await this.ensureIndexes(this.urls, [{ key: { jobId: 1, part: 1 } }]);
	}

	async createJob(job: ImportJob, urls?: string[]): Promise<void> {
		await this.run(async () => {
			// The URLs first: a crash in between leaves unreferenced URLs, never a job without its list.
			// A few parts per insert: the driver serializes a whole insertMany at once (BSON of
			// 15 MB would hold the event loop), and each awaited write lets it run in between.
			let parts: UrlsRecord[] = [];
			for (let i = 0; i < (urls?.length ?? 0); i += URLS_PER_PART) {
				const part = i / URLS_PER_PART;
				parts.push({ _id: `${job.id}/${part}`, jobId: job.id, part, urls: urls!.slice(i, i + URLS_PER_PART) });
				if (parts.length === PARTS_PER_INSERT) {
					await this.urls.insertMany(parts);
					parts = [];
				}
			}
			if (parts.length > 0) await this.urls.insertMany(parts);
			const { id, ...fields } = job;
			// Absent options (no tags, no Drive API key) stay absent rather than turning into null.
			await this.jobs.insertOne({ _id: id, ...fields, leaseUntil: 0, counting: [] }, { ignoreUndefined: true });
		});
	}

	async getJob(id: string): Promise<ImportJob | null> {
		return this.run(async () => {
			const record = await this.jobs.findOne({ _id: id });
			return record && jobOf(record);
		});
	}

	async listJobs(owner: string | null, limit: number, cursor?: string): Promise<Page<ImportJob>> {
		const mine: Filter<JobRecord> = owner === null ? {} : { owner: owner };
		let page = mine;
		if (cursor) {
			const [createdAt, id] = decodeJobCursor(cursor);
			page = { ...mine, $or: [{ createdAt: { $lt: createdAt } }, { createdAt: createdAt, _id: { $lt: id } }] };
		}
		return this.run(async () => {
			const [records, total] = await Promise.all([
				this.jobs.find(page).sort({ createdAt: -1, _id: -1 }).limit(limit + 1).toArray(),
				this.jobs.countDocuments(mine)
			]);
			const hasMore = records.length > limit;
			if (hasMore) records.length = limit;
			const last = records.at(-1);
			return { items: records.map(jobOf), nextCursor: hasMore && last ? encodeJobCursor(last.createdAt, last._id) : null, total };
		});
	}

	async openWork(owner: string): Promise<OpenWork> {
		return this.run(async () => {
			// Few documents: at most the open-jobs limit of them, unless the limit was lowered.
			const open = await this.jobs
				.find({ owner: owner, status: { $in: OPEN } }, { projection: { total: 1, processed: 1, cancelled: 1, "source.count": 1 } })
				.toArray();
			const items = open.reduce((sum, job) => {
				// A URL list counts whole from the start (its count), a Drive folder as listed so far.
				const count = (job.source as { count?: number } | undefined)?.count ?? 0;
				return sum + Math.max(count, job.total) - job.processed - job.cancelled;
			}, 0);
			return { jobs: open.length, items };
		});
	}

	async sourceUrls(jobId: string, from = 0, limit = Number.MAX_SAFE_INTEGER): Promise<string[]> {
		const first = Math.floor(from / URLS_PER_PART);
		const last = Math.floor((Math.min(from + limit, Number.MAX_SAFE_INTEGER) - 1) / URLS_PER_PART);
		return this.run(async () => {
			const parts = await this.urls.find({ jobId: jobId, part: { $gte: first, $lte: last } }).sort({ part: 1 }).toArray();
			const skip = from - first * URLS_PER_PART;
			return parts.flatMap(part => part.urls).slice(skip, skip + limit);
		});
	}

	async claimListing(jobId: string, leaseMs: number): Promise<ImportJob | null> {
		return this.run(() =>
			this.writes.run(jobId, async () => {
				const now = Date.now();
				const record = await this.jobs.findOneAndUpdate(
					{ _id: jobId, status: { $in: ["queued", "listing"] }, listed: false, leaseUntil: { $lt: now } },
					{ $set: { status: "listing", leaseUntil: now + leaseMs, updatedAt: nowIso() } },
					{ returnDocument: "after" }
				);
				if (!record) return null;
				// The first start only (SQLite's COALESCE), by a second conditional update.
				if (record.startedAt === null) {
					record.startedAt = record.updatedAt;
					await this.jobs.updateOne({ _id: jobId, startedAt: null }, { $set: { startedAt: record.startedAt } });
				}
				return jobOf(record);
			})
		);
	}

	/**
	 * Only the listing lease holder calls this. Sequence numbers continue after the job's last
	 * item (not after `total`), so a lister that died between writing the total and the items
	 * leaves no gap: the next listing sets the total again from the items there are.
	 */
	async addItems(jobId: string, items: NewItem[], uniqueKeys: boolean, leaseMs: number): Promise<number[]> {
		return this.run(async () => {
			const added = await this.writes.run(jobId, async () => {
				if (!(await this.jobs.findOne({ _id: jobId, status: { $in: OPEN } }))) return [];
				const [last] = await this.items.find({ jobId: jobId }).sort({ seq: -1 }).limit(1).toArray();
				const known = new Set(uniqueKeys ? await this.items.distinct("key", { jobId: jobId, key: { $in: items.map(item => item.key) } }) : []);
				const now = nowIso();
				const records: ItemRecord[] = [];
				let seq = last ? last.seq + 1 : 0;
				for (const item of items) {
					if (uniqueKeys && known.has(item.key)) continue;
					known.add(item.key);
					records.push({ _id: itemId(jobId, seq), jobId, seq: seq++, ...item, state: "queued", imageId: null, error: null, bytes: 0, attempts: 0, leaseUntil: 0, uncounted: false, updatedAt: now });
				}
				const reserved = await this.jobs.updateOne(
					{ _id: jobId, status: { $in: OPEN } },
					{ $set: { total: seq, leaseUntil: Date.now() + leaseMs, updatedAt: now } }
				);
				if (reserved.matchedCount === 0 || records.length === 0) return [];
				await this.items.insertMany(records);
				return records.map(record => record.seq);
			});
			// Cancelled or failed meanwhile: the items it dropped may not include these.
			if (added.length > 0 && !(await this.jobs.findOne({ _id: jobId, status: { $in: OPEN } }))) await this.dropQueued(jobId);
			return added;
		});
	}

	async finishListing(jobId: string): Promise<ImportJob | null> {
		return this.run(async () => {
			await this.writes.run(jobId, () =>
				this.jobs.updateOne(
					{ _id: jobId, status: { $in: ["queued", "listing"] } },
					{ $set: { listed: true, leaseUntil: 0, status: "running", updatedAt: nowIso() } }
				)
			);
			return this.settle(jobId);
		});
	}

	async failJob(jobId: string, error: string): Promise<void> {
		await this.run(async () => {
			const now = nowIso();
			await this.writes.run(jobId, () =>
				this.jobs.updateOne(
					{ _id: jobId, status: { $in: OPEN } },
					{ $set: { status: "failed", error: error.slice(0, 1000), listed: true, finishedAt: now, updatedAt: now }, ...DROP_SECRETS }
				)
			);
			await this.dropQueued(jobId);
		});
	}

	/**
	 * Not atomic: the window is counted, then filled, so dispatchers on two nodes at the same
	 * moment can each fill the room they saw (at most twice the window; nothing runs twice).
	 * A closed, unsettled job gets the queued items a dying canceller left dropped here, and settles.
	 */
	async dispatch(jobId: string, batch: number, window: number, leaseMs: number): Promise<number[][]> {
		return this.run(async () => {
			const job = await this.jobs.findOne({ _id: jobId });
			if (!job || !OPEN.includes(job.status)) {
				if (job && job.finishedAt === null) await this.dropQueued(jobId);
				return [];
			}
			return this.writes.run(jobId, async () => {
				if (!(await this.jobs.findOne({ _id: jobId, status: { $in: OPEN } }))) return [];
				const dispatched = await this.items.countDocuments({ jobId: jobId, state: "dispatched" });
				const room = Math.floor((window - dispatched) / batch) * batch;
				if (room <= 0) return [];
				const queued = await this.items.find({ jobId: jobId, state: "queued" }).sort({ seq: 1 }).limit(room).toArray();
				const seqs = await this.move(queued, { state: "queued" }, { state: "dispatched", leaseUntil: Date.now() + leaseMs });
				const batches: number[][] = [];
				for (let i = 0; i < seqs.length; i += batch) batches.push(seqs.slice(i, i + batch));
				return batches;
			});
		});
	}

	async startItem(jobId: string, seq: number, leaseMs: number): Promise<ImportItem | null> {
		const id = itemId(jobId, seq);
		return this.run(() =>
			this.writes.run(id, async () => {
				const now = Date.now();
				const record = await this.items.findOneAndUpdate(
					{ _id: id, $or: [{ state: { $in: ["queued", "dispatched"] } }, { state: "running", leaseUntil: { $lt: now } }] },
					{ $set: { state: "running", leaseUntil: now + leaseMs, updatedAt: nowIso() }, $inc: { attempts: 1 } },
					{ returnDocument: "after" }
				);
				return record && itemOf(record);
			})
		);
	}

	/** The item's change marks it uncounted; count() then counts it exactly once. */
	async finishItem(jobId: string, seq: number, result: ItemResult): Promise<boolean> {
		const id = itemId(jobId, seq);
		return this.run(async () => {
			const now = nowIso();
			const bytes = result.bytes ?? 0;
			const finished = await this.writes.run(id, () =>
				this.items.findOneAndUpdate(
					{ _id: id, state: { $in: UNFINISHED } },
					{
						$set: {
							state: result.state,
							imageId: result.imageId ?? null,
							error: result.error?.slice(0, 500) ?? null,
							bytes,
							leaseUntil: 0,
							uncounted: true,
							updatedAt: now
						}
					},
					{ returnDocument: "after" }
				)
			);
			if (!finished) return false;
			this.counting.add(id);
			try {
				const job = await this.count(finished);
				if (job) await this.settle(jobId, job);
			} finally {
				this.counting.delete(id);
			}
			return true;
		});
	}

	async listItems(jobId: string, filter: ItemFilter): Promise<Page<ImportItem>> {
		const after = decodeItemCursor(filter.cursor);
		const matching: Filter<ItemRecord> = filter.state ? { jobId: jobId, state: filter.state } : { jobId: jobId };
		return this.run(async () => {
			const [records, total] = await Promise.all([
				this.items.find({ ...matching, seq: { $gt: after } }).sort({ seq: 1 }).limit(filter.limit + 1).toArray(),
				this.items.countDocuments(matching)
			]);
			const hasMore = records.length > filter.limit;
			if (hasMore) records.length = filter.limit;
			return { items: records.map(itemOf), nextCursor: hasMore ? String(records.at(-1)!.seq) : null, total };
		});
	}

	async cancel(jobId: string): Promise<ImportJob | null> {
		return this.run(async () => {
			const cancelled = await this.writes.run(jobId, () =>
				// Nothing lists or starts items any more: running ones have their download URL already.
				this.jobs.updateOne({ _id: jobId, status: { $in: OPEN } }, { $set: { status: "cancelled", listed: true, leaseUntil: 0, updatedAt: nowIso() }, ...DROP_SECRETS })
			);
			if (cancelled.matchedCount === 0) return this.getJob(jobId);
			// Running items still finish and count; the job is over once they have.
			return this.dropQueued(jobId);
		});
	}

	/**
	 * Not atomic: the items go back to queued, then the job uncounts them; a node dying between
	 * the two leaves them counted as failed, so their second outcome is counted on top.
	 * Their seqs leave `counting`, where a count that died half-way may have left them.
	 */
	async retryFailed(jobId: string, sealedApiKey?: string): Promise<number[]> {
		return this.run(() =>
			this.writes.run(jobId, async () => {
				const job = await this.jobs.findOne({ _id: jobId });
				if (!job?.finishedAt) return [];
				const failed = await this.items.find({ jobId: jobId, state: "failed" }).sort({ seq: 1 }).toArray();
				const seqs = await this.move(failed, { state: "failed" }, { state: "queued", error: null, leaseUntil: 0, uncounted: false });
				if (seqs.length === 0) return [];
				// A cancelled job keeps its dropped items dropped, and stays cancelled when done again.
				await this.jobs.updateOne(
					{ _id: jobId },
					{
						$inc: { processed: -seqs.length, failed: -seqs.length },
						$pull: { counting: { $in: seqs } },
						$set: {
							status: job.status === "cancelled" ? "cancelled" : "running",
							error: null,
							finishedAt: null,
							updatedAt: nowIso(),
							...(sealedApiKey === undefined ? {} : { "source.sealedApiKey": sealedApiKey })
						}
					}
				);
				return seqs;
			})
		);
	}

	/**
	 * Each stalled job is claimed by a conditional touch of updatedAt: other nodes see it fresh
	 * until it stalls again. First the items whose finisher died before counting them are
	 * counted: those finished before `before` that this process is not counting (another node
	 * silent that long is taken for dead, as with leases). A job that is then complete settles
	 * instead of being resumed.
	 */
	async claimStalled(before: string): Promise<ImportJob[]> {
		return this.run(async () => {
			const stalled = await this.jobs.find({ finishedAt: null, updatedAt: { $lt: before }, leaseUntil: { $lt: Date.now() } }).toArray();
			const claimed: ImportJob[] = [];
			for (const { _id } of stalled) {
				const uncounted = await this.items.find({ jobId: _id, uncounted: true, updatedAt: { $lt: before } }).toArray();
				for (const item of uncounted) if (!this.counting.has(item._id)) await this.count(item);
				const job = await this.settle(_id);
				if (!job || job.finishedAt) continue;
				const record = await this.writes.run(_id, () =>
					this.jobs.findOneAndUpdate({ _id, updatedAt: job.updatedAt, finishedAt: null }, { $set: { updatedAt: nowIso() } }, { returnDocument: "after" })
				);
				if (record) claimed.push(jobOf(record));
			}
			return claimed;
		});
	}

	async requeueExpired(jobId: string): Promise<number> {
		return this.run(async () => {
			const expired: Filter<ItemRecord> = { state: { $in: ["dispatched", "running"] }, leaseUntil: { $lt: Date.now() } };
			const items = await this.items.find({ ...expired, jobId: jobId }).toArray();
			return (await this.move(items, expired, { state: "queued" })).length;
		});
	}

	async requeueItem(jobId: string, seq: number, attempt: number): Promise<boolean> {
		const id = itemId(jobId, seq);
		return this.run(() =>
			this.writes.run(id, async () => {
				const requeued = await this.items.updateOne({ _id: id, state: "running", attempts: attempt }, { $set: { state: "queued", leaseUntil: 0, updatedAt: nowIso() } });
				return requeued.modifiedCount === 1;
			})
		);
	}

	/** Runs at a node's start, before any item of it: no write of this node can race these updates. */
	async expireAllLeases(): Promise<void> {
		await this.run(async () => {
			await this.jobs.updateMany({ finishedAt: null, leaseUntil: { $gt: 0 } }, { $set: { leaseUntil: 0 } });
			await this.items.updateMany({ state: { $in: ["dispatched", "running"] }, leaseUntil: { $gt: 0 } }, { $set: { leaseUntil: 0 } });
		});
	}

	async markStoring(jobId: string, seq: number, imageId: string): Promise<void> {
		const id = itemId(jobId, seq);
		await this.run(() => this.writes.run(id, () => this.items.updateOne({ _id: id, state: "running" }, { $set: { imageId } })));
	}

	/** The claim is an upsert conditional on the claim there being stale: a live one makes it a duplicate key. */
	async claimContent(owner: string, sha256: string, imageId: string, staleBefore: number): Promise<ContentClaim> {
		const id = `${sha256}:${owner}`;
		return this.run(() =>
			this.writes.run(id, async () => {
				try {
					await this.contents.updateOne(
						{ _id: id, committed: false, claimedAt: { $lt: staleBefore } },
						{ $set: { imageId, claimedAt: Date.now() }, $setOnInsert: { owner, sha256 } },
						{ upsert: true }
					);
				} catch (err) {
					if (!isDuplicateKey(err)) throw err;
				}
				const held = (await this.contents.findOne({ _id: id }))!;
				return { imageId: held.imageId, committed: held.committed };
			})
		);
	}

	async commitContent(owner: string, sha256: string, imageId: string): Promise<void> {
		const id = `${sha256}:${owner}`;
		await this.run(() => this.writes.run(id, () => this.contents.updateOne({ _id: id, imageId }, { $set: { committed: true } })));
	}

	async releaseContent(owner: string, sha256: string, imageId: string): Promise<void> {
		const id = `${sha256}:${owner}`;
		await this.run(() => this.writes.run(id, () => this.contents.deleteOne({ _id: id, imageId })));
	}

	/**
	 * Not atomic: items and URL lists go first, then the jobs, so a failure half-way leaves jobs
	 * (which a retried account deletion removes) and never items without a job. A listing on
	 * another node adding a page at that very moment can still leave that page's items behind.
	 */
	async removeByOwner(owner: string): Promise<number> {
		return this.run(async () => {
			const jobIds = (await this.jobs.find({ owner: owner }, { projection: { _id: 1 } }).toArray()).map(job => job._id);
			await this.items.deleteMany({ jobId: { $in: jobIds } });
			await this.urls.deleteMany({ jobId: { $in: jobIds } });
			const removed = (await this.jobs.deleteMany({ owner: owner })).deletedCount;
			await this.contents.deleteMany({ owner: owner });
			return removed;
		});
	}

	/**
	 * Counts a finished item in its job exactly once, however often it is called (a finisher, then
	 * a reconciler after the finisher died): the job's `$inc` of processed and the outcome counter
	 * is conditional on the item's seq not being in `counting` and adds it there in the same
	 * update; then the item is marked counted and the seq leaves `counting`. Returns the job.
	 */
	private async count(item: ItemRecord): Promise<JobRecord | null> {
		const { jobId, seq } = item;
		const counter = OUTCOME_COUNTER[item.state as ItemOutcome];
		await this.writes.run(jobId, () =>
			this.jobs.updateOne(
				{ _id: jobId, counting: { $ne: seq } },
				{ $inc: { processed: 1, [counter]: 1, bytes: item.bytes }, $push: { counting: seq }, $set: { updatedAt: nowIso() } }
			)
		);
		await this.writes.run(item._id, () => this.items.updateOne({ _id: item._id }, { $set: { uncounted: false } }));
		return this.writes.run(jobId, () => this.jobs.findOneAndUpdate({ _id: jobId }, { $pull: { counting: seq } }, { returnDocument: "after" }));
	}

	/**
	 * Moves each item that still matches `from` by its own conditional update, under the item's
	 * lock, and returns the seqs of those it moved, in the given order. Not one updateMany:
	 * FerretDB v1 writes back the whole documents it read, which would undo an item's concurrent
	 * finish (and count it again when it reruns).
	 */
	private async move(items: ItemRecord[], from: Filter<ItemRecord>, fields: Partial<ItemRecord>): Promise<number[]> {
		const updatedAt = nowIso();
		const moved = await Promise.all(
			items.map(item =>
				this.writes.run(item._id, async () => (await this.items.updateOne({ ...from, _id: item._id }, { $set: { ...fields, updatedAt } })).modifiedCount === 1)
			)
		);
		return items.filter((_, i) => moved[i]).map(item => item.seq);
	}

	/**
	 * Drops a closed job's queued and dispatched items and settles the job if it can; returns it.
	 * `cancelled` is set from the count of cancelled items, never incremented, so a repeat (or a
	 * caller that died in between) counts each item once. Callers hold no lock on the job.
	 * One updateMany, as a job may have 100,000 queued items: on FerretDB v1 it can undo an
	 * item's start or finish racing with the cancel.
	 */
	private async dropQueued(jobId: string): Promise<ImportJob | null> {
		await this.items.updateMany({ jobId: jobId, state: { $in: ["queued", "dispatched"] } }, { $set: { state: "cancelled", updatedAt: nowIso() } });
		const cancelled = await this.items.countDocuments({ jobId: jobId, state: "cancelled" });
		await this.writes.run(jobId, () => this.jobs.updateOne({ _id: jobId }, { $max: { cancelled } }));
		return this.settle(jobId);
	}

	/**
	 * Settles a listed job whose items are all done, by an update conditional on the counters it
	 * was decided from: `seen` (the job as the caller's own update left it) or the job read now.
	 * Returns the job as it now is.
	 */
	private async settle(jobId: string, seen?: JobRecord): Promise<ImportJob | null> {
		return this.writes.run(jobId, async () => {
			const job = seen ?? (await this.jobs.findOne({ _id: jobId }));
			if (!job || !isSettleable(job)) return job && jobOf(job);
			const now = nowIso();
			const settled = await this.jobs.findOneAndUpdate(
				{
					_id: jobId,
					finishedAt: null,
					status: job.status,
					total: job.total,
					processed: job.processed,
					cancelled: job.cancelled,
					succeeded: job.succeeded,
					duplicates: job.duplicates,
					failed: job.failed
				},
				{ $set: { status: settledStatus(job), finishedAt: now, updatedAt: now }, ...DROP_SECRETS },
				{ returnDocument: "after" }
			);
			return jobOf(settled ?? (await this.jobs.findOne({ _id: jobId }))!);
		});
	}
}
