/**
 * Import jobs: the document shapes (declared in import-types.ts, re-exported here) and the
 * backend-neutral repository contract, implemented on SQLite (sqlite-repository.ts) and MongoDB
 * (mongo-repository.ts); one contract test suite runs against both.
 *
 * The repository is where exactly-once lives: an item moves queued -> running -> one terminal
 * state by conditional updates, and only the caller whose update moved it counts it, so
 * processed = succeeded + duplicates + failed always holds and no item is counted twice.
 */
import { BadRequestError } from "../shared/errors.ts";
import type { Page } from "../images/image-types.ts";
import type { ImportItem, ImportJob, ImportStatus, ItemOutcome, ItemState } from "./import-types.ts";

// The job and item shapes, and the job as the API shows it, are declared once, in the pure-type
// import-types.ts (the web app imports that file, so it cannot depend on this module's runtime).
export type { ImportItem, ImportJob, ImportOptions, ImportSource, ImportStatus, ItemOutcome, ItemState, JobView } from "./import-types.ts";

/** A job as created: queued, nothing listed or counted yet. */
export function newImportJob(fields: Pick<ImportJob, "id" | "owner" | "ownerName" | "source" | "options">, now: string): ImportJob {
	return {
		...fields,
		status: "queued",
		total: 0,
		processed: 0,
		succeeded: 0,
		duplicates: 0,
		failed: 0,
		cancelled: 0,
		bytes: 0,
		error: null,
		listed: false,
		createdAt: now,
		startedAt: null,
		finishedAt: null,
		updatedAt: now
	};
}

/** Every field of an ImportJob but its id, for stores that map records field by field. */
export const JOB_FIELDS = [
	"owner", "ownerName", "source", "options", "status", "total", "processed", "succeeded", "duplicates", "failed", "cancelled",
	"bytes", "error", "listed", "createdAt", "startedAt", "finishedAt", "updatedAt"
] as const satisfies readonly (keyof ImportJob)[];

/** Every field of an ImportItem, for stores that map records field by field. */
export const ITEM_FIELDS = ["jobId", "seq", "key", "url", "name", "state", "imageId", "error", "bytes", "attempts", "updatedAt"] as const satisfies readonly (keyof ImportItem)[];

export interface NewItem {
	key: string;
	url: string;
	name: string;
}

export interface ItemResult {
	state: ItemOutcome;
	imageId?: string | null;
	error?: string;
	bytes?: number;
}

export interface ContentClaim {
	imageId: string;
	/** The image was stored (not merely being stored right now). */
	committed: boolean;
}

export interface ItemFilter {
	state?: ItemState;
	limit: number;
	cursor?: string;
}

/**
 * The identity of a URL for exactly-once: scheme and host lower-cased, default port and fragment
 * dropped, query parameters sorted. An unparsable URL keeps its text (its item will fail).
 */
export function normalizeUrl(raw: string): string {
	try {
		const url = new URL(raw.trim());
		url.hash = "";
		url.searchParams.sort();
		return url.href;
	} catch {
		return raw.trim();
	}
}

export function fileNameOf(url: string): string {
	try {
		const last = decodeURIComponent(new URL(url).pathname.split("/").pop() ?? "");
		return last.slice(0, 255) || "image";
	} catch {
		return "image";
	}
}

/** A job page cursor: the last job's creation time and id (jobs are listed newest first). */
export function encodeJobCursor(createdAt: string, id: string): string {
	return Buffer.from(`${createdAt}|${id}`).toString("base64url");
}

export function decodeJobCursor(cursor: string): [createdAt: string, id: string] {
	const parts = Buffer.from(cursor, "base64url").toString("utf8").split("|");
	if (parts.length !== 2 || !parts[0] || !parts[1]) throw new BadRequestError("Invalid cursor", "INVALID_CURSOR");
	return parts as [string, string];
}

/** The item cursor: the last item's sequence number. */
export function decodeItemCursor(cursor: string | undefined): number {
	const after = cursor === undefined ? -1 : Number(cursor);
	if (!Number.isSafeInteger(after)) throw new BadRequestError("Invalid cursor", "INVALID_CURSOR");
	return after;
}

/**
 * Source fields holding secrets. Every repository drops them as the job finishes, fails or is
 * cancelled (a retry brings a key again): a stored key outlives only the work that needs it.
 */
export const SOURCE_SECRETS = ["sealedApiKey", "apiKey"] as const;

/** The job counter an outcome counts in. */
export const OUTCOME_COUNTER = { succeeded: "succeeded", duplicate: "duplicates", failed: "failed" } as const;

/** A job is done once listing is over and every listed item was processed or cancelled. */
export function isSettleable(job: Pick<ImportJob, "listed" | "finishedAt" | "processed" | "cancelled" | "total">): boolean {
	return job.listed && job.finishedAt === null && job.processed + job.cancelled >= job.total;
}

/**
 * The status a done job settles in: cancelled wins, then failed when nothing at all was imported,
 * then completed (with or without errors). Every backend settles with this rule.
 */
export function settledStatus(job: Pick<ImportJob, "status" | "failed" | "succeeded" | "duplicates">): ImportStatus {
	if (job.status === "cancelled") return "cancelled";
	if (job.failed > 0) return job.succeeded + job.duplicates === 0 ? "failed" : "completed_with_errors";
	return "completed";
}

/** An owner's import work not yet done: what the per-user limits count. */
export interface OpenWork {
	/** Jobs queued, listing or running. */
	jobs: number;
	/**
	 * Items of those jobs not yet done: of a URL list, every URL not yet processed or dropped
	 * (listed or not); of a Drive folder, the items listed so far and not yet done.
	 */
	items: number;
}

/** URLs stored per part of a job's URL list: stored, and read back for listing, a part at a time. */
export const URLS_PER_PART = 1000;

export interface ImportRepository {
	/**
	 * Stores a new job (status queued); for URL lists also the URLs, listed later by a worker.
	 * A list of 100,000 URLs is stored in parts of URLS_PER_PART across turns of the event loop,
	 * before the job itself: a job is never seen without its whole list.
	 */
	createJob(job: ImportJob, urls?: string[]): Promise<void>;
	getJob(id: string): Promise<ImportJob | null>;
	/** Newest first; `owner` null lists every user's jobs. */
	listJobs(owner: string | null, limit: number, cursor?: string): Promise<Page<ImportJob>>;
	/** The owner's open jobs and their items not yet done (see OpenWork). */
	openWork(owner: string): Promise<OpenWork>;
	/** The URLs a URL-list job was created with: `limit` of them from index `from` (default: all). */
	sourceUrls(jobId: string, from?: number, limit?: number): Promise<string[]>;

	/**
	 * Takes the listing lease of a queued/listing job (one lister at a time; an expired lease may
	 * be taken over). Returns the job, or null when it is not the caller's to list.
	 */
	claimListing(jobId: string, leaseMs: number): Promise<ImportJob | null>;
	/**
	 * Appends listed items, skipping keys the job already has when `uniqueKeys` (a re-listing
	 * after a crash). Returns the sequence numbers of the items it added.
	 */
	addItems(jobId: string, items: NewItem[], uniqueKeys: boolean, leaseMs: number): Promise<number[]>;
	/** Listing is done: the total is final; the job completes if every item is already done. */
	finishListing(jobId: string): Promise<ImportJob | null>;
	/** The job failed as a whole (listing failed); remaining queued items are dropped. */
	failJob(jobId: string, error: string): Promise<void>;

	/**
	 * Moves queued items to dispatched (with a lease) so that they can be put on the queue, in
	 * batches of `batch`, keeping at most `window` items of the job dispatched at once: a queue
	 * of any size never floods the transport, and every node shares the job.
	 */
	dispatch(jobId: string, batch: number, window: number, leaseMs: number): Promise<number[][]>;
	/**
	 * Moves an item to running with a lease, if it is queued or dispatched, or running with an
	 * expired lease (its worker died). Returns the item, or null when someone else has it or it
	 * is done.
	 */
	startItem(jobId: string, seq: number, leaseMs: number): Promise<ImportItem | null>;
	/** Records an item's outcome and counts it, once: false when it was already finished. */
	finishItem(jobId: string, seq: number, result: ItemResult): Promise<boolean>;
	listItems(jobId: string, filter: ItemFilter): Promise<Page<ImportItem>>;

	/** Cancels a job that is not finished: queued items are dropped. Returns the job. */
	cancel(jobId: string): Promise<ImportJob | null>;
	/**
	 * Re-queues the failed items of a finished job; returns their sequence numbers. A Drive job's
	 * key was dropped when it finished: `sealedApiKey` gives it one for the retried items.
	 */
	retryFailed(jobId: string, sealedApiKey?: string): Promise<number[]>;

	/**
	 * The owner's account is being deleted: removes its jobs with their items and URL lists, and
	 * its content claims. Returns how many jobs went. Work still in flight for them finds nothing
	 * to change (and images.ingest refuses the owner once the account is gone).
	 */
	removeByOwner(owner: string): Promise<number>;

	/** Unfinished jobs with no progress since `before` (ISO time), taking them for a resume. */
	claimStalled(before: string): Promise<ImportJob[]>;
	/** Dispatched or running items whose lease ran out (lost message, dead worker) go back to queued. */
	requeueExpired(jobId: string): Promise<number>;
	/**
	 * A running item's run `attempt` gave way for the cluster's reasons (a service it needs had no
	 * live node): back to queued now, without waiting for its lease. False when that run no longer
	 * holds it (its lease ran out and another node took it over, or it was cancelled).
	 */
	requeueItem(jobId: string, seq: number, attempt: number): Promise<boolean>;
	/**
	 * Ends every lease at once (jobs' listing claims and items'). Only for a store that one node
	 * uses alone (embedded mode), at its start: every lease in it was that node's, which died.
	 */
	expireAllLeases(): Promise<void>;
	/**
	 * A running item is about to store image `imageId`: recorded first, so that after a crash
	 * the item knows the image it finds was stored by its own earlier run, not a duplicate.
	 */
	markStoring(jobId: string, seq: number, imageId: string): Promise<void>;

	/**
	 * Claims some content (sha256) of an owner for an image id, atomically. Returns the claim that
	 * holds: `imageId`'s, unless another image claimed the same bytes first. An uncommitted claim
	 * made before `staleBefore` (epoch ms; its worker died) is taken over.
	 */
	claimContent(owner: string, sha256: string, imageId: string, staleBefore: number): Promise<ContentClaim>;
	/** The claimed image is stored: the claim holds until released. */
	commitContent(owner: string, sha256: string, imageId: string): Promise<void>;
	/** Gives a claim up (its image failed or is gone) so that the bytes can be claimed again. */
	releaseContent(owner: string, sha256: string, imageId: string): Promise<void>;

	ping(): Promise<boolean>;
	close(): Promise<void>;
}
