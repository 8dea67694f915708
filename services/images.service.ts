/**
 * Images: upload (multipart, streamed into storage), metadata, search, content delivery with
 * ETag/Range, views and stats. Bytes live in the storage service; metadata in the repository.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import type { AuthUser } from "../mixins/auth.ts";
import { repositoryMixin } from "../mixins/repository.ts";
import type { BlobRef } from "../models/blob-store.ts";
import { BadRequestError, NotFoundError, RangeNotSatisfiableError } from "../models/errors.ts";
import { newId, nowIso } from "../models/ids.ts";
import type { ImageDoc, ImageFilter, ImagePatch, ImageRepository, SortKey, Tag, Viewer, Visibility } from "../models/image.ts";
import { ImageSniffer } from "../models/image-sniffer.ts";
import { parseMultipart, type UploadedFile } from "../models/multipart.ts";
import { parseRange } from "../models/http-range.ts";
import { parseSearchQuery } from "../models/search-query.ts";
import { SqliteImageRepository } from "../models/sqlite-image-repository.ts";
import { hashtagsOf, tagList } from "../models/tags.ts";
import type { RequestInfo } from "./api.service.ts";

const config = getConfig();

type Meta = { user?: AuthUser | null; request?: RequestInfo; $statusCode?: number; $responseType?: string; $responseHeaders?: Record<string, string | number> };
type ImagesContext<P = Record<string, any>> = Context<P, Meta>;

const ID = { type: "string", min: 1, max: 64 };
const VISIBILITY = { type: "enum", values: ["private", "public"], optional: true };
const TEXT = (max: number) => ({ type: "string", max, trim: true, optional: true });
const TAGS = [
	{ type: "array", items: { type: "string", max: 50 }, max: 50, optional: true },
	{ type: "string", max: 2000, optional: true }
];

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

interface ImagesVars {
	repo: ImageRepository;
	/** fastest-validator checker: true, or the list of problems. */
	checkUploadFields: (value: Record<string, unknown>) => unknown;
}
interface ImagesMethods {
	viewerOf(ctx: ImagesContext): Viewer;
	visibleImage(ctx: ImagesContext, id: string): Promise<ImageDoc>;
	editableImage(ctx: ImagesContext, id: string): Promise<ImageDoc>;
	stageUpload(ctx: ImagesContext, file: UploadedFile, fields: UploadFields, category: string | null): Promise<ImageDoc>;
	uploadOptions(ctx: ImagesContext, rawFields: Readonly<Record<string, string>>): Promise<UploadOptions>;
	resolveCategory(ctx: ImagesContext, ref: string | undefined): Promise<string | null>;
	deleteImage(ctx: ImagesContext, doc: ImageDoc): Promise<void>;
	serveContent(ctx: ImagesContext, doc: ImageDoc): Promise<Readable | null>;
}

/** What clients see: everything but the internal storage key. */
function toPublicImage(doc: ImageDoc): Omit<ImageDoc, "blob"> {
	const { blob: _internal, ...rest } = doc;
	return rest;
}

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

function contentHeaders(doc: ImageDoc): Record<string, string> {
	return {
		ETag: `"${doc.sha256}"`,
		"Accept-Ranges": "bytes",
		// An id's bytes never change; privacy decides who may keep them.
		"Cache-Control": doc.visibility === "public" ? "public, max-age=3600" : "private, max-age=3600",
		"Content-Disposition": `inline; filename*=UTF-8''${encodeURIComponent(doc.filename)}`,
		"X-Content-Type-Options": "nosniff"
	};
}

const images: ServiceSchema<ServiceSettingSchema, ImagesMethods, ImagesVars> = {
	name: "images",
	mixins: [repositoryMixin(() => new SqliteImageRepository(join(config.dataDir, "images.db")), "The image metadata store")],
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
						return this.stageUpload(ctx, file, fields, category);
					},
					async staged => {
						await Promise.all(staged.map(doc => ctx.call("storage.release", { key: doc.blob, ref: doc.id })));
					}
				);
				for (const doc of files) await this.repo.insert(doc);
				ctx.meta.$statusCode = 201;
				return { images: files.map(toPublicImage) };
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

		content: {
			rest: "GET /images/:id/content",
			auth: "optional",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext) {
				return this.serveContent(ctx, await this.visibleImage(ctx, ctx.params.id));
			}
		},

		/** GET /p/:id: a public image for anyone; a private one does not exist. */
		publicContent: {
			auth: "public",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext) {
				const doc = await this.repo.get(ctx.params.id);
				if (!doc || doc.visibility !== "public") throw new NotFoundError("Image", ctx.params.id);
				ctx.meta.user = null;
				return this.serveContent(ctx, doc);
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

		/** Streams one uploaded file through the sniffer into storage; returns its (unsaved) document. */
		async stageUpload(ctx: ImagesContext, file: UploadedFile, fields: UploadFields, category: string | null): Promise<ImageDoc> {
			const id = newId();
			const sniffer = new ImageSniffer({ maxBytes: config.maxUploadBytes, maxPixels: config.maxInputPixels });
			file.stream.on("error", err => sniffer.destroy(err));
			// Its verdict is read from `sniffer.errored` below; storage may not be listening yet
			// when a small file is refused, and an unheard 'error' would crash the process.
			sniffer.on("error", () => undefined);
			file.stream.pipe(sniffer);
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
			const user = ctx.meta.user!;
			return {
				id,
				owner: user.id,
				ownerName: user.username,
				name: fields.name || baseName(file.filename),
				description,
				filename: file.filename.slice(0, 255),
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
				status: "ready",
				blob: ref.key,
				createdAt: now,
				updatedAt: now
			};
		},

		async deleteImage(ctx: ImagesContext, doc: ImageDoc): Promise<void> {
			// Metadata first: an orphaned blob is invisible, a document without bytes is not.
			await this.repo.remove(doc.id);
			await ctx.call("storage.release", { key: doc.blob, ref: doc.id });
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
		}
	},

	created() {
		this.checkUploadFields = this.broker.validator!.compile(UPLOAD_FIELDS);
	}
};

export default images;
