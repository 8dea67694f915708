/**
 * The ingest pipeline's worker: consumes `imgmesh.process` jobs, reads the original from storage,
 * makes metadata and renditions (models/pipeline/renditions.ts), stores the renditions through storage
 * (encrypted when the original is) and hands the image on to the classifier or marks it ready.
 *
 * Stateless: any number of worker nodes share the stream's consumer group, and everything a job
 * needs is in the image document. Every step is idempotent (see models/pipeline/channels.ts). In distributed
 * mode run workers on their own nodes (SERVICES=worker,storage): the sharp work then never
 * competes with the gateway.
 *
 * A transient failure (full disk, I/O error, a backend away) leaves the image `processing` and
 * sends its job again after a back-off (JOB_TRANSIENT_RETRIES, JOB_RETRY_BASE_MS, JOB_RETRY_MAX_MS);
 * any other failure goes through the channel's attempts (JOB_MAX_ATTEMPTS) and fails the image.
 *
 * It also runs the reconciler: at start and every RECONCILE_INTERVAL_MS it enqueues again the
 * images left `processing` (a message lost with Redis, a crashed producer, or — in embedded mode,
 * whose queue lives in memory — a restart), at once when Redis lost the job stream itself
 * (JOBS_LOST_EVENT), and trims the job streams of what every consumer group has acknowledged.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { BlobReaderMixin, type BlobReaderMethods, type BlobReaderVars } from "../mixins/blob-reader.mixin.ts";
import { readWhole } from "../models/storage/blob-support.ts";
import type { BlobRef } from "../models/storage/blob-store.ts";
import type { ImageDoc, Rendition } from "../models/images/image.ts";
import { whenChannelsSubscribed } from "../cluster/channels.ts";
import { JOBS_LOST_EVENT } from "../cluster/durable-redis-adapter.ts";
import { withJobQueue } from "../cluster/job-streams.ts";
import { CHANNELS, DEAD_LETTER_CHANNEL, isLastAttempt, renditionRef, type Delivery } from "../models/pipeline/channels.ts";
import { renderImage, type RenderedRendition } from "../models/pipeline/renditions.ts";
import { isTransient, storageExhaustionOf } from "../models/shared/errors.ts";

const config = getConfig();

/** Images re-enqueued per reconciler query (a pass runs as many as it takes). */
const RECONCILE_BATCH = 500;
/** First wait before a pass after lost jobs is tried again; it doubles, up to the regular period. */
const LOST_JOBS_RETRY_MS = 500;

/** A process job: the image, and how many transient failures it has been retried after (absent: none). */
type JobContext = Context<{ id: string; retry?: number }>;

interface WorkerMethods extends BlobReaderMethods {
	processImage(ctx: JobContext, id: string, signal?: AbortSignal): Promise<void>;
	makeRenditions(ctx: JobContext, doc: ImageDoc, signal?: AbortSignal): Promise<void>;
	storeRendition(ctx: JobContext, doc: ImageDoc, rendition: RenderedRendition): Promise<Rendition>;
	releaseRenditions(ctx: JobContext, doc: ImageDoc, renditions: Rendition[]): Promise<void>;
	retryLater(ctx: JobContext, id: string, retry: number, err: unknown): Promise<void>;
	handOff(ctx: JobContext, doc: ImageDoc): Promise<void>;
	fail(ctx: JobContext, id: string, reason: string): Promise<void>;
	reconcile(olderThanMs: number): Promise<boolean>;
	trimStreams(): Promise<void>;
}

interface WorkerVars extends BlobReaderVars {
	reconcileTimer: NodeJS.Timeout | undefined;
	/** Jobs waiting out their back-off after a transient failure. */
	retryTimers: Set<NodeJS.Timeout>;
}

function reasonOf(err: unknown): string {
	return (err instanceof Error ? err.message : String(err)).slice(0, 1000);
}

const worker: ServiceSchema<ServiceSettingSchema, WorkerMethods, WorkerVars> = {
	name: "worker",
	mixins: [BlobReaderMixin],

	events: {
		/**
		 * Redis lost the job stream's consumer group, and with it every job: each image `processing`
		 * and not touched since is enqueued again now, not RECONCILE_STUCK_AFTER_MS later. Tried
		 * until a pass gets through (the cluster is reconnecting too), each retry a bit later.
		 */
		async [JOBS_LOST_EVENT](this: any, ctx: Context<{ channel: string; since: string }>) {
			if (ctx.params.channel !== CHANNELS.process) return;
			for (let wait = LOST_JOBS_RETRY_MS; ; wait *= 2) {
				await this.broker.waitForServices(["images"]);
				if (await this.reconcile(Date.now() - Date.parse(ctx.params.since))) return;
				if (wait > config.reconcileIntervalMs) return;
				await new Promise(resolve => setTimeout(resolve, wait));
			}
		}
	},

	channels: {
		[CHANNELS.process]: {
			group: "worker",
			context: true,
			maxInFlight: config.workerMaxInFlight,
			maxRetries: config.jobMaxAttempts,
			deadLettering: { enabled: true, queueName: DEAD_LETTER_CHANNEL },
			async handler(this: any, ctx: JobContext, delivery?: Delivery) {
				const { id, retry = 0 } = ctx.params;
				if (delivery?.exhausted) {
					await this.fail(ctx, id, `processing never finished in ${delivery.maxAttempts} attempt(s): the worker stopped each time`);
					return;
				}
				try {
					await this.processImage(ctx, id, delivery?.signal);
				} catch (err) {
					// Handed back while its node stops: another worker runs it, nothing failed.
					if (delivery?.signal?.aborted) throw err;
					if (isTransient(err) && retry < config.jobTransientRetries) return this.retryLater(ctx, id, retry + 1, err);
					this.logger.warn(`Processing image ${id} failed (attempt ${delivery?.attempt ?? 1}): ${reasonOf(err)}`);
					// The image is failed on the last attempt; the adapter then dead-letters the job.
					if (isLastAttempt(delivery)) await this.fail(ctx, id, reasonOf(err));
					throw err;
				}
			}
		}
	},

	methods: {
		/** `signal`: the job was handed back; checked between steps, so nothing is recorded after that. */
		async processImage(ctx: JobContext, id: string, signal?: AbortSignal): Promise<void> {
			const doc = await ctx.call<ImageDoc | null, { id: string }>("images.find", { id });
			// Deleted, or finished by an earlier delivery of this message: nothing to do.
			if (!doc || doc.status !== "processing") return;
			if (doc.renditions.length === 0) await this.makeRenditions(ctx, doc, signal);
			signal?.throwIfAborted();
			await this.handOff(ctx, doc);
		},

		async makeRenditions(ctx: JobContext, doc: ImageDoc, signal?: AbortSignal): Promise<void> {
			const original = await readWhole(await this.readBlob(ctx, doc.blob), doc.size);
			signal?.throwIfAborted();
			const { metadata, renditions } = await renderImage(original, { maxInputPixels: config.maxInputPixels });
			signal?.throwIfAborted();
			const outcomes = await Promise.allSettled(renditions.map(rendition => this.storeRendition(ctx, doc, rendition)));
			const stored = outcomes.flatMap(outcome => (outcome.status === "fulfilled" ? [outcome.value] : []));
			const failure = outcomes.find(outcome => outcome.status === "rejected");
			if (failure) {
				// One rendition could not be stored (a full disk): the others must not stay behind
				// unreferenced. The storage failure is what the retry decision needs to hear.
				await this.releaseRenditions(ctx, doc, stored).catch((releaseErr: unknown) => {
					this.logger.warn(`Could not release the renditions image ${doc.id} stored in vain (the storage GC reclaims them): ${reasonOf(releaseErr)}`);
				});
				throw failure.reason;
			}
			const result = await ctx.call<{ applied: boolean; renditions: Rendition[] } | null, object>("images.setProcessed", {
				id: doc.id,
				metadata,
				renditions: stored
			});
			if (result?.applied) return;
			// Another delivery recorded its renditions first, or the image was deleted meanwhile:
			// release what this run stored, except blobs the recorded set shares (identical plain bytes).
			const kept = new Set(result?.renditions.map(r => r.blob));
			await this.releaseRenditions(ctx, doc, stored.filter(r => !kept.has(r.blob)));
		},

		async releaseRenditions(ctx: JobContext, doc: ImageDoc, renditions: Rendition[]): Promise<void> {
			await Promise.all(renditions.map(r => ctx.call("storage.release", { key: r.blob, ref: renditionRef(doc.id, r.name) })));
		},

		/**
		 * After a transient failure (full disk, I/O error, a backend away) the image stays
		 * `processing`, its reason saying why it waits, and its job is sent again after a back-off
		 * that doubles each time. This delivery counts as done, so such retries never use up the
		 * channel's attempts or reach the dead letters. A node that stops meanwhile loses the timer,
		 * not the image: the reconciler sends its job again.
		 */
		async retryLater(ctx: JobContext, id: string, retry: number, err: unknown): Promise<void> {
			const delayMs = Math.min(config.jobRetryMaxMs, config.jobRetryBaseMs * 2 ** (retry - 1));
			const cause = reasonOf(storageExhaustionOf(err) ?? err);
			this.logger.warn(`Processing image ${id} hit a transient error, retry ${retry} of ${config.jobTransientRetries} in ${delayMs} ms: ${reasonOf(err)}`);
			try {
				// Also bumps updatedAt: the reconciler leaves an image that is waiting here alone.
				const reason = `waiting to retry (${retry} of ${config.jobTransientRetries}) after a transient error: ${cause}`;
				await ctx.call("images.setStatus", { id, status: "processing", reason: reason.slice(0, 1000), from: ["processing"] });
			} catch (statusErr) {
				this.logger.warn(`Could not record the retry of image ${id}: ${reasonOf(statusErr)}`);
			}
			const timer = setTimeout(() => {
				this.retryTimers.delete(timer);
				this.broker.sendToChannel(CHANNELS.process, { id, retry }).catch((sendErr: unknown) => {
					this.logger.warn(`Could not send image ${id} again (the reconciler will): ${reasonOf(sendErr)}`);
				});
			}, delayMs);
			this.retryTimers.add(timer);
		},

		async storeRendition(ctx: JobContext, doc: ImageDoc, rendition: RenderedRendition): Promise<Rendition> {
			const ref = await ctx.call<BlobRef, object>(
				"storage.put",
				{ encrypt: doc.encrypted, ref: renditionRef(doc.id, rendition.name), maxBytes: rendition.bytes.length },
				{ stream: Readable.from([rendition.bytes]) }
			);
			const { name, width, height, format } = rendition;
			return { name, width, height, format, size: ref.size, blob: ref.key };
		},

		async handOff(ctx: JobContext, doc: ImageDoc): Promise<void> {
			if (config.classifierModel) {
				await this.broker.sendToChannel(CHANNELS.classify, { id: doc.id }, { ctx });
				return;
			}
			await ctx.call("images.setStatus", { id: doc.id, status: "ready", from: ["processing"] });
		},

		async fail(ctx: JobContext, id: string, reason: string): Promise<void> {
			await ctx.call("images.setStatus", { id, status: "failed", reason, from: ["processing"] });
		},

		/** One pass; false when it failed (logged), to be tried again. */
		async reconcile(olderThanMs: number): Promise<boolean> {
			// One cutoff for the whole pass: images claimed by a batch are newer than it, so the
			// batches go through the stuck images once each.
			const before = new Date(Date.now() - olderThanMs).toISOString();
			try {
				let requeued = 0;
				for (;;) {
					const batch = await this.broker.call<{ requeued: string[] }, object>("images.requeueStuck", { before, limit: RECONCILE_BATCH });
					requeued += batch.requeued.length;
					if (batch.requeued.length < RECONCILE_BATCH) break;
				}
				if (requeued) this.logger.info(`Reconciler: enqueued ${requeued} image(s) stuck in processing again.`);
				return true;
			} catch (err) {
				// The next period tries again; a failed pass loses nothing.
				this.logger.warn(`Reconciler pass failed: ${reasonOf(err)}`);
				return false;
			}
		},

		async trimStreams(): Promise<void> {
			try {
				await withJobQueue(this.broker, async queue => {
					for (const channel of await queue.channels()) await queue.trimAcknowledged(channel);
				});
			} catch (err) {
				this.logger.warn(`Trimming the job streams failed: ${reasonOf(err)}`);
			}
		}
	},

	created() {
		this.retryTimers = new Set();
	},

	started() {
		if (config.transporter && this.broker.getLocalService("api")) {
			this.logger.warn("This node runs the gateway and the worker: image processing competes with requests. Run workers on their own nodes (SERVICES=worker).");
		}
		// Embedded mode keeps its queue in memory: after a restart every processing image has lost its job.
		const atStart = config.transporter ? config.reconcileStuckAfterMs : 0;
		// Not awaited: a worker node must not wait for the images service to finish starting. The
		// first pass waits for this node's channels too, or its jobs would reach no consumer yet.
		void Promise.all([this.broker.waitForServices(["images"]), whenChannelsSubscribed(this.broker)]).then(() => this.reconcile(atStart));
		this.reconcileTimer = setInterval(() => {
			void this.reconcile(config.reconcileStuckAfterMs);
			void this.trimStreams();
		}, config.reconcileIntervalMs);
		this.reconcileTimer.unref();
	},

	stopped() {
		clearInterval(this.reconcileTimer);
		for (const timer of this.retryTimers) clearTimeout(timer);
	}
};

export default worker;
