/** The shape of the transform service (services/transform.service.ts): its params, state and methods. Type-only. */
import type { BlobReaderMethods, BlobReaderVars } from "../mixins/blob-reader.mixin.ts";
import type { Context } from "moleculer";
import type { Readable } from "node:stream";
import type { PipelineSettings } from "../models/transform/render.ts";
import type { OutputFormat, TransformSpec, VariantInfo, VariantSource } from "../models/transform/spec.ts";
import type { VariantIndex } from "../models/transform/variant-cache.ts";

export interface VariantParams {
	source: VariantSource;
	spec: TransformSpec;
}

/** The stripped copy of an original (transform.stripped): the original's own format. */
export interface StrippedParams {
	source: VariantSource;
	format: OutputFormat;
}

/** The actions that stream a variant's bytes send its VariantInfo along as `ctx.meta.$variant`. */
export type VariantContext<P> = Context<P, { $variant?: VariantInfo }>;

export interface Rendered {
	info: VariantInfo;
	data: Buffer;
}

/** One render of a variant key and its trip into the cache, shared by every request for it. */
export interface Flight {
	rendered: Promise<Rendered>;
	/** Settles once the variant is in the cache (rejects if storing failed). */
	stored: Promise<void>;
}

/** What this node did since it started; `renders` counts sharp pipeline runs. */
export interface TransformCounters {
	hits: number;
	misses: number;
	/** Requests that waited for a render another request had started. */
	joined: number;
	renders: number;
	evictions: number;
}

/** What transform.collectGarbage did on one node (in a dry run: would have done). */
export interface VariantGcReport {
	/** Idle entries whose original was looked up. */
	checked: number;
	/** Entries dropped, their reference released. */
	released: number;
	blobsDeleted: number;
	/** Bytes of the deleted blobs. */
	bytesReclaimed: number;
}

export interface TransformVars extends BlobReaderVars {
	repo: VariantIndex;
	settings: PipelineSettings;
	/** Renders not yet in the cache, by variant key: one per key, however many requests wait. */
	inFlight: Map<string, Flight>;
	counters: TransformCounters;
}
export interface TransformMethods extends BlobReaderMethods {
	openCached(ctx: Context, key: string): Promise<{ stream: Readable; info: VariantInfo } | null>;
	flight(ctx: Context, key: string, action: string, params: VariantParams | StrippedParams): Flight;
	store(key: string, source: VariantSource, rendered: Rendered): Promise<void>;
	render(ctx: VariantContext<VariantParams>): Promise<Readable>;
	strip(ctx: VariantContext<StrippedParams>): Promise<Readable>;
}
