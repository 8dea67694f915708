/**
 * Bulk imports: URL lists and Google Drive folders become jobs in the metadata store, and their
 * work travels on the durable channel `imgmesh.import` (mixins/import-worker.mixin.ts): one
 * "list" message per job (listing is part of the job, not of the request), then the listed items
 * in batches. Any node running this service works on any job; a job whose progress stalls (its
 * node died) is resumed by another. This file is the REST side: create, watch, cancel, retry.
 *
 * Exactly once: an item is started and finished by conditional updates (a redelivered message
 * finds it taken or done), its image id is derived from the owner and the item key (so a second
 * run finds the image already there), and its bytes are claimed by sha256 before the image is
 * stored (so the same bytes at two URLs make one image). Both cases count as `duplicate`.
 */
import type { ServiceSchema, ServiceSettingSchema } from "moleculer";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { getConfig } from "../config/index.ts";
import { ImportWorkerMixin } from "../mixins/import-worker.mixin.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { openImportRepository } from "../models/backends.ts";
import { parseFolderId } from "../models/imports/google-drive.ts";
import { sealApiKey } from "../models/imports/job-secrets.ts";
import { newImportJob, type ImportItem, type ImportJob, type JobView } from "../models/imports/import-job.ts";
import { checkUrls, MAX_URLS, OPTIONS, URL_PARAM, type CreateParams } from "../models/imports/params.ts";
import { IMPORT_CHANNEL } from "../models/pipeline/channels.ts";
import { canManage, ownerScope } from "../models/shared/access.ts";
import { BadRequestError, LimitExceededError, NotFoundError, TooManyItemsError } from "../models/shared/errors.ts";
import { KeyedLock } from "../models/shared/keyed-lock.ts";
import { newId, nowIso } from "../models/shared/ids.ts";
import { ID } from "../models/shared/params.ts";
import type { ImportMessage, ImportsContext, ImportsMethods, ImportsVars } from "../types/imports-service.ts";

const config = getConfig();

/** How often an SSE stream looks for progress (the API promises at most one event per 500 ms). */
const EVENT_INTERVAL_MS = 500;
const ERRORS_SHOWN = 100;

function sse(event: string, data: unknown): string {
	return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

const imports: ServiceSchema<ServiceSettingSchema, ImportsMethods, ImportsVars> = {
	name: "imports",
	mixins: [repositoryMixin(() => openImportRepository(config), "The import job store"), ImportWorkerMixin],
	settings: { rest: "/" },

	created() {
		this.ownerLocks = new KeyedLock();
	},

	actions: {
		/** POST /api/imports (aliased in the gateway with a body limit fit for 100,000 URLs). */
		create: {
			params: {
				$$strict: true,
				source: { type: "enum", values: ["urls", "google-drive"] },
				// The count and the items are checked by the handler: too many is 413, not a validation
				// error, and 100,000 items are checked in slices (checkUrls), not in one go.
				urls: { type: "array", min: 1, optional: true },
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

		/**
		 * An account is being deleted: its jobs go, running or not, with their items, URL lists
		 * (and API keys) and content claims. Workers find nothing more to do for them.
		 */
		removeByOwner: {
			visibility: "public",
			params: { $$strict: true, owner: ID },
			async handler(ctx: ImportsContext<{ owner: string }>) {
				return { removed: await this.repo.removeByOwner(ctx.params.owner) };
			}
		},

		retry: {
			rest: "POST /imports/:id/retry",
			params: { $$strict: true, id: ID, apiKey: { type: "string", min: 1, max: 200, optional: true } },
			async handler(ctx: ImportsContext<{ id: string; apiKey?: string }>) {
				const job = await this.ownJob(ctx, ctx.params.id);
				const seqs = await this.repo.retryFailed(job.id, this.retryApiKey(job, ctx.params.apiKey));
				await this.fill(job.id);
				ctx.meta.$statusCode = 202;
				return { job: await this.view((await this.repo.getJob(job.id))!), requeued: seqs.length };
			}
		}
	},

	methods: {
		async createJob(ctx: ImportsContext, params: CreateParams): Promise<ImportJob> {
			const user = ctx.meta.user!;
			const jobId = newId();
			let source: ImportJob["source"];
			if (params.source === "urls") {
				if (!params.urls || params.folder !== undefined) throw new BadRequestError("A URL import takes `urls` (and no folder)", "VALIDATION_ERROR");
				// A list longer than a user may ever have queued would never be taken: 413, not 429.
				const most = Math.min(MAX_URLS, config.importMaxQueuedItems);
				if (params.urls.length > most) throw new TooManyItemsError("URLs", most);
				await checkUrls(params.urls);
				source = { type: "urls", count: params.urls.length };
			} else {
				if (!params.folder || params.urls !== undefined) throw new BadRequestError("A Google Drive import takes `folder` (and no urls)", "VALIDATION_ERROR");
				const folder = parseFolderId(params.folder);
				if (!folder) throw new BadRequestError("Not a Google Drive folder URL or id", "INVALID_FOLDER");
				if (!params.apiKey && !config.googleApiKey) throw new BadRequestError("A Google API key is needed: pass apiKey or configure GOOGLE_API_KEY", "API_KEY_REQUIRED");
				// A key from the request is kept with the job, sealed, while the workers need it; the
				// configured one is not copied.
				const sealedApiKey = params.apiKey ? sealApiKey(jobId, params.apiKey, this.keyring) : undefined;
				source = { type: "google-drive", folder, recursive: params.recursive ?? false, ...(sealedApiKey ? { sealedApiKey } : {}) };
			}
			const category = params.category ? (await ctx.call<{ id: string }, { ref: string }>("categories.resolve", { ref: params.category })).id : null;
			const tags = Array.isArray(params.tags) ? params.tags.join(",") : params.tags;
			const options = { category, tags, visibility: params.visibility ?? "private", encrypted: params.encrypted ?? false };
			const job = newImportJob({ id: jobId, owner: user.id, ownerName: user.username, source, options }, nowIso());
			// One creation at a time per owner on this node, so two requests cannot both pass the limits.
			await this.ownerLocks.run(user.id, async () => {
				await this.checkLimits(user.id, params.urls?.length ?? 0);
				await this.repo.createJob(job, params.urls);
			});
			await this.broker.sendToChannel(IMPORT_CHANNEL, { jobId: job.id, list: true } satisfies ImportMessage);
			return job;
		},

		/**
		 * The per-user limits: IMPORT_MAX_OPEN_JOBS open jobs, IMPORT_MAX_QUEUED_ITEMS items not yet
		 * done across them (a new URL list counts whole; a Drive folder, unknown in size, is taken
		 * while the owner is below the limit). 429 names the limit and the owner's count.
		 */
		async checkLimits(owner: string, requested: number): Promise<void> {
			const open = await this.repo.openWork(owner);
			if (open.jobs >= config.importMaxOpenJobs) {
				throw new LimitExceededError(`At most ${config.importMaxOpenJobs} open imports per user; you have ${open.jobs}`, "TOO_MANY_OPEN_IMPORTS", {
					limit: "open-jobs",
					max: config.importMaxOpenJobs,
					current: open.jobs
				});
			}
			if (open.items + Math.max(requested, 1) > config.importMaxQueuedItems) {
				throw new LimitExceededError(
					`At most ${config.importMaxQueuedItems} queued import items per user; you have ${open.items} and asked for ${requested} more`,
					"TOO_MANY_QUEUED_ITEMS",
					{ limit: "queued-items", max: config.importMaxQueuedItems, current: open.items, requested }
				);
			}
		},

		/**
		 * The sealed key a retry gives a Drive job: the job dropped its own when it ended, so one
		 * must come with the retry unless a key is configured (or the job still has one).
		 */
		retryApiKey(job: ImportJob, apiKey: string | undefined): string | undefined {
			if (job.source.type !== "google-drive") return undefined;
			if (apiKey) return sealApiKey(job.id, apiKey, this.keyring);
			const hasKey = job.source.sealedApiKey !== undefined || job.source.apiKey !== undefined || config.googleApiKey !== undefined;
			if (!hasKey && job.failed > 0) throw new BadRequestError("The job's API key was dropped when it ended: pass apiKey to retry", "API_KEY_REQUIRED");
			return undefined;
		},

		/** The job if the caller owns it or is an admin; 404 otherwise. */
		async ownJob(ctx: ImportsContext, id: string): Promise<ImportJob> {
			const job = await this.repo.getJob(id);
			if (!job || !canManage(ctx.meta.user!, job)) throw new NotFoundError("Import", id);
			return job;
		},

		async view(job: ImportJob): Promise<JobView> {
			const { source, listed: _listed, updatedAt, ...rest } = job;
			const { apiKey: _secret, sealedApiKey: _sealed, ...shownSource } = source as { apiKey?: string; sealedApiKey?: string };
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
		}
	}
};

export default imports;
