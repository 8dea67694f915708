/**
 * The shape of the images service as its parts see it: services/images.service.ts and the mixins
 * it is assembled from (mixins/image-delivery.mixin.ts, mixins/image-pipeline.mixin.ts,
 * mixins/shared-delivery.mixin.ts) share these methods and state.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Readable } from "node:stream";
import type { BlobReaderMethods, BlobReaderVars } from "../mixins/blob-reader.mixin.ts";
import type { RequestInfo } from "../models/http/request.ts";
import type { CacheScope } from "../models/http/conditional.ts";
import type { ImageDoc, ImageRepository, Rendition } from "../models/images/image.ts";
import type { StagedSource, UploadOptions } from "../models/images/new-image.ts";
import type { ViewCounter } from "../models/images/view-counter.ts";
import type { SearchQuery } from "../models/images/search-query.ts";
import type { Viewer } from "../models/shared/access.ts";
import type { PublicImage } from "../models/images/public-image.ts";
import type { OutputFormat, TransformQuery, TransformSpec, VariantInfo } from "../models/transform/spec.ts";
import type { AuthUser } from "../models/users/user.ts";

/**
 * What a share link lets its visitors have (set by the shares service's delivery): the original's
 * metadata and name, and the original at all (without it, the `large` preset stands in).
 */
export interface Grant {
	showMetadata: boolean;
	allowDownload: boolean;
}

export interface ImagesMeta {
	user?: AuthUser | null;
	/** What a share link lets its guest have (mixins/shared-delivery.mixin.ts sets it). */
	grant?: Grant;
	request?: RequestInfo;
	$statusCode?: number;
	$location?: string;
	$responseType?: string;
	$responseHeaders?: Record<string, string | number>;
	$variant?: VariantInfo;
}
export type ImagesContext<P = Record<string, any>> = Context<P, ImagesMeta>;

export interface ImagesVars extends BlobReaderVars {
	repo: ImageRepository;
	/** Views waiting to be written in the next batch (models/images/view-counter.ts). */
	views: ViewCounter;
	/** fastest-validator checker: true, or the list of problems. */
	checkUploadFields: (value: Record<string, unknown>) => unknown;
	/** The trash's retention sweep (mixins/image-trash.mixin.ts): its timer, and the sweep under way. */
	trashTimer: NodeJS.Timeout | undefined;
	trashSweep: Promise<unknown> | undefined;
}

/** Stored bytes to serve as an original (serveStored): their validator, name, and where they are. */
export interface StoredBytes {
	etag: string;
	filename: string;
	locate(): Promise<{ blob: string; size: number }>;
}

export interface VariantOptions {
	/** The format was negotiated from Accept (format=auto): caches must key on it. */
	negotiated: boolean;
	countsView: boolean;
}

export interface ImagesMethods extends BlobReaderMethods {
	// services/images.service.ts
	viewerOf(ctx: ImagesContext): Viewer;
	visibleImage(ctx: ImagesContext, id: string): Promise<ImageDoc>;
	editableImage(ctx: ImagesContext, id: string): Promise<ImageDoc>;
	albumGrantsView(ctx: ImagesContext, imageId: string, userId: string): Promise<boolean>;
	albumImageIds(ctx: ImagesContext, albumId: string): Promise<string[]>;
	searchQueryOf(q: string, viewer: Viewer): Promise<SearchQuery>;
	ownerOf(ctx: ImagesContext, names: string[]): Promise<string | null | undefined>;
	ownerExists(ctx: ImagesContext, owner: string): Promise<boolean>;
	stage(ctx: ImagesContext, stream: Readable, source: StagedSource, options: UploadOptions): Promise<ImageDoc>;
	uploadOptions(ctx: ImagesContext, rawFields: Readonly<Record<string, string>>): Promise<UploadOptions>;
	resolveCategory(ctx: ImagesContext, ref: string | undefined): Promise<string | null>;
	deleteImage(ctx: ImagesContext, doc: ImageDoc, options?: { onlyTrashed?: boolean }): Promise<boolean>;
	commit(ctx: ImagesContext, doc: ImageDoc): Promise<void>;
	commitAll(ctx: ImagesContext, docs: ImageDoc[]): Promise<void>;
	// mixins/image-pipeline.mixin.ts
	enqueue(ctx: ImagesContext, doc: ImageDoc): Promise<void>;
	restartPipeline(ctx: ImagesContext, id: string): Promise<void>;
	releaseRenditions(ctx: ImagesContext, id: string, renditions: Rendition[]): Promise<void>;
	releaseOrLog(ctx: ImagesContext, key: string, ref: string): Promise<void>;
	// mixins/image-trash.mixin.ts
	liveImage(id: string): Promise<ImageDoc | null>;
	trashImage(ctx: ImagesContext, doc: ImageDoc): Promise<void>;
	purgeAll(ctx: ImagesContext, next: () => Promise<ImageDoc[]>): Promise<number>;
	// mixins/image-delivery.mixin.ts
	publicImage(ctx: ImagesContext, id: string): Promise<ImageDoc>;
	isGuest(ctx: ImagesContext, doc: ImageDoc): boolean;
	showsMetadata(ctx: ImagesContext, doc: ImageDoc): boolean;
	cacheScope(ctx: ImagesContext, doc: ImageDoc): CacheScope;
	downloadName(ctx: ImagesContext, doc: ImageDoc, format: OutputFormat): string;
	imageView(ctx: ImagesContext, doc: ImageDoc): PublicImage;
	serveDownload(ctx: ImagesContext, doc: ImageDoc, query: TransformQuery): Promise<Readable | null>;
	serveTransform(ctx: ImagesContext, doc: ImageDoc, query: TransformQuery, signed: boolean): Promise<Readable | null>;
	serveContent(ctx: ImagesContext, doc: ImageDoc): Promise<Readable | null>;
	serveStripped(ctx: ImagesContext, doc: ImageDoc): Promise<Readable | null>;
	serveStored(ctx: ImagesContext, doc: ImageDoc, bytes: StoredBytes): Promise<Readable | null>;
	serveRendition(ctx: ImagesContext, doc: ImageDoc, name: string): Promise<Readable | null>;
	serveStoredRendition(ctx: ImagesContext, doc: ImageDoc, rendition: Rendition): Promise<Readable | null>;
	mayRedirectToBucket(ctx: ImagesContext, doc: ImageDoc): boolean;
	redirectToBucket(ctx: ImagesContext, doc: ImageDoc, key: string): Promise<boolean>;
	serveVariant(ctx: ImagesContext, doc: ImageDoc, spec: TransformSpec, options: VariantOptions): Promise<Readable | null>;
	// mixins/shared-delivery.mixin.ts
	sharedImage(ctx: ImagesContext, id: string): Promise<ImageDoc>;
}

/**
 * A part of the images service: written against the whole service's `this`, mixed in as any
 * schema (Moleculer's mixin typings know nothing of the service they end up in).
 */
export function imagesMixin(schema: Partial<ServiceSchema<ServiceSettingSchema, ImagesMethods, ImagesVars>>): Partial<ServiceSchema> {
	return schema as Partial<ServiceSchema>;
}
