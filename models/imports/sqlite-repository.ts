/**
 * Import jobs in SQLite (node:sqlite). Every state change is one conditional UPDATE (or one
 * IMMEDIATE transaction), so several worker processes sharing the file never count an item twice.
 * Leases are epoch milliseconds; document times are ISO strings.
 */
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { nowIso } from "../shared/ids.ts";
import type { Page } from "../images/image.ts";
import { type ContentClaim, decodeItemCursor, isSettleable, SOURCE_SECRETS, settledStatus, decodeJobCursor, encodeJobCursor, type ImportItem, OUTCOME_COUNTER, type ImportJob, type ImportRepository, type ItemFilter, type ItemResult, type NewItem, type OpenWork, URLS_PER_PART } from "./import-job.ts";
import { yieldToEventLoop } from "../shared/event-loop.ts";
import { closeDatabase, migrate, openDatabase, transaction } from "../db/sqlite.ts";

const MIGRATIONS = [
	`CREATE TABLE import_jobs (
		id TEXT PRIMARY KEY,
		owner TEXT NOT NULL,
		owner_name TEXT NOT NULL,
		source TEXT NOT NULL,
		options TEXT NOT NULL,
		status TEXT NOT NULL,
		total INTEGER NOT NULL DEFAULT 0,
		processed INTEGER NOT NULL DEFAULT 0,
		succeeded INTEGER NOT NULL DEFAULT 0,
		duplicates INTEGER NOT NULL DEFAULT 0,
		failed INTEGER NOT NULL DEFAULT 0,
		cancelled INTEGER NOT NULL DEFAULT 0,
		bytes INTEGER NOT NULL DEFAULT 0,
		error TEXT,
		listed INTEGER NOT NULL DEFAULT 0,
		lease_until INTEGER NOT NULL DEFAULT 0,
		created_at TEXT NOT NULL,
		started_at TEXT,
		finished_at TEXT,
		updated_at TEXT NOT NULL
	);
	CREATE INDEX import_jobs_owner ON import_jobs (owner, created_at);
	CREATE INDEX import_jobs_created ON import_jobs (created_at);
	CREATE INDEX import_jobs_open ON import_jobs (status, updated_at);
	CREATE TABLE import_urls (
		job_id TEXT PRIMARY KEY REFERENCES import_jobs (id) ON DELETE CASCADE,
		urls TEXT NOT NULL
	);
	CREATE TABLE import_items (
		job_id TEXT NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
		seq INTEGER NOT NULL,
		key TEXT NOT NULL,
		url TEXT NOT NULL,
		name TEXT NOT NULL,
		state TEXT NOT NULL,
		image_id TEXT,
		error TEXT,
		bytes INTEGER NOT NULL DEFAULT 0,
		attempts INTEGER NOT NULL DEFAULT 0,
		lease_until INTEGER NOT NULL DEFAULT 0,
		updated_at TEXT NOT NULL,
		PRIMARY KEY (job_id, seq)
	);
	CREATE INDEX import_items_key ON import_items (job_id, key);
	CREATE INDEX import_items_state ON import_items (job_id, state, seq);
	CREATE TABLE import_contents (
		owner TEXT NOT NULL,
		sha256 TEXT NOT NULL,
		image_id TEXT NOT NULL,
		committed INTEGER NOT NULL DEFAULT 0,
		claimed_at INTEGER NOT NULL,
		PRIMARY KEY (owner, sha256)
	);`,
	// URL lists in parts of URLS_PER_PART, written and read a part at a time (one 15 MB JSON text
	// took hundreds of ms to write or read in one go). No foreign key: the parts are stored before
	// their job. Lists stored in import_urls before this step are still read from there.
	`CREATE TABLE import_url_parts (
		job_id TEXT NOT NULL,
		part INTEGER NOT NULL,
		urls TEXT NOT NULL,
		PRIMARY KEY (job_id, part)
	);`
];

interface JobRow {
	id: string;
	owner: string;
	owner_name: string;
	source: string;
	options: string;
	status: ImportJob["status"];
	total: number;
	processed: number;
	succeeded: number;
	duplicates: number;
	failed: number;
	cancelled: number;
	bytes: number;
	error: string | null;
	listed: number;
	created_at: string;
	started_at: string | null;
	finished_at: string | null;
	updated_at: string;
}

interface ItemRow {
	job_id: string;
	seq: number;
	key: string;
	url: string;
	name: string;
	state: ImportItem["state"];
	image_id: string | null;
	error: string | null;
	bytes: number;
	attempts: number;
	updated_at: string;
}

function jobOf(row: JobRow): ImportJob {
	return {
		id: row.id,
		owner: row.owner,
		ownerName: row.owner_name,
		source: JSON.parse(row.source),
		options: JSON.parse(row.options),
		status: row.status,
		total: row.total,
		processed: row.processed,
		succeeded: row.succeeded,
		duplicates: row.duplicates,
		failed: row.failed,
		cancelled: row.cancelled,
		bytes: row.bytes,
		error: row.error,
		listed: row.listed === 1,
		createdAt: row.created_at,
		startedAt: row.started_at,
		finishedAt: row.finished_at,
		updatedAt: row.updated_at
	};
}

function itemOf(row: ItemRow): ImportItem {
	return {
		jobId: row.job_id,
		seq: row.seq,
		key: row.key,
		url: row.url,
		name: row.name,
		state: row.state,
		imageId: row.image_id,
		error: row.error,
		bytes: row.bytes,
		attempts: row.attempts,
		updatedAt: row.updated_at
	};
}

const OPEN = "('queued', 'listing', 'running')";
/** Queued items a cancel drops per transaction (per turn of the event loop). */
const DROP_CHUNK = 2000;
/** The SET clause that drops the source's secrets (SOURCE_SECRETS): fixed names, never input. */
const DROP_SECRETS = `source = json_remove(source, ${SOURCE_SECRETS.map(field => `'$.${field}'`).join(", ")})`;

export class SqliteImportRepository implements ImportRepository {
	private readonly db: DatabaseSync;

	constructor(file: string) {
		this.db = openDatabase(file);
		migrate(this.db, "imports", MIGRATIONS);
	}

	/**
	 * The URL list first, a part per statement with a turn of the event loop between parts, then
	 * the job: a crash in between leaves parts without a job (never read), never a job without
	 * its whole list.
	 */
	async createJob(job: ImportJob, urls?: string[]): Promise<void> {
		const insertPart = this.db.prepare("INSERT INTO import_url_parts (job_id, part, urls) VALUES (?, ?, ?)");
		for (let i = 0; i < (urls?.length ?? 0); i += URLS_PER_PART) {
			insertPart.run(job.id, i / URLS_PER_PART, JSON.stringify(urls!.slice(i, i + URLS_PER_PART)));
			await yieldToEventLoop();
		}
		this.db
			.prepare(
				`INSERT INTO import_jobs (id, owner, owner_name, source, options, status, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
			)
			.run(job.id, job.owner, job.ownerName, JSON.stringify(job.source), JSON.stringify(job.options), job.status, job.createdAt, job.updatedAt);
	}

	async openWork(owner: string): Promise<OpenWork> {
		// A URL list counts whole from the start (its count), a Drive folder as listed so far.
		const row = this.db
			.prepare(
				`SELECT COUNT(*) AS jobs, COALESCE(SUM(MAX(COALESCE(json_extract(source, '$.count'), 0), total) - processed - cancelled), 0) AS items
				FROM import_jobs WHERE owner = ? AND status IN ${OPEN}`
			)
			.get(owner) as { jobs: number; items: number };
		return { jobs: row.jobs, items: row.items };
	}

	async getJob(id: string): Promise<ImportJob | null> {
		return this.getJobSync(id);
	}

	/** Settles the job if it is done (see isSettleable). Call inside the transaction that counted. */
	private settle(jobId: string, now: string): void {
		const job = this.getJobSync(jobId);
		if (!job || !isSettleable(job)) return;
		this.db.prepare(`UPDATE import_jobs SET status = ?, finished_at = ?, updated_at = ?, ${DROP_SECRETS} WHERE id = ?`).run(settledStatus(job), now, now, jobId);
	}

	async listJobs(owner: string | null, limit: number, cursor?: string): Promise<Page<ImportJob>> {
		const where: string[] = [];
		const params: SQLInputValue[] = [];
		if (owner !== null) {
			where.push("owner = ?");
			params.push(owner);
		}
		const total = (this.db.prepare(`SELECT COUNT(*) AS n FROM import_jobs ${where.length ? "WHERE " + where.join(" AND ") : ""}`).get(...params) as { n: number }).n;
		if (cursor) {
			where.push("(created_at, id) < (?, ?)");
			params.push(...decodeJobCursor(cursor));
		}
		const rows = this.db
			.prepare(`SELECT * FROM import_jobs ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY created_at DESC, id DESC LIMIT ?`)
			.all(...params, limit + 1) as unknown as JobRow[];
		const hasMore = rows.length > limit;
		if (hasMore) rows.length = limit;
		const last = rows.at(-1);
		return {
			items: rows.map(jobOf),
			nextCursor: hasMore && last ? encodeJobCursor(last.created_at, last.id) : null,
			total
		};
	}

	async sourceUrls(jobId: string, from = 0, limit = Number.MAX_SAFE_INTEGER): Promise<string[]> {
		const legacy = this.db.prepare("SELECT urls FROM import_urls WHERE job_id = ?").get(jobId) as { urls: string } | undefined;
		if (legacy) return (JSON.parse(legacy.urls) as string[]).slice(from, from + limit);
		const first = Math.floor(from / URLS_PER_PART);
		const last = Math.floor((Math.min(from + limit, Number.MAX_SAFE_INTEGER) - 1) / URLS_PER_PART);
		const parts = this.db
			.prepare("SELECT urls FROM import_url_parts WHERE job_id = ? AND part BETWEEN ? AND ? ORDER BY part")
			.all(jobId, first, last) as { urls: string }[];
		const urls = parts.flatMap(part => JSON.parse(part.urls) as string[]);
		const skip = from - first * URLS_PER_PART;
		return urls.slice(skip, skip + limit);
	}

	async claimListing(jobId: string, leaseMs: number): Promise<ImportJob | null> {
		const now = Date.now();
		const row = this.db
			.prepare(
				`UPDATE import_jobs SET status = 'listing', lease_until = ?, started_at = COALESCE(started_at, ?), updated_at = ?
				WHERE id = ? AND status IN ('queued', 'listing') AND listed = 0 AND lease_until < ? RETURNING *`
			)
			.get(now + leaseMs, nowIso(), nowIso(), jobId, now) as JobRow | undefined;
		return row ? jobOf(row) : null;
	}

	async addItems(jobId: string, items: NewItem[], uniqueKeys: boolean, leaseMs: number): Promise<number[]> {
		return transaction(this.db, () => {
			const job = this.db.prepare(`SELECT total FROM import_jobs WHERE id = ? AND status IN ${OPEN}`).get(jobId) as { total: number } | undefined;
			if (!job) return [];
			const known = this.db.prepare("SELECT 1 FROM import_items WHERE job_id = ? AND key = ? LIMIT 1");
			const insert = this.db.prepare(
				"INSERT INTO import_items (job_id, seq, key, url, name, state, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?)"
			);
			const now = nowIso();
			const added: number[] = [];
			let seq = job.total;
			for (const item of items) {
				if (uniqueKeys && known.get(jobId, item.key)) continue;
				insert.run(jobId, seq, item.key, item.url, item.name, now);
				added.push(seq++);
			}
			this.db.prepare("UPDATE import_jobs SET total = ?, lease_until = ?, updated_at = ? WHERE id = ?").run(seq, Date.now() + leaseMs, now, jobId);
			return added;
		});
	}

	async finishListing(jobId: string): Promise<ImportJob | null> {
		return transaction(this.db, () => {
			const now = nowIso();
			this.db
				.prepare(`UPDATE import_jobs SET listed = 1, lease_until = 0, status = 'running', updated_at = ? WHERE id = ? AND status IN ('queued', 'listing')`)
				.run(now, jobId);
			this.settle(jobId, now);
			return this.getJobSync(jobId);
		});
	}

	async failJob(jobId: string, error: string): Promise<void> {
		transaction(this.db, () => {
			const now = nowIso();
			const dropped = this.db.prepare("UPDATE import_items SET state = 'cancelled', updated_at = ? WHERE job_id = ? AND state IN ('queued', 'dispatched')").run(now, jobId).changes;
			this.db
				.prepare(
					`UPDATE import_jobs SET status = 'failed', error = ?, listed = 1, cancelled = cancelled + ?, finished_at = ?, updated_at = ?, ${DROP_SECRETS}
					WHERE id = ? AND status IN ${OPEN}`
				)
				.run(error.slice(0, 1000), Number(dropped), now, now, jobId);
		});
	}

	async dispatch(jobId: string, batch: number, window: number, leaseMs: number): Promise<number[][]> {
		return transaction(this.db, () => {
			const open = this.db.prepare(`SELECT 1 FROM import_jobs WHERE id = ? AND status IN ${OPEN}`).get(jobId);
			if (!open) return [];
			const { n } = this.db.prepare("SELECT COUNT(*) AS n FROM import_items WHERE job_id = ? AND state = 'dispatched'").get(jobId) as { n: number };
			const room = Math.floor((window - n) / batch) * batch;
			if (room <= 0) return [];
			const seqs = (
				this.db
					.prepare(
						`UPDATE import_items SET state = 'dispatched', lease_until = ?, updated_at = ?
						WHERE job_id = ? AND seq IN (SELECT seq FROM import_items WHERE job_id = ? AND state = 'queued' ORDER BY seq LIMIT ?)
						RETURNING seq`
					)
					.all(Date.now() + leaseMs, nowIso(), jobId, jobId, room) as { seq: number }[]
			)
				.map(row => row.seq)
				.sort((a, b) => a - b);
			const batches: number[][] = [];
			for (let i = 0; i < seqs.length; i += batch) batches.push(seqs.slice(i, i + batch));
			return batches;
		});
	}

	async startItem(jobId: string, seq: number, leaseMs: number): Promise<ImportItem | null> {
		const now = Date.now();
		const row = this.db
			.prepare(
				`UPDATE import_items SET state = 'running', lease_until = ?, attempts = attempts + 1, updated_at = ?
				WHERE job_id = ? AND seq = ? AND (state IN ('queued', 'dispatched') OR (state = 'running' AND lease_until < ?)) RETURNING *`
			)
			.get(now + leaseMs, nowIso(), jobId, seq, now) as ItemRow | undefined;
		return row ? itemOf(row) : null;
	}

	async finishItem(jobId: string, seq: number, result: ItemResult): Promise<boolean> {
		return transaction(this.db, () => {
			const now = nowIso();
			const changed = this.db
				.prepare(
					`UPDATE import_items SET state = ?, image_id = ?, error = ?, bytes = ?, lease_until = 0, updated_at = ?
					WHERE job_id = ? AND seq = ? AND state IN ('queued', 'dispatched', 'running')`
				)
				.run(result.state, result.imageId ?? null, result.error?.slice(0, 500) ?? null, result.bytes ?? 0, now, jobId, seq).changes;
			if (Number(changed) === 0) return false;
			// The column name is one of three fixed outcomes, never input.
			const counter = OUTCOME_COUNTER[result.state];
			this.db
				.prepare(`UPDATE import_jobs SET processed = processed + 1, ${counter} = ${counter} + 1, bytes = bytes + ?, updated_at = ? WHERE id = ?`)
				.run(result.bytes ?? 0, now, jobId);
			this.settle(jobId, now);
			return true;
		});
	}

	async listItems(jobId: string, filter: ItemFilter): Promise<Page<ImportItem>> {
		const after = decodeItemCursor(filter.cursor);
		const stateSql = filter.state ? "AND state = ?" : "";
		const stateParams: SQLInputValue[] = filter.state ? [filter.state] : [];
		const rows = this.db
			.prepare(`SELECT * FROM import_items WHERE job_id = ? ${stateSql} AND seq > ? ORDER BY seq LIMIT ?`)
			.all(jobId, ...stateParams, after, filter.limit + 1) as unknown as ItemRow[];
		const total = (this.db.prepare(`SELECT COUNT(*) AS n FROM import_items WHERE job_id = ? ${stateSql}`).get(jobId, ...stateParams) as { n: number }).n;
		const hasMore = rows.length > filter.limit;
		if (hasMore) rows.length = filter.limit;
		return { items: rows.map(itemOf), nextCursor: hasMore ? String(rows.at(-1)!.seq) : null, total };
	}

	/**
	 * The job is closed and its dispatched items (at most a window of them) dropped in one
	 * transaction; its queued items (up to 100,000) are then dropped DROP_CHUNK at a time, a
	 * transaction per turn of the event loop (one UPDATE of them all held the node for seconds).
	 * Nothing dispatches a closed job's items; a queued item whose old message arrives meanwhile
	 * (requeued after its lease ran out) may still run and count, as on MongoDB: counted once,
	 * and processed + cancelled still reaches total.
	 */
	async cancel(jobId: string): Promise<ImportJob | null> {
		const closed = transaction(this.db, () => {
			const now = nowIso();
			const job = this.getJobSync(jobId);
			if (!job || !["queued", "listing", "running"].includes(job.status)) return false;
			const dropped = Number(this.db.prepare("UPDATE import_items SET state = 'cancelled', updated_at = ? WHERE job_id = ? AND state = 'dispatched'").run(now, jobId).changes);
			this.db
				// Nothing lists or starts items any more: running ones have their download URL already.
				.prepare(`UPDATE import_jobs SET status = 'cancelled', listed = 1, cancelled = cancelled + ?, lease_until = 0, updated_at = ?, ${DROP_SECRETS} WHERE id = ?`)
				.run(dropped, now, jobId);
			// Running items still finish and count; the job is over once they have.
			this.settle(jobId, now);
			return true;
		});
		if (closed) await this.dropQueued(jobId);
		return this.getJobSync(jobId);
	}

	/** Drops a closed job's queued items in chunks, counting them, and settles the job when done. */
	private async dropQueued(jobId: string): Promise<void> {
		const drop = this.db.prepare(
			`UPDATE import_items SET state = 'cancelled', updated_at = ?
			WHERE job_id = ? AND seq IN (SELECT seq FROM import_items WHERE job_id = ? AND state = 'queued' LIMIT ?)`
		);
		for (;;) {
			const dropped = transaction(this.db, () => {
				const now = nowIso();
				const n = Number(drop.run(now, jobId, jobId, DROP_CHUNK).changes);
				if (n > 0) this.db.prepare("UPDATE import_jobs SET cancelled = cancelled + ?, updated_at = ? WHERE id = ?").run(n, now, jobId);
				this.settle(jobId, now);
				return n;
			});
			if (dropped < DROP_CHUNK) return;
			await yieldToEventLoop();
		}
	}

	async retryFailed(jobId: string, sealedApiKey?: string): Promise<number[]> {
		return transaction(this.db, () => {
			const now = nowIso();
			const job = this.getJobSync(jobId);
			if (!job || !job.finishedAt) return [];
			const seqs = (
				this.db
					.prepare("UPDATE import_items SET state = 'queued', error = NULL, lease_until = 0, updated_at = ? WHERE job_id = ? AND state = 'failed' RETURNING seq")
					.all(now, jobId) as { seq: number }[]
			).map(row => row.seq);
			if (seqs.length === 0) return [];
			// A cancelled job keeps its dropped items dropped, and stays cancelled when done again.
			this.db
				.prepare(
					`UPDATE import_jobs SET status = CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'running' END,
					processed = processed - ?, failed = failed - ?, error = NULL, finished_at = NULL, updated_at = ?,
					source = CASE WHEN ? IS NULL THEN source ELSE json_set(source, '$.sealedApiKey', ?) END WHERE id = ?`
				)
				.run(seqs.length, seqs.length, now, sealedApiKey ?? null, sealedApiKey ?? null, jobId);
			return seqs;
		});
	}

	async claimStalled(before: string): Promise<ImportJob[]> {
		return transaction(this.db, () => {
			const rows = this.db
				.prepare(`SELECT * FROM import_jobs WHERE finished_at IS NULL AND updated_at < ? AND lease_until < ?`)
				.all(before, Date.now()) as unknown as JobRow[];
			// Touching updated_at is the claim: other nodes see the job as fresh until it stalls again.
			const touch = this.db.prepare("UPDATE import_jobs SET updated_at = ? WHERE id = ?");
			const now = nowIso();
			for (const row of rows) touch.run(now, row.id);
			return rows.map(jobOf);
		});
	}

	async requeueExpired(jobId: string): Promise<number> {
		const changed = this.db
			.prepare("UPDATE import_items SET state = 'queued', updated_at = ? WHERE job_id = ? AND state IN ('dispatched', 'running') AND lease_until < ?")
			.run(nowIso(), jobId, Date.now()).changes;
		return Number(changed);
	}

	async requeueItem(jobId: string, seq: number, attempt: number): Promise<boolean> {
		const changed = this.db
			.prepare("UPDATE import_items SET state = 'queued', lease_until = 0, updated_at = ? WHERE job_id = ? AND seq = ? AND state = 'running' AND attempts = ?")
			.run(nowIso(), jobId, seq, attempt).changes;
		return changed === 1;
	}

	async expireAllLeases(): Promise<void> {
		transaction(this.db, () => {
			this.db.prepare("UPDATE import_jobs SET lease_until = 0 WHERE finished_at IS NULL AND lease_until > 0").run();
			this.db.prepare("UPDATE import_items SET lease_until = 0 WHERE state IN ('dispatched', 'running') AND lease_until > 0").run();
		});
	}

	async markStoring(jobId: string, seq: number, imageId: string): Promise<void> {
		this.db.prepare("UPDATE import_items SET image_id = ? WHERE job_id = ? AND seq = ? AND state = 'running'").run(imageId, jobId, seq);
	}

	async claimContent(owner: string, sha256: string, imageId: string, staleBefore: number): Promise<ContentClaim> {
		const row = this.db
			.prepare(
				`INSERT INTO import_contents (owner, sha256, image_id, claimed_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (owner, sha256) DO UPDATE SET image_id = excluded.image_id, claimed_at = excluded.claimed_at
					WHERE committed = 0 AND claimed_at < ?
				RETURNING image_id, committed`
			)
			.get(owner, sha256, imageId, Date.now(), staleBefore) as { image_id: string; committed: number } | undefined;
		// No row back: someone else's claim stands.
		const held = row ?? (this.db.prepare("SELECT image_id, committed FROM import_contents WHERE owner = ? AND sha256 = ?").get(owner, sha256) as { image_id: string; committed: number });
		return { imageId: held.image_id, committed: held.committed === 1 };
	}

	async commitContent(owner: string, sha256: string, imageId: string): Promise<void> {
		this.db.prepare("UPDATE import_contents SET committed = 1 WHERE owner = ? AND sha256 = ? AND image_id = ?").run(owner, sha256, imageId);
	}

	async releaseContent(owner: string, sha256: string, imageId: string): Promise<void> {
		this.db.prepare("DELETE FROM import_contents WHERE owner = ? AND sha256 = ? AND image_id = ?").run(owner, sha256, imageId);
	}

	async removeByOwner(owner: string): Promise<number> {
		return transaction(this.db, () => {
			// Items and URL lists go with their jobs (ON DELETE CASCADE); URL list parts have no key.
			this.db.prepare("DELETE FROM import_url_parts WHERE job_id IN (SELECT id FROM import_jobs WHERE owner = ?)").run(owner);
			const removed = Number(this.db.prepare("DELETE FROM import_jobs WHERE owner = ?").run(owner).changes);
			this.db.prepare("DELETE FROM import_contents WHERE owner = ?").run(owner);
			return removed;
		});
	}

	async ping(): Promise<boolean> {
		return this.db.prepare("SELECT 1 AS ok").get() !== undefined;
	}

	async close(): Promise<void> {
		closeDatabase(this.db);
	}

	private getJobSync(id: string): ImportJob | null {
		const row = this.db.prepare("SELECT * FROM import_jobs WHERE id = ?").get(id) as JobRow | undefined;
		return row ? jobOf(row) : null;
	}
}
