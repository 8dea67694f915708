/**
 * Images: upload (multipart, streamed into storage), metadata, search, content delivery with
 * ETag/Range, views and stats. Bytes live in the storage service; metadata in the repository.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import type { AuthUser } from "../mixins/auth.mixin.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { openImageRepository } from "../models/backends.ts";
import type { BlobRef } from "../models/storage/blob-store.ts";
import { BadRequestError, ConflictError, NotFoundError, RangeNotSatisfiableError } from "../models/shared/errors.ts";
import { newId, nowIso } from "../models/shared/ids.ts";
import type { ImageDoc, ImageFilter, ImageMetadata, ImagePatch, ImageRepository, ImageStatus, Rendition, SortKey, Tag, Viewer, Visibility } from "../models/images/image.ts";
import { CHANNELS, renditionRef } from "../models/pipeline/channels.ts";
import { ImageSniffer } from "../models/http/image-sniffer.ts";
import { parseMultipart } from "../models/http/multipart.ts";
import { parseRange } from "../models/http/range.ts";
import { parseSearchQuery } from "../models/images/search-query.ts";
import {
	checkOutputPixels,
	compressName,
	contentTypeOf,
	FITS,
	FORMAT_NAMES,
	MAX_DIMENSION,
	MAX_DPR,
	normalizeTransform,
	RENDITION_SIZES,
	renditionByName,
	sourceOf,
	variantFilename,
	variantKey,
	wantsTransform,
	type TransformQuery,
	type TransformSpec,
	type VariantInfo
} from "../models/transform/spec.ts";
import { hashtagsOf, normalizeLabel, tagList } from "../models/images/tags.ts";
import type { RequestInfo } from "./api.service.ts";

const config = getConfig();

type Meta = {
	user?: AuthUser | null;
	request?: RequestInfo;
	$statusCode?: number;
	$responseType?: string;
	$responseHeaders?: Record<string, string | number>;
	$variant?: VariantInfo;
};
type ImagesContext<P = Record<string, any>> = Context<P, Meta>;

const ID = { type: "string", min: 1, max: 64 };
const VISIBILITY = { type: "enum", values: ["private", "public"], optional: true };
const TEXT = (max: number) => ({ type: "string", max, trim: true, optional: true });
const TAGS = [
	{ type: "array", items: { type: "string", max: 50 }, max: 50, optional: true },
	{ type: "string", max: 2000, optional: true }
];

const SIDE = { type: "number", integer: true, min: 1, max: MAX_DIMENSION, convert: true, optional: true };
/** Query parameters of a transformed download; their combination is checked by normalizeTransform. */
const TRANSFORM = {
	format: { type: "enum", values: [...Object.keys(FORMAT_NAMES), "auto"], optional: true },
	w: SIDE,
	h: SIDE,
	fit: { type: "enum", values: FITS, optional: true },
	q: { type: "number", integer: true, min: 1, max: 100, convert: true, optional: true },
	dpr: { type: "number", min: 0.1, max: MAX_DPR, convert: true, optional: true }
};
const EXT = { type: "enum", values: Object.keys(FORMAT_NAMES) };
const SIZE = { type: "enum", values: RENDITION_SIZES.map(String) };
/** What POST /images/:id/compress makes when not told otherwise. */
const COMPRESS_DEFAULTS = { format: "webp", quality: 70 };

/** Upload form fields, checked once before the first file is stored. */
const UPLOAD_FIELDS = {
	$$strict: true,
	name: TEXT(200),
	description: TEXT(5000),
	category: TEXT(64),
	tags: { type: "string", max: 2000, optional: true },
	visibility: VISIBILITY,
	encrypted: { type: "enum", values: ["true", "false"], optional: true }
};

/** The checked form fields of an upload and its resolved category, shared by all its files. */
interface UploadOptions {
	fields: UploadFields;
	category: string | null;
}

interface UploadFields {
	name?: string;
	description?: string;
	category?: string;
	tags?: string;
	visibility?: Visibility;
	encrypted?: "true" | "false";
}

/** Where staged bytes come from: who owns them, under which id and file name. */
interface StagedSource {
	id: string;
	owner: { id: string; username: string };
	filename: string;
}

interface ImagesVars {
	repo: ImageRepository;
	/** fastest-validator checker: true, or the list of problems. */
	checkUploadFields: (value: Record<string, unknown>) => unknown;
}
interface ImagesMethods {
	viewerOf(ctx: ImagesContext): Viewer;
	visibleImage(ctx: ImagesContext, id: string): Promise<ImageDoc>;
	editableImage(ctx: ImagesContext, id: string): Promise<ImageDoc>;
	stage(ctx: ImagesContext, stream: Readable, source: StagedSource, fields: UploadFields, category: string | null): Promise<ImageDoc>;
	uploadOptions(ctx: ImagesContext, rawFields: Readonly<Record<string, string>>): Promise<UploadOptions>;
	resolveCategory(ctx: ImagesContext, ref: string | undefined): Promise<string | null>;
	deleteImage(ctx: ImagesContext, doc: ImageDoc): Promise<void>;
	releaseRenditions(ctx: ImagesContext, id: string, renditions: Rendition[]): Promise<void>;
	enqueue(ctx: ImagesContext, doc: ImageDoc): Promise<void>;
	commit(ctx: ImagesContext, doc: ImageDoc): Promise<void>;
	serveContent(ctx: ImagesContext, doc: ImageDoc): Promise<Readable | null>;
	serveVariant(ctx: ImagesContext, doc: ImageDoc, spec: TransformSpec, options: VariantOptions): Promise<Readable | null>;
	serveDownload(ctx: ImagesContext, doc: ImageDoc, query: TransformQuery): Promise<Readable | null>;
	publicImage(ctx: ImagesContext, id: string): Promise<ImageDoc>;
	serveRendition(ctx: ImagesContext, doc: ImageDoc, name: string): Promise<Readable | null>;
	serveStoredRendition(ctx: ImagesContext, doc: ImageDoc, rendition: Rendition): Promise<Readable | null>;
}

interface VariantOptions {
	/** The format was negotiated from Accept (format=auto): caches must key on it. */
	negotiated: boolean;
	countsView: boolean;
}

export type PublicRendition = Omit<Rendition, "blob">;
export type PublicImage = Omit<ImageDoc, "blob" | "renditions"> & { renditions: PublicRendition[] };

/** What clients see: everything but the internal storage keys. */
function toPublicImage(doc: ImageDoc): PublicImage {
	const { blob: _internal, renditions, ...rest } = doc;
	return { ...rest, renditions: renditions.map(({ blob: _key, ...rendition }) => rendition) };
}

/** The event payload of every image.* event. */
function imageEvent(doc: ImageDoc): { id: string; owner: string } {
	return { id: doc.id, owner: doc.owner };
}

const STATUS = { type: "enum", values: ["processing", "ready", "failed"] };

function baseName(filename: string): string {
	const dot = filename.lastIndexOf(".");
	return (dot > 0 ? filename.slice(0, dot) : filename).slice(0, 200) || "image";
}

function userTags(list: string[] | string | undefined, description: string): Tag[] {
	const labels = tagList(list);
	const tags: Tag[] = labels.map(label => ({ label, source: "user" }));
	for (const label of hashtagsOf(description)) {
		if (!labels.includes(label)) tags.push({ label, source: "hashtag" });
	}
	return tags;
}

/** If-None-Match uses the weak comparison (RFC 9110 §13.1.2): a `W/` prefix does not matter. */
function etagMatches(header: string | undefined, etag: string): boolean {
	if (!header) return false;
	return header.trim() === "*" || header.split(",").some(candidate => candidate.trim().replace(/^W\//, "") === etag);
}

/** Headers of any bytes derived from `doc` (the original or a variant), named `filename`. */
function deliveryHeaders(doc: ImageDoc, etag: string, filename: string): Record<string, string> {
	return {
		ETag: `"${etag}"`,
		// An id's bytes never change; privacy decides who may keep them.
		"Cache-Control": doc.visibility === "public" ? "public, max-age=3600" : "private, max-age=3600",
		"Content-Disposition": `inline; filename*=UTF-8''${encodeURIComponent(filename)}`,
		"X-Content-Type-Options": "nosniff"
	};
}

function contentHeaders(doc: ImageDoc): Record<string, string> {
	return { ...deliveryHeaders(doc, doc.sha256, doc.filename), "Accept-Ranges": "bytes" };
}

const images: ServiceSchema<ServiceSettingSchema, ImagesMethods, ImagesVars> = {
	name: "images",
	mixins: [repositoryMixin(() => openImageRepository(config), "The image metadata store")],
	settings: { rest: "/" },

	actions: {
		upload: {
			// `type: "stream"` hands the raw body to the action; RestSchema's typings lack the key.
			rest: { method: "POST", path: "/images", type: "stream" } as { method: "POST"; path: string },
			// A retry would re-send a request stream that is already partly read.
			retryPolicy: { enabled: false },
			params: { $$strict: true },
			async handler(ctx: ImagesContext) {
				// Fields cannot change once the first file arrives: check them and resolve the category once.
				let options: Promise<UploadOptions> | undefined;
				const { files } = await parseMultipart<ImageDoc>(
					ctx.stream as Readable,
					ctx.meta.request?.contentType,
					{ maxFileBytes: config.maxUploadBytes, maxFiles: config.maxUploadFiles, fileFields: ["file", "image"] },
					async (file, rawFields) => {
						options ??= this.uploadOptions(ctx, rawFields);
						const { fields, category } = await options;
						const source = { id: newId(), owner: ctx.meta.user!, filename: file.filename };
						return this.stage(ctx, file.stream, source, fields, category);
					},
					async staged => {
						await Promise.all(staged.map(doc => ctx.call("storage.release", { key: doc.blob, ref: doc.id })));
					}
				);
				for (const doc of files) await this.commit(ctx, doc);
				ctx.meta.$statusCode = 201;
				return { images: files.map(toPublicImage) };
			}
		},

		/**
		 * Stores an image from `ctx.stream` on behalf of another service (imports): the same
		 * checks, storage and metadata as an upload. Idempotent per id: a repeated call (a
		 * redelivered message) returns the image the first one made, with `created: false`.
		 */
		ingest: {
			visibility: "public",
			params: {
				$$strict: true,
				id: ID,
				owner: ID,
				ownerName: { type: "string", min: 1, max: 64 },
				filename: { type: "string", min: 1, max: 255 },
				category: { type: "string", max: 64, optional: true, nullable: true },
				tags: UPLOAD_FIELDS.tags,
				visibility: VISIBILITY,
				encrypted: UPLOAD_FIELDS.encrypted
			},
			async handler(ctx: ImagesContext<{ id: string; owner: string; ownerName: string; filename: string; category?: string | null } & UploadFields>) {
				if (!(ctx.stream instanceof Readable)) throw new BadRequestError("images.ingest takes the bytes as a stream", "STREAM_REQUIRED");
				const { id, owner, ownerName, filename, category, ...fields } = ctx.params;
				const existing = await this.repo.get(id);
				if (existing) {
					ctx.stream.resume();
					return { image: toPublicImage(existing), created: false };
				}
				const source = { id, owner: { id: owner, username: ownerName }, filename };
				const doc = await this.stage(ctx, ctx.stream, source, fields, category ?? null);
				try {
					await this.commit(ctx, doc);
				} catch (err) {
					// A twin call got there first. Its blob reference is this id too, so it stays; any
					// other failure is retried with the same id, which finds the stored blob again.
					const twin = err instanceof ConflictError ? await this.repo.get(id) : null;
					if (!twin) throw err;
					return { image: toPublicImage(twin), created: false };
				}
				return { image: toPublicImage(doc), created: true };
			}
		},

		list: {
			rest: "GET /images",
			auth: "optional",
			params: {
				$$strict: true,
				q: { type: "string", max: 500, optional: true },
				tag: { type: "string", max: 500, optional: true },
				category: { type: "string", max: 64, optional: true },
				owner: { type: "string", max: 32, optional: true },
				visibility: VISIBILITY,
				sort: { type: "enum", values: ["createdAt", "-createdAt", "views", "-views", "name"], optional: true },
				limit: { type: "number", integer: true, min: 1, max: 100, convert: true, optional: true },
				cursor: { type: "string", max: 500, optional: true }
			},
			async handler(ctx: ImagesContext) {
				const p = ctx.params;
				const filter: ImageFilter = {
					viewer: this.viewerOf(ctx),
					query: p.q ? parseSearchQuery(p.q) : undefined,
					tags: p.tag ? tagList(p.tag) : undefined,
					category: p.category,
					ownerName: p.owner,
					visibility: p.visibility,
					sort: (p.sort as SortKey) ?? "-createdAt",
					limit: p.limit ?? 50,
					cursor: p.cursor
				};
				const page = await this.repo.search(filter);
				return { ...page, items: page.items.map(toPublicImage) };
			}
		},

		get: {
			rest: "GET /images/:id",
			auth: "optional",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext) {
				return toPublicImage(await this.visibleImage(ctx, ctx.params.id));
			}
		},

		/** The original bytes, or a variant of them when any transform parameter is given. */
		content: {
			rest: "GET /images/:id/content",
			auth: "optional",
			params: { $$strict: true, id: ID, ...TRANSFORM },
			async handler(ctx: ImagesContext) {
				const { id, ...query } = ctx.params;
				return this.serveDownload(ctx, await this.visibleImage(ctx, id), query);
			}
		},

		/** GET /images/:id/content.<ext>: a variant in the format the extension names. */
		contentAs: {
			rest: "GET /images/:id/content.:ext",
			auth: "optional",
			params: { $$strict: true, id: ID, ext: EXT, ...TRANSFORM },
			async handler(ctx: ImagesContext) {
				const { id, ...query } = ctx.params;
				return this.serveDownload(ctx, await this.visibleImage(ctx, id), query);
			}
		},

		thumbnail: {
			rest: "GET /images/:id/thumbnail",
			auth: "optional",
			params: { $$strict: true, id: ID, size: SIZE },
			async handler(ctx: ImagesContext) {
				return this.serveRendition(ctx, await this.visibleImage(ctx, ctx.params.id), ctx.params.size);
			}
		},

		/** A rendition by name: "240", "720" or a compressed one ("compress-q70-webp"). */
		rendition: {
			rest: "GET /images/:id/renditions/:name",
			auth: "optional",
			params: { $$strict: true, id: ID, name: { type: "string", max: 40 } },
			async handler(ctx: ImagesContext) {
				return this.serveRendition(ctx, await this.visibleImage(ctx, ctx.params.id), ctx.params.name);
			}
		},

		/**
		 * Queues a compressed rendition (a re-encode at `quality` in `format`, same size) on the
		 * `imgmesh.compress` channel: 202 with the job, whose result is the rendition named in it.
		 */
		compress: {
			rest: "POST /images/:id/compress",
			params: {
				$$strict: true,
				id: ID,
				quality: { type: "number", integer: true, min: 1, max: 100, optional: true },
				format: { ...EXT, optional: true }
			},
			async handler(ctx: ImagesContext) {
				const doc = await this.editableImage(ctx, ctx.params.id);
				const query = { format: ctx.params.format ?? COMPRESS_DEFAULTS.format, q: ctx.params.quality ?? COMPRESS_DEFAULTS.quality };
				const spec = normalizeTransform(query, doc, { maxOutputPixels: config.transformMaxOutputPixels });
				const name = compressName(spec);
				await this.broker.sendToChannel(CHANNELS.compress, { id: doc.id, spec }, { ctx });
				const location = `/api/images/${doc.id}/renditions/${name}`;
				ctx.meta.$statusCode = 202;
				ctx.meta.$responseHeaders = { Location: location };
				return { job: { id: `${doc.id}/${name}`, type: "compress", image: doc.id, rendition: name, status: "queued", location } };
			}
		},

		/** GET /p/:id and /p/:id.<ext>: a public image for anyone; a private one does not exist. */
		publicContent: {
			auth: "public",
			params: { $$strict: true, id: ID, ...TRANSFORM },
			async handler(ctx: ImagesContext) {
				const { id: file, ...query } = ctx.params;
				const dot = file.lastIndexOf(".");
				const id = dot > 0 ? file.slice(0, dot) : file;
				const ext = dot > 0 ? file.slice(dot + 1) : undefined;
				return this.serveDownload(ctx, await this.publicImage(ctx, id), { ...query, ext });
			}
		},

		/** GET /p/:id/thumbnail: a public image's rendition. */
		publicThumbnail: {
			auth: "public",
			params: { $$strict: true, id: ID, size: SIZE },
			async handler(ctx: ImagesContext) {
				return this.serveRendition(ctx, await this.publicImage(ctx, ctx.params.id), ctx.params.size);
			}
		},

		update: {
			rest: "PATCH /images/:id",
			params: {
				$$strict: true,
				id: ID,
				name: { type: "string", min: 1, max: 200, trim: true, optional: true },
				description: { type: "string", max: 5000, optional: true },
				tags: TAGS,
				category: { type: "string", max: 64, optional: true, nullable: true },
				visibility: VISIBILITY
			},
			async handler(ctx: ImagesContext) {
				const doc = await this.editableImage(ctx, ctx.params.id);
				const { name, description, tags, category, visibility } = ctx.params;
				const patch: ImagePatch = { name, visibility };
				if (description !== undefined || tags !== undefined) {
					const autoTags = doc.tags.filter(tag => tag.source === "auto");
					const kept = tags === undefined ? doc.tags.filter(tag => tag.source === "user").map(tag => tag.label) : tags;
					patch.description = description ?? doc.description;
					patch.tags = [...userTags(kept, patch.description!), ...autoTags];
				}
				if (category !== undefined) patch.category = category === null || category === "" ? null : await this.resolveCategory(ctx, category);
				const updated = await this.repo.update(doc.id, patch);
				if (!updated) throw new NotFoundError("Image", doc.id);
				return toPublicImage(updated);
			}
		},

		remove: {
			rest: "DELETE /images/:id",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext) {
				await this.deleteImage(ctx, await this.editableImage(ctx, ctx.params.id));
				ctx.meta.$statusCode = 204;
				return null;
			}
		},

		stats: {
			rest: "GET /stats",
			params: { $$strict: true },
			async handler(ctx: ImagesContext) {
				const [stats, users] = await Promise.all([this.repo.stats(), ctx.call<number>("users.count")]);
				return { ...stats, users };
			}
		},

		removeByOwner: {
			visibility: "public",
			params: { $$strict: true, owner: ID },
			async handler(ctx: ImagesContext) {
				const owned = await this.repo.listByOwner(ctx.params.owner);
				for (const doc of owned) await this.deleteImage(ctx, doc);
				return { removed: owned.length };
			}
		},

		clearCategory: {
			visibility: "public",
			params: { $$strict: true, category: ID },
			async handler(ctx: ImagesContext) {
				return { updated: await this.repo.clearCategory(ctx.params.category) };
			}
		},

		// --- for the pipeline (services only): the metadata store is the source of truth of a job's progress

		/** The whole document, storage keys included; null if there is no such image. */
		find: {
			visibility: "public",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext): Promise<ImageDoc | null> {
				return this.repo.get(ctx.params.id);
			}
		},

		/**
		 * Sets the status (with `reason` when failed, or when ready without something the pipeline
		 * could not make, e.g. automatic tags), only from the statuses in `from` when given.
		 * Emits image.ready / image.failed when the status became that. Null if there is no such
		 * image or `from` did not match, so a duplicate message finds nothing to do.
		 */
		setStatus: {
			visibility: "public",
			params: {
				$$strict: true,
				id: ID,
				status: STATUS,
				reason: { type: "string", max: 1000, optional: true },
				from: { type: "array", items: STATUS, optional: true }
			},
			async handler(ctx: ImagesContext<{ id: string; status: ImageStatus; reason?: string; from?: ImageStatus[] }>) {
				const { id, status, reason, from } = ctx.params;
				const change = await this.repo.setStatus(id, status, status === "failed" ? (reason ?? "unknown error") : (reason ?? null), from);
				if (!change) return null;
				if (change.before.status !== status && status !== "processing") ctx.emit(`image.${status}`, imageEvent(change.after));
				return { id, status, statusReason: change.after.statusReason };
			}
		},

		/**
		 * Records the pipeline's metadata and renditions once (idempotent): a later call changes
		 * nothing and answers `applied: false` with the renditions already recorded, so the caller
		 * can release the blobs it stored in vain. Emits image.processed when applied.
		 */
		setProcessed: {
			visibility: "public",
			params: {
				$$strict: true,
				id: ID,
				metadata: { type: "object" },
				renditions: {
					type: "array",
					min: 1,
					items: {
						type: "object",
						strict: true,
						props: {
							name: { type: "string", max: 32 },
							width: { type: "number", integer: true, positive: true },
							height: { type: "number", integer: true, positive: true },
							format: { type: "string", max: 16 },
							size: { type: "number", integer: true, min: 0 },
							blob: { type: "string", max: 128 }
						}
					}
				}
			},
			async handler(ctx: ImagesContext<{ id: string; metadata: ImageMetadata; renditions: Rendition[] }>) {
				const { id, metadata, renditions } = ctx.params;
				const result = await this.repo.setProcessed(id, metadata, renditions);
				if (!result) return null;
				if (result.applied) ctx.emit("image.processed", { ...imageEvent(result.doc), renditions: renditions.map(r => r.name) });
				return { applied: result.applied, renditions: result.doc.renditions };
			}
		},

		/** Runs the pipeline again from the start: drops metadata and renditions, status back to processing. */
		reprocess: {
			visibility: "public",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext) {
				const before = await this.repo.resetProcessing(ctx.params.id);
				if (!before) throw new NotFoundError("Image", ctx.params.id);
				await this.releaseRenditions(ctx, before.id, before.renditions);
				await this.enqueue(ctx, before);
				return { id: before.id, status: "processing" };
			}
		},

		/**
		 * The reconciler's query: images `processing` without an update since `before` (an ISO time)
		 * are enqueued again. Each is claimed (its updatedAt bumped) as it is taken, so reconcilers
		 * on several nodes do not enqueue the same image twice.
		 */
		requeueStuck: {
			visibility: "public",
			params: {
				$$strict: true,
				before: { type: "string", max: 40 },
				limit: { type: "number", integer: true, min: 1, max: 10_000 }
			},
			async handler(ctx: ImagesContext<{ before: string; limit: number }>) {
				const stuck = await this.repo.claimStuck(ctx.params.before, ctx.params.limit);
				for (const doc of stuck) await this.enqueue(ctx, doc);
				return { requeued: stuck.map(doc => doc.id) };
			}
		},

		/**
		 * Replaces an image's automatic tags (the classifier's); user and hashtag tags stay, and an
		 * automatic label that a user already gave is not added twice. Null if the image is gone.
		 */
		setAutoTags: {
			visibility: "public",
			params: {
				$$strict: true,
				id: ID,
				model: { type: "string", min: 1, max: 64 },
				tags: {
					type: "array",
					max: 50,
					items: { type: "object", strict: true, props: { label: { type: "string", min: 1, max: 50 }, score: { type: "number", min: 0, max: 1 } } }
				}
			},
			async handler(ctx: ImagesContext<{ id: string; model: string; tags: { label: string; score: number }[] }>) {
				const { id, model, tags } = ctx.params;
				const doc = await this.repo.get(id);
				if (!doc) return null;
				const kept = doc.tags.filter(tag => tag.source !== "auto");
				const taken = new Set(kept.map(tag => tag.label));
				const auto: Tag[] = tagList(tags.map(tag => tag.label))
					.filter(label => !taken.has(label))
					.map(label => ({ label, source: "auto", score: tags.find(tag => normalizeLabel(tag.label) === label)!.score, model }));
				const updated = await this.repo.update(id, { tags: [...kept, ...auto] });
				return updated && toPublicImage(updated);
			}
		},

	},

	methods: {
		viewerOf(ctx: ImagesContext): Viewer {
			const user = ctx.meta.user;
			return user ? { id: user.id, role: user.role } : null;
		},

		/** The image if the caller may see it; 404 otherwise (never 403: existence stays private). */
		async visibleImage(ctx: ImagesContext, id: string): Promise<ImageDoc> {
			const doc = await this.repo.get(id);
			const viewer = this.viewerOf(ctx);
			const visible = doc && (doc.visibility === "public" || viewer?.role === "admin" || viewer?.id === doc.owner);
			if (!visible) throw new NotFoundError("Image", id);
			return doc;
		},

		/** For share links: the image if it is public, and the request then counts as anonymous. */
		async publicImage(ctx: ImagesContext, id: string): Promise<ImageDoc> {
			const doc = await this.repo.get(id);
			if (!doc || doc.visibility !== "public") throw new NotFoundError("Image", id);
			ctx.meta.user = null;
			return doc;
		},

		async editableImage(ctx: ImagesContext, id: string): Promise<ImageDoc> {
			const doc = await this.visibleImage(ctx, id);
			const viewer = this.viewerOf(ctx);
			// Seeing a public image is not owning it: to others it is not there to edit.
			if (viewer?.role !== "admin" && viewer?.id !== doc.owner) throw new NotFoundError("Image", id);
			return doc;
		},

		async uploadOptions(ctx: ImagesContext, rawFields: Readonly<Record<string, string>>): Promise<UploadOptions> {
			// The validator trims in place: keep the object it checked.
			const values: Record<string, unknown> = { ...rawFields };
			const checked = this.checkUploadFields(values);
			if (checked !== true) throw new BadRequestError("Invalid upload fields", "VALIDATION_ERROR", checked);
			const fields = values as UploadFields;
			return { fields, category: await this.resolveCategory(ctx, fields.category) };
		},

		async resolveCategory(ctx: ImagesContext, ref: string | undefined): Promise<string | null> {
			if (!ref) return null;
			const category = await ctx.call<{ id: string }, { ref: string }>("categories.resolve", { ref });
			return category.id;
		},

		/**
		 * Streams one image (an uploaded or imported file) through the sniffer into storage;
		 * returns its (unsaved) document.
		 */
		async stage(ctx: ImagesContext, stream: Readable, source: StagedSource, fields: UploadFields, category: string | null): Promise<ImageDoc> {
			const { id, owner, filename } = source;
			const sniffer = new ImageSniffer({ maxBytes: config.maxUploadBytes, maxPixels: config.maxInputPixels });
			stream.on("error", err => sniffer.destroy(err));
			// Its verdict is read from `sniffer.errored` below; storage may not be listening yet
			// when a small file is refused, and an unheard 'error' would crash the process.
			sniffer.on("error", () => undefined);
			stream.pipe(sniffer);
			const encrypted = fields.encrypted === "true";
			let ref: BlobRef;
			try {
				ref = await ctx.call<BlobRef, object>("storage.put", { encrypt: encrypted, ref: id, maxBytes: config.maxUploadBytes }, { stream: sniffer });
			} catch (err) {
				// The sniffer's verdict (415/422/413) explains the failure better than storage's.
				throw (sniffer.errored as Error | null) ?? err;
			}
			const probe = sniffer.probe;
			const now = nowIso();
			const description = fields.description ?? "";
			return {
				id,
				owner: owner.id,
				ownerName: owner.username,
				name: fields.name || baseName(filename),
				description,
				filename: filename.slice(0, 255),
				contentType: probe.contentType,
				format: probe.format,
				size: ref.size,
				width: probe.width,
				height: probe.height,
				sha256: ref.sha256,
				encrypted,
				visibility: fields.visibility ?? "private",
				category,
				tags: userTags(fields.tags, description),
				views: 0,
				// The ingest pipeline (services/worker.service.ts) takes it to ready or failed.
				status: "processing",
				statusReason: null,
				metadata: null,
				renditions: [],
				blob: ref.key,
				createdAt: now,
				updatedAt: now
			};
		},

		async deleteImage(ctx: ImagesContext, doc: ImageDoc): Promise<void> {
			// Metadata first: an orphaned blob is invisible, a document without bytes is not.
			const removed = await this.repo.remove(doc.id);
			await ctx.call("storage.release", { key: doc.blob, ref: doc.id });
			// The stored document, not the caller's copy: the pipeline may have added renditions since.
			await this.releaseRenditions(ctx, doc.id, removed?.renditions ?? doc.renditions);
			if (removed) ctx.emit("image.deleted", imageEvent(removed));
		},

		async releaseRenditions(ctx: ImagesContext, id: string, renditions: Rendition[]): Promise<void> {
			await Promise.all(renditions.map(r => ctx.call("storage.release", { key: r.blob, ref: renditionRef(id, r.name) })));
		},

		/** Saves a staged image and hands it to the processing pipeline. */
		async commit(ctx: ImagesContext, doc: ImageDoc): Promise<void> {
			await this.repo.insert(doc);
			ctx.emit("image.uploaded", imageEvent(doc));
			await this.enqueue(ctx, doc);
		},

		/**
		 * Sends the image's job. A failure (the queue's Redis unreachable) is logged, not thrown: the
		 * image is stored and stays `processing`, and the reconciler enqueues it later — failing the
		 * upload would only make the client send it again.
		 */
		async enqueue(ctx: ImagesContext, doc: ImageDoc): Promise<void> {
			try {
				await this.broker.sendToChannel(CHANNELS.process, { id: doc.id }, { ctx });
			} catch (err) {
				this.logger.error(`Could not enqueue image ${doc.id} (the reconciler will): ${(err as Error).message}`);
			}
		},

		/** The original bytes with validators, ranges and view counting. */
		async serveContent(ctx: ImagesContext, doc: ImageDoc): Promise<Readable | null> {
			const headers: Record<string, string | number> = contentHeaders(doc);
			ctx.meta.$responseHeaders = headers;
			ctx.meta.$responseType = doc.contentType;
			const countsView = ctx.meta.user?.id !== doc.owner;
			if (etagMatches(ctx.meta.request?.ifNoneMatch, headers.ETag as string)) {
				if (countsView) await this.repo.incrementViews(doc.id);
				ctx.meta.$statusCode = 304;
				return null;
			}
			const range = parseRange(ctx.meta.request?.range, doc.size);
			if (range === "unsatisfiable") throw new RangeNotSatisfiableError(doc.size);
			// A range request continuing a download is not another view.
			if (countsView && (!range || range.start === 0)) await this.repo.incrementViews(doc.id);
			if (range) {
				ctx.meta.$statusCode = 206;
				headers["Content-Range"] = `bytes ${range.start}-${range.end}/${doc.size}`;
				headers["Content-Length"] = range.end - range.start + 1;
			} else {
				headers["Content-Length"] = doc.size;
			}
			return ctx.call<Readable, object>("storage.get", { key: doc.blob, ...(range ?? {}) });
		},

		serveDownload(ctx: ImagesContext, doc: ImageDoc, query: TransformQuery): Promise<Readable | null> {
			if (!wantsTransform(query)) return this.serveContent(ctx, doc);
			const spec = normalizeTransform(query, doc, { accept: ctx.meta.request?.accept, maxOutputPixels: config.transformMaxOutputPixels });
			return this.serveVariant(ctx, doc, spec, { negotiated: query.format === "auto", countsView: true });
		},

		/**
		 * A rendition (not counted as a view): the one the ingest pipeline stored on the image, or
		 * else from the variant cache, made on the spot if needed (before the pipeline got to it,
		 * or for a compressed rendition).
		 */
		async serveRendition(ctx: ImagesContext, doc: ImageDoc, name: string): Promise<Readable | null> {
			const stored = doc.renditions.find(rendition => rendition.name === name);
			if (stored) return this.serveStoredRendition(ctx, doc, stored);
			const spec = renditionByName(name);
			if (!spec) throw new NotFoundError("Rendition", name);
			checkOutputPixels(spec, doc, config.transformMaxOutputPixels);
			return this.serveVariant(ctx, doc, spec, { negotiated: false, countsView: false });
		},

		/** A rendition's bytes from storage; its storage key is unique to its bytes, so it is the ETag. */
		async serveStoredRendition(ctx: ImagesContext, doc: ImageDoc, rendition: Rendition): Promise<Readable | null> {
			const format = FORMAT_NAMES[rendition.format] ?? "webp";
			const headers: Record<string, string | number> = deliveryHeaders(doc, rendition.blob, variantFilename(doc.filename, format));
			ctx.meta.$responseHeaders = headers;
			ctx.meta.$responseType = contentTypeOf(format);
			if (etagMatches(ctx.meta.request?.ifNoneMatch, headers.ETag as string)) {
				ctx.meta.$statusCode = 304;
				return null;
			}
			headers["Content-Length"] = rendition.size;
			return ctx.call<Readable, object>("storage.get", { key: rendition.blob });
		},

		/**
		 * A variant of the image. Its ETag is the variant key, known from the request alone, so a
		 * conditional request is answered 304 before any image is read or rendered.
		 */
		async serveVariant(ctx: ImagesContext, doc: ImageDoc, spec: TransformSpec, options: VariantOptions): Promise<Readable | null> {
			const source = sourceOf(doc);
			const headers: Record<string, string | number> = deliveryHeaders(doc, variantKey(source, spec, config.transformAvifEffort), variantFilename(doc.filename, spec.format));
			if (options.negotiated) headers.Vary = "Accept";
			ctx.meta.$responseHeaders = headers;
			ctx.meta.$responseType = contentTypeOf(spec.format);
			const countsView = options.countsView && ctx.meta.user?.id !== doc.owner;
			if (countsView) await this.repo.incrementViews(doc.id);
			if (etagMatches(ctx.meta.request?.ifNoneMatch, headers.ETag as string)) {
				ctx.meta.$statusCode = 304;
				return null;
			}
			const bytes = await ctx.call<Readable, object>("transform.variant", { source, spec });
			// The size comes back in transform.variant's ctx.meta, merged into ours; from another node
			// that merge also replaces $responseHeaders with a copy, so they are set again here.
			ctx.meta.$responseHeaders = { ...headers, "Content-Length": ctx.meta.$variant!.size };
			return bytes;
		}
	},

	created() {
		this.checkUploadFields = this.broker.validator!.compile(UPLOAD_FIELDS);
	}
};

export default images;
