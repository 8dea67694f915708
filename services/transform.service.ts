/**
 * Transform: renders variants of stored originals (resize, convert, compress) with sharp and
 * keeps them in a byte-bounded LRU on the storage backend. CPU-bound, so it is its own service:
 * in distributed mode it runs on worker nodes (SERVICES=transform,storage,…) and the gateway's
 * event loop never decodes an image.
 *
 * `variant` answers from the cache or renders once per key however many requests wait for it
 * (single flight), answering before the result is stored. The renders go through `render` /
 * `renderAvif`, whose bulkheads bound how many images this node encodes at once — AVIF
 * separately, so that a burst of AVIF requests queues behind its own small limit instead of
 * starving every other format.
 *
 * `stripped` does the same for the copy of an original that guests get (docs/sharing.md): its
 * metadata removed, cached like a variant (so on every blob store and node, encrypted when the
 * original is, dropped by the garbage collector with the original's last image).
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { join } from "node:path";
import { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { BlobReaderMixin } from "../mixins/blob-reader.mixin.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { InvalidImageError, UnavailableError } from "../models/shared/errors.ts";
import type { ImageDoc } from "../models/images/image.ts";
import { CHANNELS, DEAD_LETTER_CHANNEL, type Delivery } from "../models/pipeline/channels.ts";
import { configureSharp, renderStripped, renderVariant } from "../models/transform/render.ts";
import { FITS, OUTPUT_FORMATS, sourceOf, strippedKey, variantKey, type TransformSpec, type VariantInfo, type VariantSource } from "../models/transform/spec.ts";
import { VariantIndex } from "../models/transform/variant-cache.ts";
import type {
	Flight,
	Rendered,
	StrippedParams,
	TransformCounters,
	TransformMethods,
	TransformVars,
	VariantContext,
	VariantGcReport,
	VariantParams
} from "../types/transform-service.ts";

const config = getConfig();

/** Cached variants judged per images.sourcesInUse call in a garbage collection. */
const GC_BATCH = 100;

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

/**
 * The stream's bytes in one buffer. A render arrives as one chunk, which is returned as it is:
 * Buffer.concat would copy it (one copy of each output, not two).
 */
async function readAll(stream: Readable): Promise<Buffer> {
	const chunks: Buffer[] = await stream.toArray();
	return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

const STRIPPED = { $$strict: true, source: SOURCE, format: { type: "enum", values: OUTPUT_FORMATS } };

/** The render action of a spec: AVIF behind its own bulkhead. */
function renderActionOf(spec: TransformSpec): string {
	return spec.format === "avif" ? "transform.renderAvif" : "transform.render";
}

/** A bulkheaded render action: at most `concurrency` at once, `transformQueueSize` waiting. */
function renderAction(concurrency: number) {
	return {
		visibility: "public" as const,
		bulkhead: { enabled: true, concurrency, maxQueueSize: config.transformQueueSize },
		params: { $$strict: true, source: SOURCE, spec: SPEC },
		async handler(this: TransformMethods, ctx: VariantContext<VariantParams>) {
			return this.render(ctx);
		}
	};
}

const transform: ServiceSchema<ServiceSettingSchema, TransformMethods, TransformVars> = {
	name: "transform",
	mixins: [repositoryMixin(() => new VariantIndex(join(config.dataDir, "variants.db")), "The transform cache index"), BlobReaderMixin],
	settings: { rest: "/transform" },

	actions: {
		/**
		 * The bytes of the variant of `source` for `spec` as a stream, with `ctx.meta.$variant`:
		 * from the cache, or rendered (once, however many ask at the same time). A fresh render is
		 * sent as soon as it is made; storing it in the cache does not hold up the response.
		 */
		variant: {
			visibility: "public",
			params: { $$strict: true, source: SOURCE, spec: SPEC },
			async handler(ctx: VariantContext<VariantParams>): Promise<Readable> {
				const key = variantKey(ctx.params.source, ctx.params.spec, this.settings.avifEffort);
				const cached = await this.openCached(ctx, key);
				if (cached) {
					ctx.meta.$variant = cached.info;
					return cached.stream;
				}
				const { info, data } = await this.flight(ctx, key, renderActionOf(ctx.params.spec), ctx.params).rendered;
				ctx.meta.$variant = info;
				return Readable.from([data]);
			}
		},

		/**
		 * The blob holding the cached variant of `source` for `spec`, or null on a miss: where
		 * S3_PRESIGNED_REDIRECT sends a client instead of streaming the variant. A hit, as serving it is.
		 */
		cachedBlob: {
			visibility: "public",
			params: { $$strict: true, source: SOURCE, spec: SPEC },
			handler(ctx: Context<VariantParams>): string | null {
				const cached = this.repo.get(variantKey(ctx.params.source, ctx.params.spec, this.settings.avifEffort));
				if (!cached) return null;
				this.counters.hits++;
				return cached.blob;
			}
		},

		/**
		 * Where the stripped copy of `source` (in its own `format`) is stored: `{ blob, size }` of
		 * the cache entry, made first if needed. The caller reads the blob itself, so the copy is
		 * served like an original: ranges, and with S3_PRESIGNED_REDIRECT straight from the bucket.
		 */
		stripped: {
			visibility: "public",
			params: STRIPPED,
			async handler(ctx: Context<StrippedParams>): Promise<{ blob: string; size: number }> {
				const key = strippedKey(ctx.params.source);
				const cached = this.repo.get(key);
				if (cached) {
					this.counters.hits++;
					return { blob: cached.blob, size: cached.size };
				}
				await this.flight(ctx, key, "transform.strip", ctx.params).stored;
				// Stored entries outlive their own store (evictBeyond keeps it); another store could
				// evict it just after, in a cache smaller than a few originals: try again then.
				const stored = this.repo.get(key);
				if (!stored) throw new UnavailableError("The stripped copy was evicted from the cache at once; try again");
				return { blob: stored.blob, size: stored.size };
			}
		},

		render: renderAction(config.transformConcurrency),
		renderAvif: renderAction(config.transformAvifConcurrency),

		/** Makes a stripped copy (see `stripped`), behind the same bulkhead size as renders. */
		strip: {
			visibility: "public",
			bulkhead: { enabled: true, concurrency: config.transformConcurrency, maxQueueSize: config.transformQueueSize },
			params: STRIPPED,
			async handler(ctx: VariantContext<StrippedParams>): Promise<Readable> {
				return this.strip(ctx);
			}
		},

		/** This node's counters and cache size: operators watch the hit rate, tests count renders. */
		stats: {
			rest: "GET /stats",
			auth: "admin",
			params: { $$strict: true },
			handler(): TransformCounters & { node: string; pending: number; entries: number; bytes: number; maxBytes: number } {
				const cache = { ...this.repo.totals(), maxBytes: config.transformCacheMaxBytes };
				return { node: this.broker.nodeID, ...this.counters, pending: this.inFlight.size, ...cache };
			}
		},

		/**
		 * The storage garbage collector's call to each transform node: drops this node's cached
		 * variants that nobody used for GC_GRACE_MS and whose original no image has any more, and
		 * releases their blobs (with `dryRun`, only counts them). Entries cached before sources were
		 * recorded are left to the LRU. An entry used meanwhile is kept (removeIfIdle); an original
		 * uploaded again later is rendered again on its first request.
		 */
		collectGarbage: {
			visibility: "public",
			timeout: 0,
			params: { $$strict: true, dryRun: "boolean" },
			async handler(ctx: Context<{ dryRun: boolean }>): Promise<VariantGcReport> {
				const usedBefore = Date.now() - config.gcGraceMs;
				const report: VariantGcReport = { checked: 0, released: 0, blobsDeleted: 0, bytesReclaimed: 0 };
				for (let idle = this.repo.idleEntries(usedBefore, "", GC_BATCH); idle.length > 0; idle = this.repo.idleEntries(usedBefore, idle.at(-1)!.key, GC_BATCH)) {
					const sha256s = [...new Set(idle.map(entry => entry.sourceSha256))];
					const { inUse } = await ctx.call<{ inUse: string[] }, object>("images.sourcesInUse", { sha256s });
					const used = new Set(inUse);
					report.checked += idle.length;
					for (const entry of idle.filter(entry => !used.has(entry.sourceSha256))) {
						if (!ctx.params.dryRun && !this.repo.removeIfIdle(entry.key, usedBefore)) continue;
						const deleted = ctx.params.dryRun || (await ctx.call<{ deleted: boolean }, object>("storage.release", { key: entry.blob, ref: this.repo.refOf(entry.key) })).deleted;
						report.released++;
						if (!deleted) continue;
						report.blobsDeleted++;
						report.bytesReclaimed += entry.size;
					}
				}
				return report;
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
			async handler(ctx: Context<{ id: string; spec: TransformSpec }>, delivery?: Delivery) {
				// Every earlier delivery died with its node (a render that kills it?): do not try again;
				// the adapter dead-letters the job.
				if (delivery?.exhausted) return;
				const doc = await ctx.call<ImageDoc | null, { id: string }>("images.find", { id: ctx.params.id });
				if (!doc) return;
				const params = { source: sourceOf(doc), spec: ctx.params.spec };
				const key = variantKey(params.source, params.spec, this.settings.avifEffort);
				if (this.repo.get(key)) {
					this.counters.hits++;
					return;
				}
				// Done once stored: a failure to store fails the job, which is then retried.
				await this.flight(ctx, key, renderActionOf(params.spec), params).stored;
			}
		}
	},

	methods: {
		/**
		 * The cached bytes, or null on a miss. An entry whose blob is gone (evicted by a render
		 * that finished between the look-up and the read) counts as a miss and leaves the index;
		 * so does one whose blob failed its integrity check (it is a cache: render it again), which
		 * also drops its reference, so the new render is stored afresh.
		 */
		async openCached(ctx: Context, key: string): Promise<{ stream: Readable; info: VariantInfo } | null> {
			const cached = this.repo.get(key);
			if (!cached) return null;
			try {
				const stream = await this.readBlob(ctx, cached.blob);
				this.counters.hits++;
				const { format, width, height, size } = cached;
				return { stream, info: { format, width, height, size } };
			} catch (err) {
				const type = (err as { type?: string }).type;
				if (type !== "NOT_FOUND" && type !== "INTEGRITY_ERROR") throw err;
				if (type === "INTEGRITY_ERROR") await ctx.call("storage.release", { key: cached.blob, ref: this.repo.refOf(key) });
				this.repo.remove(key);
				return null;
			}
		},

		/**
		 * The render of `key` in progress, or a new one by `action` (on any transform node) stored
		 * when done.
		 */
		flight(ctx: Context, key: string, action: string, params: VariantParams | StrippedParams): Flight {
			const current = this.inFlight.get(key);
			if (current) {
				this.counters.joined++;
				return current;
			}
			this.counters.misses++;
			const rendered = (async (): Promise<Rendered> => {
				const sub = ctx as VariantContext<typeof params>;
				const data = await readAll(await sub.call<Readable, typeof params>(action, params));
				// The render action's ctx.meta comes back merged into ours.
				return { info: sub.meta.$variant!, data };
			})();
			const stored = rendered.then(result => this.store(key, params.source, result));
			const flight = { rendered, stored };
			this.inFlight.set(key, flight);
			// Until it is stored, requests for the key join this flight instead of rendering again.
			stored
				.catch(err => this.logger.warn(`Variant ${key} was served but not cached: ${(err as Error).message}`))
				.finally(() => this.inFlight.delete(key));
			return flight;
		},

		/**
		 * Stores a rendered variant, encrypted when its original is (a variant of an encrypted image
		 * never reaches the disk in plaintext), indexes it and trims the LRU. Not tied to the
		 * request that caused it, which may be answered already.
		 */
		async store(key: string, source: VariantSource, { info, data }: Rendered): Promise<void> {
			const ref = this.repo.refOf(key);
			const put = { encrypt: source.encrypted, ref, maxBytes: data.length };
			const stored = await this.broker.call<{ key: string }, typeof put>("storage.put", put, { stream: Readable.from([data]) });
			this.repo.put({ key, blob: stored.key, ...info }, source.sha256);
			for (const evicted of this.repo.evictBeyond(config.transformCacheMaxBytes, key)) {
				this.counters.evictions++;
				await this.broker.call("storage.release", { key: evicted.blob, ref: this.repo.refOf(evicted.key) });
			}
		},

		/** Reads the original and renders it: the CPU-bound part, behind the bulkheads. */
		async render(ctx: VariantContext<VariantParams>): Promise<Readable> {
			const { source, spec } = ctx.params;
			const input = await readAll(await this.readBlob(ctx, source.key));
			this.counters.renders++;
			let rendered;
			try {
				rendered = await renderVariant(input, spec, this.settings);
			} catch (err) {
				throw new InvalidImageError(`The image cannot be transformed: ${(err as Error).message}`, "TRANSFORM_FAILED");
			}
			const { data, format, width, height } = rendered;
			ctx.meta.$variant = { format, width, height, size: data.length };
			return Readable.from([data]);
		},

		/** Reads the original and strips its metadata (or re-encodes it): renderStripped. */
		async strip(ctx: VariantContext<StrippedParams>): Promise<Readable> {
			const { source, format } = ctx.params;
			const input = await readAll(await this.readBlob(ctx, source.key));
			this.counters.renders++;
			let copy;
			try {
				copy = await renderStripped(input, format, this.settings);
			} catch (err) {
				throw new InvalidImageError(`The image's metadata cannot be removed: ${(err as Error).message}`, "STRIP_FAILED");
			}
			ctx.meta.$variant = { format, width: copy.width, height: copy.height, size: copy.data.length };
			return Readable.from([copy.data]);
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
