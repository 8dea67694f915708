/**
 * The work of the imports service, mixed into it: the `imgmesh.import` channel lists jobs and
 * runs their items (download, checks, storage through images.ingest), exactly once, and a
 * reconciler resumes jobs whose node died. Any node running the service works on any job.
 */
import { createHash, randomUUID } from "node:crypto";
import { createReadStream, mkdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { whenChannelsSubscribed } from "../cluster/channels.ts";
import { getConfig } from "../config/index.ts";
import { masterKeyring } from "../models/backends.ts";
import { downloadUrl, listDriveImages, type DriveSource } from "../models/imports/google-drive.ts";
import { apiKeyOf } from "../models/imports/job-secrets.ts";
import { fileNameOf, normalizeUrl, type ImportItem, type ImportJob, type ItemResult, type NewItem } from "../models/imports/import-job.ts";
import { downloadToFile, FetchLimiter, type FetchOptions } from "../models/imports/safe-fetch.ts";
import { IMPORT_CHANNEL } from "../models/pipeline/channels.ts";
import { isClusterUnavailable, NotFoundError } from "../models/shared/errors.ts";
import { yieldToEventLoop } from "../models/shared/event-loop.ts";
import type { PublicImage } from "../models/images/public-image.ts";
import { removeFilesOlderThan } from "../models/shared/stale-files.ts";
import type { Keyring } from "../models/storage/envelope-crypto.ts";
import type { AuthUser } from "../models/users/user.ts";
import { importsMixin, type ImportMessage } from "../types/imports-service.ts";

const config = getConfig();

/** Items per channel message: enough to amortize the queue, few enough to spread over nodes. */
const BATCH = 8;
/**
 * Items of one job on the queue at once. More wait in the store, dispatched as batches finish:
 * a 100,000-item job never floods the transport (nor the embedded queue's bounded buffer).
 */
const WINDOW = 16 * BATCH;
/**
 * Runs of an item that may fail for the cluster's reasons (no live node of a service it needs,
 * yet) before it counts as failed. Failures of the item itself (its download, its bytes) count at
 * once: they have retries of their own.
 */
const MAX_ITEM_ATTEMPTS = 8;
/**
 * The pause before such an item runs again: 1 s, doubling, at most 30 s (about 1.5 min over all
 * the attempts), enough for a starting node's services to be discovered or a restarted node to
 * come back; never longer than the item's lease (IMPORT_LEASE_MS, minutes by default), after
 * which any node may take the item anyway.
 */
function clusterRetryDelayMs(attempt: number): number {
	return Math.min(30_000, 1000 * 2 ** (attempt - 1), config.importLeaseMs);
}

/** URLs turned into item rows per transaction while listing. */
const LIST_CHUNK = 1000;

function fetchOptions(): FetchOptions {
	return {
		maxBytes: config.maxUploadBytes,
		timeoutMs: config.importTimeoutMs,
		retries: config.importRetries,
		retryBaseMs: config.importRetryBaseMs,
		allowPrivateNetworks: config.importAllowPrivateNetworks
	};
}

/** The image id an item gets: the same owner importing the same key always lands on the same id. */
function importedImageId(owner: string, key: string): string {
	return "im" + createHash("sha256").update(`${owner}\0${key}`).digest("base64url").slice(0, 24);
}

function errorText(err: unknown): string {
	const { type, code, message } = err as { type?: string; code?: unknown; message?: string };
	const label = type ?? (typeof code === "string" ? code : undefined);
	return (label ? `${label}: ` : "") + (message ?? String(err));
}

function driveSource(job: ImportJob, keyring: Keyring): DriveSource {
	if (job.source.type !== "google-drive") throw new Error(`job ${job.id} is not a Google Drive import`);
	return { apiUrl: config.googleDriveApiUrl, apiKey: apiKeyOf(job, keyring) ?? config.googleApiKey ?? "" };
}

/** Where an item's bytes come from; Drive URLs are made here so that the API key is not stored per item. */
function sourceUrlOf(job: ImportJob, item: ImportItem, keyring: Keyring): string {
	return item.key.startsWith("gdrive:") ? downloadUrl(driveSource(job, keyring), item.key.slice("gdrive:".length)) : item.url;
}

export const ImportWorkerMixin = importsMixin({
	channels: {
		[IMPORT_CHANNEL]: {
			group: "imports",
			// Enough batches in flight to keep every download slot of the node busy.
			maxInFlight: Math.max(2, Math.ceil((2 * config.importConcurrency) / BATCH)),
			async handler(this: any, payload: ImportMessage) {
				if ("list" in payload) return this.listJob(payload.jobId);
				return this.runItems(payload.jobId, payload.items);
			}
		}
	},

	methods: {
		/** Tops the job's window on the queue up with batches of its queued items. */
		async fill(jobId: string): Promise<void> {
			const batches = await this.repo.dispatch(jobId, BATCH, WINDOW, config.importLeaseMs);
			await Promise.all(batches.map(items => this.broker.sendToChannel(IMPORT_CHANNEL, { jobId, items } satisfies ImportMessage)));
		},

		/** Lists a job's items (resuming a listing a dead node left half done) and queues them. */
		async listJob(jobId: string): Promise<void> {
			const job = await this.repo.claimListing(jobId, config.importLeaseMs);
			if (!job) return;
			try {
				await this.listItems(job);
				await this.repo.finishListing(jobId);
			} catch (err) {
				this.logger.warn(`Import ${jobId}: listing failed:`, errorText(err));
				await this.repo.failJob(jobId, errorText(err));
			}
		},

		async listItems(job: ImportJob): Promise<void> {
			const add = async (items: NewItem[], uniqueKeys: boolean) => {
				await this.repo.addItems(job.id, items, uniqueKeys, config.importLeaseMs);
				await this.fill(job.id);
			};
			if (job.source.type === "urls") {
				// Items are added in URL order, so a resumed listing continues after the last one stored.
				// A chunk of URLs is read, turned into items and stored per turn of the event loop.
				for (let from = job.total; ; from += LIST_CHUNK) {
					const urls = await this.repo.sourceUrls(job.id, from, LIST_CHUNK);
					if (urls.length === 0) return;
					await add(urls.map(url => ({ key: normalizeUrl(url), url: url.trim(), name: fileNameOf(url) })), false);
					if (urls.length < LIST_CHUNK) return;
					await yieldToEventLoop();
				}
			}
			for await (const page of listDriveImages(driveSource(job, this.keyring), job.source.folder, job.source.recursive, fetchOptions())) {
				await add(page.map(file => ({ key: `gdrive:${file.id}`, url: "", name: file.name })), true);
				// Cancelled meanwhile: stop paging.
				if ((await this.repo.getJob(job.id))?.status === "cancelled") return;
			}
		},

		async runItems(jobId: string, seqs: number[]): Promise<void> {
			// Items that end at once (refused addresses, duplicates) settle without any I/O: without
			// this turn, a job's batches would follow each other in one long run of the event loop.
			await yieldToEventLoop();
			const job = await this.repo.getJob(jobId);
			if (!job || job.finishedAt) return;
			await Promise.all(seqs.map(seq => this.runItem(job, seq)));
			await this.fill(jobId);
		},

		async runItem(job: ImportJob, seq: number): Promise<void> {
			const item = await this.repo.startItem(job.id, seq, config.importLeaseMs);
			// Done, dropped, or being worked on by a live node: this message was a repeat.
			if (!item) return;
			let result: ItemResult;
			try {
				result = await this.importItem(job, item);
			} catch (err) {
				if (isClusterUnavailable(err) && item.attempts < MAX_ITEM_ATTEMPTS) {
					// Not the item's fault: it goes back to the queue after a pause (this batch's fill dispatches it).
					const delayMs = clusterRetryDelayMs(item.attempts);
					this.logger.warn(`Import ${job.id} item ${seq} (attempt ${item.attempts}) will run again in ${delayMs} ms: ${errorText(err)}`);
					await sleep(delayMs);
					await this.repo.requeueItem(job.id, seq, item.attempts);
					return;
				}
				result = { state: "failed", error: errorText(err) };
			}
			await this.repo.finishItem(job.id, seq, result);
		},

		/** Downloads one item into a temporary file, then stores it unless its bytes are there already. */
		async importItem(job: ImportJob, item: ImportItem): Promise<ItemResult> {
			const id = importedImageId(job.owner, item.key);
			const existing = await this.existingImage(job, id);
			if (existing) {
				// This item stored it in a run that died before counting it (a crash): its own success.
				if (item.imageId === id) {
					await this.repo.commitContent(job.owner, existing.sha256, id);
					return { state: "succeeded", imageId: id, bytes: existing.size };
				}
				// Imported before, by another job or another item with the same key: nothing to fetch.
				return { state: "duplicate", imageId: id };
			}
			const file = join(this.tmpDir, `${id}-${randomUUID()}`);
			try {
				const url = sourceUrlOf(job, item, this.keyring);
				const downloaded = await this.limiter.run(url, () => downloadToFile(url, file, fetchOptions()));
				const result = await this.storeOnce(job, item, id, file, downloaded.sha256);
				return { ...result, bytes: result.state === "succeeded" ? downloaded.bytes : 0 };
			} finally {
				await rm(file, { force: true });
			}
		},

		/**
		 * Stores the downloaded file as image `id`, unless the owner has these bytes already (then
		 * it is a duplicate of that image). Another item storing the same bytes right now holds an
		 * uncommitted claim: wait for it to commit, or for its lease to run out.
		 */
		async storeOnce(job: ImportJob, item: ImportItem, id: string, file: string, sha256: string): Promise<ItemResult> {
			for (;;) {
				const claim = await this.repo.claimContent(job.owner, sha256, id, Date.now() - config.importLeaseMs);
				if (claim.imageId === id) break;
				if (claim.committed) {
					if (await this.existingImage(job, claim.imageId)) return { state: "duplicate", imageId: claim.imageId };
					// The image that had these bytes was deleted since: they may be imported again.
					await this.repo.releaseContent(job.owner, sha256, claim.imageId);
				} else {
					await sleep(200);
				}
			}
			try {
				await this.repo.markStoring(job.id, item.seq, id);
				const { options } = job;
				const { created } = await this.broker.call<{ created: boolean }, object>(
					"images.ingest",
					{
						id,
						owner: job.owner,
						ownerName: job.ownerName,
						filename: item.name,
						category: options.category,
						tags: options.tags,
						visibility: options.visibility,
						encrypted: String(options.encrypted)
					},
					{ stream: createReadStream(file) }
				);
				await this.repo.commitContent(job.owner, sha256, id);
				return { state: created ? "succeeded" : "duplicate", imageId: id };
			} catch (err) {
				await this.repo.releaseContent(job.owner, sha256, id);
				throw err;
			}
		},

		async existingImage(job: ImportJob, id: string): Promise<PublicImage | null> {
			const viewer: AuthUser = { id: job.owner, username: job.ownerName, role: "user" };
			return this.broker.call<PublicImage, { id: string }>("images.get", { id }, { meta: { user: viewer } }).catch(err => {
				if (err instanceof NotFoundError || (err as { code?: number }).code === 404) return null;
				throw err;
			});
		},

		/**
		 * Resumes jobs without progress for IMPORT_STALL_MS: their node died, or their messages
		 * were lost. Listing restarts where it stopped; items whose lease ran out are queued and
		 * dispatched again (repeats are harmless: an item runs once).
		 */
		async reconcile(stalledForMs: number = config.importStallMs): Promise<void> {
			const stalled = await this.repo.claimStalled(new Date(Date.now() - stalledForMs).toISOString());
			for (const job of stalled) {
				this.logger.info(`Import ${job.id} made no progress for ${stalledForMs} ms: resuming it.`);
				if (!job.listed) await this.broker.sendToChannel(IMPORT_CHANNEL, { jobId: job.id, list: true } satisfies ImportMessage);
				await this.repo.requeueExpired(job.id);
				await this.fill(job.id);
			}
		},

		/**
		 * Embedded mode, at start: this node is the only one using its store, so every lease in it
		 * was held by this node's previous run, whose in-memory queue is gone. They end now and
		 * every unfinished job resumes at once, instead of after IMPORT_LEASE_MS.
		 */
		async resumeAfterRestart(): Promise<void> {
			await this.repo.expireAllLeases();
			await this.reconcile(0);
		},

		/**
		 * Deletes downloads a crash left in tmpDir (a running import deletes its own): those untouched
		 * for GC_GRACE_MS, so a download under way, here or on a node sharing DATA_DIR, is never hit.
		 */
		async sweepTempFiles(): Promise<void> {
			const removed = await removeFilesOlderThan(this.tmpDir, new Date(Date.now() - config.gcGraceMs));
			if (removed > 0) this.logger.info(`Removed ${removed} import temp file(s) a crash left in ${this.tmpDir}.`);
		}
	},

	created() {
		this.limiter = new FetchLimiter(config.importConcurrency, config.importPerHostConcurrency);
		this.keyring = masterKeyring(config);
		this.tmpDir = join(config.dataDir, "tmp", "imports");
		mkdirSync(this.tmpDir, { recursive: true });
	},

	async started() {
		await this.sweepTempFiles();
		if (config.gcIntervalMs > 0) {
			this.tempSweeper = setInterval(() => {
				this.sweepTempFiles().catch(err => this.logger.error("Import temp file sweep failed:", err));
			}, config.gcIntervalMs);
			this.tempSweeper.unref();
		}
		// Not awaited, and after the channels are subscribed: the embedded queue drops what reaches no consumer.
		if (!config.transporter) {
			void whenChannelsSubscribed(this.broker)
				.then(() => this.resumeAfterRestart())
				.catch((err: unknown) => this.logger.error("Resuming imports after the restart failed:", err));
		}
		const every = Math.max(250, Math.round(config.importStallMs / 4));
		this.reconciler = setInterval(() => {
			this.reconcile().catch(err => this.logger.error("Import reconciler failed:", err));
		}, every);
		this.reconciler.unref();
	},

	stopped() {
		clearInterval(this.reconciler);
		clearInterval(this.tempSweeper);
	}
});
