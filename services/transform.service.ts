/**
 * Transform: renders variants of stored originals (resize, convert, compress) with sharp and
 * keeps them in a byte-bounded LRU on the storage backend. CPU-bound, so it is its own service:
 * in distributed mode it runs on worker nodes (SERVICES=transform,storage,…) and the gateway's
 * event loop never decodes an image.
 *
 * `variant` answers from the cache or renders once per key however many requests wait for it
 * (single flight); the renders themselves go through `render` / `renderAvif`, whose bulkheads
 * bound how many images this node encodes at once — AVIF separately, so that a burst of AVIF
 * requests queues behind its own small limit instead of starving every other format.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { join } from "node:path";
import { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { repositoryMixin } from "../mixins/repository.ts";
import { InvalidImageError } from "../models/errors.ts";
import type { ImageDoc } from "../models/image.ts";
import { CHANNELS, DEAD_LETTER_CHANNEL } from "../models/jobs.ts";
import { configureSharp, renderVariant, type PipelineSettings } from "../models/transform-pipeline.ts";
import { FITS, OUTPUT_FORMATS, sourceOf, variantKey, type TransformSpec, type VariantSource } from "../models/transform-spec.ts";
import { VariantIndex, type CachedVariant } from "../models/variant-cache.ts";

const config = getConfig();

const SOURCE = {
	type: "object",
	strict: true,
	props: { key: { type: "string", min: 1, max: 128 }, sha256: { type: "string", length: 64 }, encrypted: "boolean" }
};
const SIDE = { type: "number", integer: true, min: 1, nullable: true };
const SPEC = {
	type: "object",
	strict: true,
	props: {
		format: { type: "enum", values: OUTPUT_FORMATS },
		width: SIDE,
		height: SIDE,
		fit: { type: "enum", values: FITS },
		quality: { type: "number", integer: true, min: 1, max: 100, nullable: true }
	}
};

interface VariantParams {
	source: VariantSource;
	spec: TransformSpec;
}
interface RenderParams extends VariantParams {
	key: string;
	/** The storage reference the rendered blob is held under. */
	ref: string;
}

/** What this node did since it started; `renders` counts sharp pipeline runs. */
interface TransformCounters {
	hits: number;
	misses: number;
	/** Requests that waited for a render another request had started. */
	joined: number;
	renders: number;
	evictions: number;
}

interface TransformVars {
	repo: VariantIndex;
	settings: PipelineSettings;
	/** Renders in progress by variant key: one per key, however many requests wait. */
	inFlight: Map<string, Promise<CachedVariant>>;
	counters: TransformCounters;
}
interface TransformMethods {
	fill(ctx: Context, key: string, params: VariantParams): Promise<CachedVariant>;
	renderAndStore(ctx: Context<RenderParams>): Promise<CachedVariant>;
}

async function readAll(stream: Readable): Promise<Buffer> {
	return Buffer.concat(await stream.toArray());
}

/** A bulkheaded render action: at most `concurrency` at once, `transformQueueSize` waiting. */
function renderAction(concurrency: number) {
	return {
		visibility: "public" as const,
		bulkhead: { enabled: true, concurrency, maxQueueSize: config.transformQueueSize },
		params: { $$strict: true, source: SOURCE, spec: SPEC, key: { type: "string", length: 64 }, ref: { type: "string", max: 128 } },
		async handler(this: TransformMethods, ctx: Context<RenderParams>) {
			return this.renderAndStore(ctx);
		}
	};
}

const transform: ServiceSchema<ServiceSettingSchema, TransformMethods, TransformVars> = {
	name: "transform",
	mixins: [repositoryMixin(() => new VariantIndex(join(config.dataDir, "variants.db")), "The transform cache index")],
	settings: { rest: "/transform" },

	actions: {
		/** The cached variant of `source` for `spec`, rendering it first when it is not cached. */
		variant: {
			visibility: "public",
			params: { $$strict: true, source: SOURCE, spec: SPEC },
			async handler(ctx: Context<VariantParams>): Promise<CachedVariant> {
				const key = variantKey(ctx.params.source, ctx.params.spec, this.settings.avifEffort);
				const cached = this.repo.get(key);
				if (cached) {
					this.counters.hits++;
					return cached;
				}
				const pending = this.inFlight.get(key);
				if (pending) {
					this.counters.joined++;
					return pending;
				}
				this.counters.misses++;
				const filled = this.fill(ctx, key, ctx.params).finally(() => this.inFlight.delete(key));
				this.inFlight.set(key, filled);
				return filled;
			}
		},

		render: renderAction(config.transformConcurrency),
		renderAvif: renderAction(config.transformAvifConcurrency),

		/** This node's counters and cache size: operators watch the hit rate, tests count renders. */
		stats: {
			rest: "GET /stats",
			auth: "admin",
			params: { $$strict: true },
			handler(): TransformCounters & { node: string; entries: number; bytes: number; maxBytes: number } {
				return { node: this.broker.nodeID, ...this.counters, ...this.repo.totals(), maxBytes: config.transformCacheMaxBytes };
			}
		}
	},

	channels: {
		/**
		 * Compress jobs (POST /images/:id/compress): render the variant into the cache, where the
		 * rendition named after it is served from. Idempotent: a second delivery is a cache hit.
		 * An image deleted meanwhile leaves nothing to do.
		 */
		[CHANNELS.compress]: {
			group: "transform",
			context: true,
			maxInFlight: config.workerMaxInFlight,
			maxRetries: config.jobMaxAttempts,
			deadLettering: { enabled: true, queueName: DEAD_LETTER_CHANNEL },
			async handler(ctx: Context<{ id: string; spec: TransformSpec }>) {
				const doc = await ctx.call<ImageDoc | null, { id: string }>("images.find", { id: ctx.params.id });
				if (!doc) return;
				await ctx.call("transform.variant", { source: sourceOf(doc), spec: ctx.params.spec });
			}
		}
	},

	methods: {
		/** Renders (on any transform node), indexes the result here, then trims the LRU. */
		async fill(ctx: Context, key: string, params: VariantParams): Promise<CachedVariant> {
			const action = params.spec.format === "avif" ? "transform.renderAvif" : "transform.render";
			const variant = await ctx.call<CachedVariant, RenderParams>(action, { ...params, key, ref: this.repo.refOf(key) });
			this.repo.put(variant);
			for (const evicted of this.repo.evictBeyond(config.transformCacheMaxBytes, key)) {
				this.counters.evictions++;
				await ctx.call("storage.release", { key: evicted.blob, ref: this.repo.refOf(evicted.key) });
			}
			return variant;
		},

		/**
		 * Reads the original, renders, and stores the bytes encrypted when the original is: a
		 * variant of an encrypted image never reaches the disk in plaintext.
		 */
		async renderAndStore(ctx: Context<RenderParams>): Promise<CachedVariant> {
			const { source, spec, key, ref } = ctx.params;
			const input = await readAll(await ctx.call<Readable, { key: string }>("storage.get", { key: source.key }));
			this.counters.renders++;
			let rendered;
			try {
				rendered = await renderVariant(input, spec, this.settings);
			} catch (err) {
				throw new InvalidImageError(`The image cannot be transformed: ${(err as Error).message}`, "TRANSFORM_FAILED");
			}
			const { data, format, width, height } = rendered;
			const stored = await ctx.call<{ key: string }, object>(
				"storage.put",
				{ encrypt: source.encrypted, ref, maxBytes: data.length },
				{ stream: Readable.from([data]) }
			);
			return { key, blob: stored.key, size: data.length, format, width, height };
		}
	},

	created() {
		configureSharp(config.transformThreads);
		this.settings = { limitInputPixels: config.maxInputPixels, avifEffort: config.transformAvifEffort };
		this.inFlight = new Map();
		this.counters = { hits: 0, misses: 0, joined: 0, renders: 0, evictions: 0 };
	}
};

export default transform;
