/**
 * Bulk imports: URL lists and Google Drive folders become jobs in the metadata store, and their
 * work travels on the durable channel `imgmesh.import`: one "list" message per job (listing is
 * part of the job, not of the request), then the listed items in batches. Any node running this
 * service works on any job; a job whose progress stalls (its node died) is resumed by another.
 *
 * Exactly once: an item is started and finished by conditional updates (a redelivered message
 * finds it taken or done), its image id is derived from the owner and the item key (so a second
 * run finds the image already there), and its bytes are claimed by sha256 before the image is
 * stored (so the same bytes at two URLs make one image). Both cases count as `duplicate`.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { createHash, randomUUID } from "node:crypto";
import { createReadStream, mkdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { getConfig } from "../config/index.ts";
import type { AuthUser } from "../models/users/user.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { openImportRepository } from "../models/backends.ts";
import { canManage, ownerScope } from "../models/shared/access.ts";
import { ID } from "../models/shared/params.ts";
import { BadRequestError, NotFoundError, TooManyItemsError } from "../models/shared/errors.ts";
import { downloadUrl, listDriveImages, parseFolderId, type DriveSource } from "../models/imports/google-drive.ts";
import { newId, nowIso } from "../models/shared/ids.ts";
import type { Visibility } from "../models/images/image.ts";
import { fileNameOf, newImportJob, normalizeUrl, type ImportItem, type ImportJob, type ImportRepository, type ItemResult, type JobView, type NewItem } from "../models/imports/import-job.ts";
import { downloadToFile, FetchLimiter, type FetchOptions } from "../models/imports/safe-fetch.ts";

const config = getConfig();

export const IMPORT_CHANNEL = "imgmesh.import";
export const MAX_URLS = 100_000;
/** Items per channel message: enough to amortize the queue, few enough to spread over nodes. */
const BATCH = 8;
/**
 * Items of one job on the queue at once. More wait in the store, dispatched as batches finish:
 * a 100,000-item job never floods the transport (nor the embedded queue's bounded buffer).
 */
const WINDOW = 16 * BATCH;
/** URLs turned into item rows per transaction while listing. */
const LIST_CHUNK = 1000;
/** How often an SSE stream looks for progress (the API promises at most one event per 500 ms). */
const EVENT_INTERVAL_MS = 500;
const ERRORS_SHOWN = 100;

type Meta = { user?: AuthUser | null; $statusCode?: number; $responseType?: string; $responseHeaders?: Record<string, string> };
type ImportsContext<P = Record<string, any>> = Context<P, Meta>;
type Message = { jobId: string; list: true } | { jobId: string; items: number[] };


const OPTIONS = {
	category: { type: "string", max: 64, optional: true },
	tags: [
		{ type: "array", items: { type: "string", max: 50 }, max: 50, optional: true },
		{ type: "string", max: 2000, optional: true }
	],
	visibility: { type: "enum", values: ["private", "public"], optional: true },
	encrypted: { type: "boolean", optional: true }
};
const URL_PARAM = { type: "string", min: 1, max: 4096 };

interface CreateParams {
	source: "urls" | "google-drive";
	urls?: string[];
	folder?: string;
	apiKey?: string;
	recursive?: boolean;
	category?: string;
	tags?: string[] | string;
	visibility?: Visibility;
	encrypted?: boolean;
}

interface ImportsVars {
	repo: ImportRepository;
	limiter: FetchLimiter;
	tmpDir: string;
	reconciler: NodeJS.Timeout | undefined;
}

interface ImportsMethods {
	createJob(ctx: ImportsContext, params: CreateParams): Promise<ImportJob>;
	ownJob(ctx: ImportsContext, id: string): Promise<ImportJob>;
	view(job: ImportJob): Promise<JobView>;
	fill(jobId: string): Promise<void>;
	listJob(jobId: string): Promise<void>;
	listItems(job: ImportJob): Promise<void>;
	runItems(jobId: string, seqs: number[]): Promise<void>;
	runItem(job: ImportJob, seq: number): Promise<void>;
	importItem(job: ImportJob, item: ImportItem): Promise<ItemResult>;
	storeOnce(job: ImportJob, item: ImportItem, id: string, file: string, sha256: string): Promise<ItemResult>;
	existingImage(job: ImportJob, id: string): Promise<boolean>;
	reconcile(): Promise<void>;
}

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

function driveSource(job: ImportJob): DriveSource {
	if (job.source.type !== "google-drive") throw new Error(`job ${job.id} is not a Google Drive import`);
	return { apiUrl: config.googleDriveApiUrl, apiKey: job.source.apiKey ?? config.googleApiKey ?? "" };
}

/** Where an item's bytes come from; Drive URLs are made here so that the API key is not stored per item. */
function sourceUrlOf(job: ImportJob, item: ImportItem): string {
	return item.key.startsWith("gdrive:") ? downloadUrl(driveSource(job), item.key.slice("gdrive:".length)) : item.url;
}

function sse(event: string, data: unknown): string {
	return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

const imports: ServiceSchema<ServiceSettingSchema, ImportsMethods, ImportsVars> = {
	name: "imports",
	mixins: [repositoryMixin(() => openImportRepository(config), "The import job store")],
	settings: { rest: "/" },

	channels: {
		[IMPORT_CHANNEL]: {
			group: "imports",
			// Enough batches in flight to keep every download slot of the node busy.
			maxInFlight: Math.max(2, Math.ceil((2 * config.importConcurrency) / BATCH)),
			async handler(this: any, payload: Message) {
				if ("list" in payload) return this.listJob(payload.jobId);
				return this.runItems(payload.jobId, payload.items);
			}
		}
	},

	actions: {
		/** POST /api/imports (aliased in the gateway with a body limit fit for 100,000 URLs). */
		create: {
			params: {
				$$strict: true,
				source: { type: "enum", values: ["urls", "google-drive"] },
				// The count is checked by the handler: too many is 413, not a validation error.
				urls: { type: "array", items: URL_PARAM, min: 1, optional: true },
				folder: { type: "string", min: 1, max: 2000, optional: true },
				apiKey: { type: "string", min: 1, max: 200, optional: true },
				recursive: { type: "boolean", optional: true },
				...OPTIONS
			},
			async handler(ctx: ImportsContext<CreateParams>) {
				const job = await this.createJob(ctx, ctx.params);
				ctx.meta.$statusCode = 202;
				return { job: await this.view(job) };
			}
		},

		/** The "insert image by download URL" flow: a one-item import. */
		fromUrl: {
			rest: "POST /images/from-url",
			params: { $$strict: true, url: URL_PARAM, ...OPTIONS },
			async handler(ctx: ImportsContext<{ url: string } & Omit<CreateParams, "source" | "urls">>) {
				const { url, ...options } = ctx.params;
				const job = await this.createJob(ctx, { ...options, source: "urls", urls: [url] });
				ctx.meta.$statusCode = 202;
				return { job: await this.view(job) };
			}
		},

		list: {
			rest: "GET /imports",
			params: {
				$$strict: true,
				limit: { type: "number", integer: true, min: 1, max: 100, convert: true, optional: true },
				cursor: { type: "string", max: 500, optional: true }
			},
			async handler(ctx: ImportsContext<{ limit?: number; cursor?: string }>) {
				const user = ctx.meta.user!;
				const page = await this.repo.listJobs(ownerScope(user), ctx.params.limit ?? 50, ctx.params.cursor);
				return { ...page, items: await Promise.all(page.items.map(job => this.view(job))) };
			}
		},

		get: {
			rest: "GET /imports/:id",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImportsContext<{ id: string }>) {
				return this.view(await this.ownJob(ctx, ctx.params.id));
			}
		},

		items: {
			rest: "GET /imports/:id/items",
			params: {
				$$strict: true,
				id: ID,
				state: { type: "enum", values: ["queued", "dispatched", "running", "succeeded", "duplicate", "failed", "cancelled"], optional: true },
				limit: { type: "number", integer: true, min: 1, max: 1000, convert: true, optional: true },
				cursor: { type: "string", max: 20, optional: true }
			},
			async handler(ctx: ImportsContext<{ id: string; state?: ImportItem["state"]; limit?: number; cursor?: string }>) {
				const job = await this.ownJob(ctx, ctx.params.id);
				const page = await this.repo.listItems(job.id, { state: ctx.params.state, limit: ctx.params.limit ?? 100, cursor: ctx.params.cursor });
				return {
					...page,
					// The download URL stays internal: for Drive items it carries the API key.
					items: page.items.map(({ seq, key, state, imageId, error, bytes, attempts, updatedAt }) => ({ seq, key, state, imageId, error, bytes, attempts, updatedAt }))
				};
			}
		},

		/**
		 * GET /imports/:id/events: Server-Sent Events. `progress` whenever the job changed (looked
		 * at every 500 ms), then `done` with the final state, then the stream ends.
		 */
		events: {
			rest: "GET /imports/:id/events",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImportsContext<{ id: string }>) {
				const first = await this.ownJob(ctx, ctx.params.id);
				ctx.meta.$responseType = "text/event-stream; charset=utf-8";
				ctx.meta.$responseHeaders = { "Cache-Control": "no-cache", "X-Accel-Buffering": "no" };
				const out = new PassThrough();
				const watch = async () => {
					let last = "";
					for (let job: ImportJob | null = first; job; job = await this.repo.getJob(first.id)) {
						// The client went away: nobody reads the stream any more.
						if (out.destroyed || out.readableFlowing === false) return;
						if (job.updatedAt !== last) {
							last = job.updatedAt;
							const view = await this.view(job);
							if (job.finishedAt) {
								out.end(sse("done", view));
								return;
							}
							out.write(sse("progress", view));
						}
						await sleep(EVENT_INTERVAL_MS);
					}
					out.end();
				};
				watch().catch(err => out.destroy(err));
				return out;
			}
		},

		cancel: {
			rest: "DELETE /imports/:id",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImportsContext<{ id: string }>) {
				const job = await this.ownJob(ctx, ctx.params.id);
				return { job: await this.view((await this.repo.cancel(job.id)) ?? job) };
			}
		},

		retry: {
			rest: "POST /imports/:id/retry",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImportsContext<{ id: string }>) {
				const job = await this.ownJob(ctx, ctx.params.id);
				const seqs = await this.repo.retryFailed(job.id);
				await this.fill(job.id);
				ctx.meta.$statusCode = 202;
				return { job: await this.view((await this.repo.getJob(job.id))!), requeued: seqs.length };
			}
		}
	},

	methods: {
		async createJob(ctx: ImportsContext, params: CreateParams): Promise<ImportJob> {
			const user = ctx.meta.user!;
			let source: ImportJob["source"];
			if (params.source === "urls") {
				if (!params.urls || params.folder !== undefined) throw new BadRequestError("A URL import takes `urls` (and no folder)", "VALIDATION_ERROR");
				if (params.urls.length > MAX_URLS) throw new TooManyItemsError("URLs", MAX_URLS);
				source = { type: "urls", count: params.urls.length };
			} else {
				if (!params.folder || params.urls !== undefined) throw new BadRequestError("A Google Drive import takes `folder` (and no urls)", "VALIDATION_ERROR");
				const folder = parseFolderId(params.folder);
				if (!folder) throw new BadRequestError("Not a Google Drive folder URL or id", "INVALID_FOLDER");
				const apiKey = params.apiKey ?? config.googleApiKey;
				if (!apiKey) throw new BadRequestError("A Google API key is needed: pass apiKey or configure GOOGLE_API_KEY", "API_KEY_REQUIRED");
				// A key from the request is kept with the job (the workers need it); the configured one is not copied.
				source = { type: "google-drive", folder, recursive: params.recursive ?? false, apiKey: params.apiKey };
			}
			const category = params.category ? (await ctx.call<{ id: string }, { ref: string }>("categories.resolve", { ref: params.category })).id : null;
			const tags = Array.isArray(params.tags) ? params.tags.join(",") : params.tags;
			const options = { category, tags, visibility: params.visibility ?? "private", encrypted: params.encrypted ?? false };
			const job = newImportJob({ id: newId(), owner: user.id, ownerName: user.username, source, options }, nowIso());
			await this.repo.createJob(job, params.urls);
			await this.broker.sendToChannel(IMPORT_CHANNEL, { jobId: job.id, list: true } satisfies Message);
			return job;
		},

		/** The job if the caller owns it or is an admin; 404 otherwise. */
		async ownJob(ctx: ImportsContext, id: string): Promise<ImportJob> {
			const job = await this.repo.getJob(id);
			if (!job || !canManage(ctx.meta.user!, job)) throw new NotFoundError("Import", id);
			return job;
		},

		async view(job: ImportJob): Promise<JobView> {
			const { source, listed: _listed, updatedAt, ...rest } = job;
			const { apiKey: _secret, ...shownSource } = source as { apiKey?: string };
			const failed = job.failed ? await this.repo.listItems(job.id, { state: "failed", limit: ERRORS_SHOWN }) : { items: [] };
			const end = job.finishedAt ? Date.parse(job.finishedAt) : Date.now();
			const seconds = job.startedAt ? (end - Date.parse(job.startedAt)) / 1000 : 0;
			const rate = seconds > 0 ? job.processed / seconds : null;
			const remaining = job.total - job.processed - job.cancelled;
			return {
				...rest,
				source: shownSource,
				errors: failed.items.map(item => ({ item: item.key, error: item.error ?? "" })),
				rate: rate === null ? null : Math.round(rate * 100) / 100,
				eta: job.finishedAt ? 0 : rate ? Math.round(remaining / rate) : null
			};
		},

		/** Tops the job's window on the queue up with batches of its queued items. */
		async fill(jobId: string): Promise<void> {
			const batches = await this.repo.dispatch(jobId, BATCH, WINDOW, config.importLeaseMs);
			await Promise.all(batches.map(items => this.broker.sendToChannel(IMPORT_CHANNEL, { jobId, items } satisfies Message)));
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
				const urls = await this.repo.sourceUrls(job.id);
				// Items are added in URL order, so a resumed listing continues after the last one stored.
				for (let i = job.total; i < urls.length; i += LIST_CHUNK) {
					await add(urls.slice(i, i + LIST_CHUNK).map(url => ({ key: normalizeUrl(url), url: url.trim(), name: fileNameOf(url) })), false);
				}
				return;
			}
			for await (const page of listDriveImages(driveSource(job), job.source.folder, job.source.recursive, fetchOptions())) {
				await add(page.map(file => ({ key: `gdrive:${file.id}`, url: "", name: file.name })), true);
				// Cancelled meanwhile: stop paging.
				if ((await this.repo.getJob(job.id))?.status === "cancelled") return;
			}
		},

		async runItems(jobId: string, seqs: number[]): Promise<void> {
			const job = await this.repo.getJob(jobId);
			if (!job || job.finishedAt) return;
			await Promise.all(seqs.map(seq => this.runItem(job, seq)));
			await this.fill(jobId);
		},

		async runItem(job: ImportJob, seq: number): Promise<void> {
			const item = await this.repo.startItem(job.id, seq, config.importLeaseMs);
			// Done, dropped, or being worked on by a live node: this message was a repeat.
			if (!item) return;
			const result = await this.importItem(job, item).catch((err): ItemResult => ({ state: "failed", error: errorText(err) }));
			await this.repo.finishItem(job.id, seq, result);
		},

		/** Downloads one item into a temporary file, then stores it unless its bytes are there already. */
		async importItem(job: ImportJob, item: ImportItem): Promise<ItemResult> {
			const id = importedImageId(job.owner, item.key);
			// Imported before (another job, or this one before a crash): nothing to fetch.
			if (await this.existingImage(job, id)) return { state: "duplicate", imageId: id };
			const file = join(this.tmpDir, `${id}-${randomUUID()}`);
			try {
				const url = sourceUrlOf(job, item);
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

		async existingImage(job: ImportJob, id: string): Promise<boolean> {
			const viewer: AuthUser = { id: job.owner, username: job.ownerName, role: "user" };
			return this.broker.call("images.get", { id }, { meta: { user: viewer } }).then(
				() => true,
				err => {
					if (err instanceof NotFoundError || (err as { code?: number }).code === 404) return false;
					throw err;
				}
			);
		},

		/**
		 * Resumes jobs without progress for IMPORT_STALL_MS: their node died, or their messages
		 * were lost. Listing restarts where it stopped; items whose lease ran out are queued and
		 * dispatched again (repeats are harmless: an item runs once).
		 */
		async reconcile(): Promise<void> {
			const stalled = await this.repo.claimStalled(new Date(Date.now() - config.importStallMs).toISOString());
			for (const job of stalled) {
				this.logger.info(`Import ${job.id} made no progress for ${config.importStallMs} ms: resuming it.`);
				if (!job.listed) await this.broker.sendToChannel(IMPORT_CHANNEL, { jobId: job.id, list: true } satisfies Message);
				await this.repo.requeueExpired(job.id);
				await this.fill(job.id);
			}
		}
	},

	created() {
		this.limiter = new FetchLimiter(config.importConcurrency, config.importPerHostConcurrency);
		this.tmpDir = join(config.dataDir, "tmp", "imports");
		mkdirSync(this.tmpDir, { recursive: true });
	},

	started() {
		const every = Math.max(250, Math.round(config.importStallMs / 4));
		this.reconciler = setInterval(() => {
			this.reconcile().catch(err => this.logger.error("Import reconciler failed:", err));
		}, every);
		this.reconciler.unref();
	},

	stopped() {
		clearInterval(this.reconciler);
	}
};

export default imports;
