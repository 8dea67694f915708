/**
 * Automatic tagging with an ONNX image classifier (model described by the CLASSIFIER_MODEL
 * manifest, see models/classifier-manifest.ts). Can run alone on dedicated nodes
 * (SERVICES=classifier): inference runs in worker threads (models/classifier-pool.ts), so its
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
import type { AuthUser } from "../mixins/auth.ts";
import { decodeForModel } from "../models/classifier-input.ts";
import { classLabels, topLabels, type ScoredLabel } from "../models/classifier-labels.ts";
import { loadManifest, type LoadedManifest } from "../models/classifier-manifest.ts";
import { ClassifierPool } from "../models/classifier-pool.ts";
import { InvalidImageError, NotFoundError, PayloadTooLargeError, UnavailableError } from "../models/errors.ts";
import type { ImageDoc } from "../models/image.ts";
import { ImageSniffer } from "../models/image-sniffer.ts";
import { parseMultipart, type UploadedFile } from "../models/multipart.ts";
import type { RequestInfo } from "./api.service.ts";

const config = getConfig();

/** The job stream of the ingest pipeline's tagging step; payload `{id}`. */
export const CLASSIFY_CHANNEL = "imgmesh.classify";

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

interface ClassifierVars {
	manifest: LoadedManifest | null;
	pool: ClassifierPool | null;
	/** Tag label of each class. */
	labels: string[];
}

interface ClassifierMethods {
	enabledModel(): { manifest: LoadedManifest; pool: ClassifierPool };
	classifyBytes(image: Buffer): Promise<Classification>;
	tagImage(caller: Caller, id: string): Promise<ImageDoc | null>;
}

/** An uploaded file through the same checks as an upload (415/422/413), collected in memory. */
async function readUploadedImage(file: UploadedFile): Promise<Buffer> {
	const sniffer = new ImageSniffer({ maxBytes: config.maxUploadBytes, maxPixels: config.maxInputPixels });
	file.stream.on("error", err => sniffer.destroy(err));
	file.stream.pipe(sniffer);
	const chunks: Buffer[] = [];
	for await (const chunk of sniffer) chunks.push(chunk as Buffer);
	return Buffer.concat(chunks);
}

/** A stored original, read whole (bounded: nothing larger than an upload may be stored). */
async function readAll(stream: Readable): Promise<Buffer> {
	const chunks: Buffer[] = [];
	let size = 0;
	for await (const chunk of stream) {
		size += (chunk as Buffer).length;
		if (size > config.maxUploadBytes) {
			stream.destroy();
			throw new PayloadTooLargeError(config.maxUploadBytes);
		}
		chunks.push(chunk as Buffer);
	}
	return Buffer.concat(chunks);
}

const classifier: ServiceSchema<ServiceSettingSchema, ClassifierMethods, ClassifierVars> = {
	name: "classifier",
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
			params: { $$strict: true, id: { type: "string", min: 1, max: 64 } },
			async handler(ctx: ClassifierContext<{ id: string }>) {
				this.enabledModel();
				const doc = await ctx.call<ImageDoc, { id: string }>("images.get", { id: ctx.params.id });
				const user = ctx.meta.user!;
				// Seeing a public image is not owning it: to others there is nothing to retag.
				if (user.role !== "admin" && user.id !== doc.owner) throw new NotFoundError("Image", doc.id);
				await this.broker.sendToChannel(CLASSIFY_CHANNEL, { id: doc.id });
				ctx.meta.$statusCode = 202;
				return { id: doc.id, queued: true };
			}
		},

		/** Tags one image now and returns it (null if it is gone); used by the job and the REPL. */
		tag: {
			visibility: "public",
			params: { $$strict: true, id: { type: "string", min: 1, max: 64 } },
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
		[CLASSIFY_CHANNEL]: {
			group: "classifier",
			maxInFlight: config.classifierSessions * config.classifierMaxBatch,
			// Redelivery covers what this handler cannot: storage or metadata failures, a node that dies mid-work.
			maxRetries: 5,
			async handler(this: any, payload: { id?: unknown }) {
				if (typeof payload?.id !== "string") {
					this.logger.warn(`Dropping a ${CLASSIFY_CHANNEL} message without an image id:`, payload);
					return;
				}
				await this.tagImage(this.broker, payload.id);
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
		 * Classifies a stored image and stores its automatic tags. Idempotent: a repeated job
		 * replaces the same tags again. An image in the pipeline (`processing`) then becomes
		 * ready; one the classifier cannot tag becomes ready too, with the reason.
		 */
		async tagImage(ctx: Caller, id: string): Promise<ImageDoc | null> {
			let image: Buffer;
			try {
				image = await readAll(await ctx.call<Readable, { id: string }>("images.original", { id }));
			} catch (err) {
				if (err instanceof NotFoundError) return null; // deleted since: nothing to do
				throw err;
			}
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
				const doc = await ctx.call<ImageDoc | null, { id: string }>("images.get", { id }).catch(() => null);
				if (doc?.status === "processing") {
					await ctx.call("images.setStatus", { id, status: "ready", reason: `Automatic tagging failed: ${failure!.message}` });
				}
				return doc;
			}
			const tags = result.labels.map(({ label, score }) => ({ label, score }));
			const doc = await ctx.call<ImageDoc | null, object>("images.setAutoTags", { id, model: result.model, tags });
			if (doc?.status === "processing") return ctx.call<ImageDoc, object>("images.setStatus", { id, status: "ready" });
			return doc;
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
