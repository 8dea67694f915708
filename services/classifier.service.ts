/**
 * Automatic tagging with an ONNX image classifier (model described by the CLASSIFIER_MODEL
 * manifest, see models/classifier/manifest.ts). Can run alone on dedicated nodes
 * (SERVICES=classifier): inference runs in worker threads (models/classifier/pool.ts), so its
 * event loop stays free, and the `imgmesh.classify` job stream spreads images over every
 * classifier node.
 *
 * - POST /api/classify: classify an uploaded image without storing it.
 * - POST /api/images/:id/retag: queue an image for tagging again (owner or admin).
 * - channel `imgmesh.classify` {id}: tag an image; in the ingest pipeline this is the step that
 *   makes the image `ready`. Inference that fails is retried CLASSIFIER_RETRIES times; after
 *   that the image still becomes `ready`, with no automatic tags and a statusReason saying why:
 *   a picture nobody can tag is still a picture its owner wants.
 *
 * With no model configured the service stays up: the classify endpoint answers 503, images go
 * through the pipeline untagged, and /api/ready reports the classifier disabled.
 */
import type { CallingOptions, Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { performance } from "node:perf_hooks";
import type { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { BlobReaderMixin, type BlobReaderMethods, type BlobReaderVars } from "../mixins/blob-reader.mixin.ts";
import type { AuthUser } from "../models/users/user.ts";
import { ID } from "../models/shared/params.ts";
import { readWhole } from "../models/storage/blob-support.ts";
import { decodeForModel } from "../models/classifier/input.ts";
import { classLabels, topLabels, type ScoredLabel } from "../models/classifier/labels.ts";
import { loadManifest, type LoadedManifest } from "../models/classifier/manifest.ts";
import { ClassifierPool } from "../models/classifier/pool.ts";
import { canManage } from "../models/shared/access.ts";
import { InvalidImageError, NotFoundError, UnavailableError } from "../models/shared/errors.ts";
import type { ImageDoc } from "../models/images/image.ts";
import { CHANNELS, DEAD_LETTER_CHANNEL, isLastAttempt, type Delivery } from "../models/pipeline/channels.ts";
import { sniff } from "../models/http/image-sniffer.ts";
import { parseMultipart, type UploadedFile } from "../models/http/multipart.ts";
import type { RequestInfo } from "../models/http/request.ts";

const config = getConfig();

type Meta = { user?: AuthUser | null; request?: RequestInfo; $statusCode?: number };
type ClassifierContext<P = Record<string, any>> = Context<P, Meta>;

export interface Classification {
	model: string;
	labels: ScoredLabel[];
	/** Decode + preprocessing + inference, in milliseconds. */
	ms: number;
}

/** A context or the broker: whatever the tagging was started from. */
interface Caller {
	call<T = unknown, P = unknown>(action: string, params?: P, opts?: CallingOptions): Promise<T>;
}

interface ClassifierVars extends BlobReaderVars {
	manifest: LoadedManifest | null;
	pool: ClassifierPool | null;
	/** Tag label of each class. */
	labels: string[];
}

interface ClassifierMethods extends BlobReaderMethods {
	enabledModel(): { manifest: LoadedManifest; pool: ClassifierPool };
	classifyBytes(image: Buffer): Promise<Classification>;
	tagImage(caller: Caller, id: string): Promise<Classification | null>;
	readyUntagged(caller: Caller, id: string, reason: string): Promise<void>;
}

/** An uploaded file through the same checks as an upload (415/422/413), collected in memory. */
async function readUploadedImage(file: UploadedFile): Promise<Buffer> {
	const sniffer = sniff(file.stream, { maxBytes: config.maxUploadBytes, maxPixels: config.maxInputPixels });
	const chunks: Buffer[] = [];
	for await (const chunk of sniffer) chunks.push(chunk as Buffer);
	return Buffer.concat(chunks);
}

const classifier: ServiceSchema<ServiceSettingSchema, ClassifierMethods, ClassifierVars> = {
	name: "classifier",
	mixins: [BlobReaderMixin],
	settings: { rest: "/" },

	actions: {
		classify: {
			// `type: "stream"` hands the raw body to the action; RestSchema's typings lack the key.
			rest: { method: "POST", path: "/classify", type: "stream" } as { method: "POST"; path: string },
			params: { $$strict: true },
			// Requests beyond what the sessions can take wait here, and past the queue get a 429.
			bulkhead: { enabled: true, concurrency: config.classifierSessions * config.classifierMaxBatch * 2, maxQueueSize: 100 },
			async handler(ctx: ClassifierContext) {
				this.enabledModel();
				const { files } = await parseMultipart<Buffer>(
					ctx.stream as Readable,
					ctx.meta.request?.contentType,
					{ maxFileBytes: config.maxUploadBytes, maxFiles: 1, fileFields: ["file", "image"] },
					file => readUploadedImage(file),
					async () => undefined
				);
				return this.classifyBytes(files[0]!);
			}
		},

		retag: {
			rest: "POST /images/:id/retag",
			params: { $$strict: true, id: ID },
			async handler(ctx: ClassifierContext<{ id: string }>) {
				this.enabledModel();
				const doc = await ctx.call<ImageDoc, { id: string }>("images.get", { id: ctx.params.id });
				// Seeing a public image is not owning it: to others there is nothing to retag.
				if (!canManage(ctx.meta.user!, doc)) throw new NotFoundError("Image", doc.id);
				await this.broker.sendToChannel(CHANNELS.classify, { id: doc.id }, { ctx });
				ctx.meta.$statusCode = 202;
				return { id: doc.id, queued: true };
			}
		},

		/** Tags one image now; its labels, or null if it is gone or could not be tagged. For the REPL. */
		tag: {
			visibility: "public",
			params: { $$strict: true, id: ID },
			async handler(ctx: ClassifierContext<{ id: string }>) {
				this.enabledModel();
				return this.tagImage(ctx, ctx.params.id);
			}
		},

		status: {
			visibility: "public",
			params: { $$strict: true },
			handler() {
				if (!this.manifest || !this.pool) return { enabled: false, reason: "No classifier model configured (CLASSIFIER_MODEL)" };
				return { enabled: true, model: this.manifest.id, node: this.broker.nodeID, ...this.pool.stats() };
			}
		}
	},

	channels: {
		[CHANNELS.classify]: {
			group: "classifier",
			context: true,
			maxInFlight: config.classifierSessions * config.classifierMaxBatch,
			// Redelivery covers what tagImage does not retry itself: storage or metadata failures, a node that died mid-work.
			maxRetries: config.jobMaxAttempts,
			deadLettering: { enabled: true, queueName: DEAD_LETTER_CHANNEL },
			async handler(this: any, ctx: Context<{ id: string }>, delivery?: Delivery) {
				const { id } = ctx.params;
				if (delivery?.exhausted) {
					await this.readyUntagged(ctx, id, `tagging never finished in ${delivery.maxAttempts} attempt(s): the classifier stopped each time`);
					return;
				}
				try {
					await this.tagImage(ctx, id);
				} catch (err) {
					this.logger.warn(`Tagging image ${id} failed (attempt ${delivery?.attempt ?? 1}): ${(err as Error).message}`);
					// Out of attempts: the image is usable without automatic tags; the adapter dead-letters the job.
					if (isLastAttempt(delivery)) await this.readyUntagged(ctx, id, `automatic tagging failed: ${(err as Error).message}`);
					throw err;
				}
			}
		}
	},

	methods: {
		enabledModel() {
			if (!this.manifest || !this.pool) {
				throw new UnavailableError("Automatic tagging is disabled: no classifier model is configured (set CLASSIFIER_MODEL)", { reason: "CLASSIFIER_DISABLED" });
			}
			return { manifest: this.manifest, pool: this.pool };
		},

		async classifyBytes(image: Buffer): Promise<Classification> {
			const { manifest, pool } = this.enabledModel();
			const started = performance.now();
			const decoded = await decodeForModel(image, manifest, config.maxInputPixels);
			const probabilities = await pool.classify(decoded);
			const labels = topLabels(probabilities, this.labels, config.classifierTopK, config.classifierMinScore);
			return { model: manifest.id, labels, ms: Math.round((performance.now() - started) * 10) / 10 };
		},

		/**
		 * Classifies a stored image and stores its automatic tags; an image in the pipeline
		 * (`processing`) then becomes ready. Idempotent: a repeated job stores the same tags again
		 * and finds the image ready already. Inference is retried CLASSIFIER_RETRIES times; an
		 * image it still cannot tag (or decode) becomes ready untagged, with the reason.
		 */
		async tagImage(ctx: Caller, id: string): Promise<Classification | null> {
			const doc = await ctx.call<ImageDoc | null, { id: string }>("images.find", { id });
			if (!doc) return null; // deleted since: nothing to do
			if (!this.manifest) {
				// A classifier node without a model (a configuration slip): the image must not wait for it.
				await this.readyUntagged(ctx, id, "automatic tagging is disabled: no classifier model is configured");
				return null;
			}
			const image = await readWhole(await this.readBlob(ctx, doc.blob), doc.size);
			let result: Classification | undefined;
			let failure: Error | undefined;
			for (let attempt = 0; attempt <= config.classifierRetries && !result; attempt++) {
				try {
					result = await this.classifyBytes(image);
				} catch (err) {
					failure = err as Error;
					// An image that cannot be decoded will not decode on a second try.
					if (err instanceof InvalidImageError) break;
				}
			}
			if (!result) {
				this.logger.warn(`Could not tag image ${id}: ${failure!.message}`);
				await this.readyUntagged(ctx, id, `automatic tagging failed: ${failure!.message}`);
				return null;
			}
			const tags = result.labels.map(({ label, score }) => ({ label, score }));
			const tagged = await ctx.call<ImageDoc | null, object>("images.setAutoTags", { id, model: result.model, tags });
			if (!tagged) return null;
			await ctx.call("images.setStatus", { id, status: "ready", from: ["processing"] });
			return result;
		},

		/** Finishes a pipeline image without automatic tags; `reason` stays on it as statusReason. */
		async readyUntagged(ctx: Caller, id: string, reason: string): Promise<void> {
			await ctx.call("images.setStatus", { id, status: "ready", reason: reason.slice(0, 1000), from: ["processing"] });
		}
	},

	created() {
		this.manifest = config.classifierModel ? loadManifest(config.classifierModel) : null;
		this.labels = this.manifest ? classLabels(this.manifest) : [];
		this.pool = null;
	},

	async started() {
		if (!this.manifest) {
			this.logger.info("No classifier model configured (CLASSIFIER_MODEL): automatic tagging is disabled.");
			return;
		}
		this.pool = await ClassifierPool.open(config.classifierModel!, this.manifest, {
			sessions: config.classifierSessions,
			threads: config.classifierThreads,
			maxBatch: config.classifierMaxBatch,
			batchWindowMs: config.classifierBatchWindowMs
		});
		this.logger.info(`Classifier model ${this.manifest.id} loaded (${config.classifierSessions} session(s)).`);
	},

	async stopped() {
		await this.pool?.close();
	}
};

export default classifier;
