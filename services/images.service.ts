/**
 * Images: upload (multipart, streamed into storage), ingest on behalf of imports, and the
 * catalogue (search, metadata, edits, deletion, stats). Bytes live in the storage service;
 * metadata in the repository. Delivery of the bytes (mixins/image-delivery.mixin.ts), the
 * pipeline's internal actions (mixins/image-pipeline.mixin.ts), the owners' and admins' requests
 * for pipeline work again (mixins/image-reprocess.mixin.ts) and the trash are mixed in.
 */
import type { ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { BlobReaderMixin } from "../mixins/blob-reader.mixin.ts";
import { ImageDeliveryMixin } from "../mixins/image-delivery.mixin.ts";
import { ImagePipelineMixin } from "../mixins/image-pipeline.mixin.ts";
import { ImageReprocessMixin } from "../mixins/image-reprocess.mixin.ts";
import { ImageTrashMixin } from "../mixins/image-trash.mixin.ts";
import { SharedDeliveryMixin } from "../mixins/shared-delivery.mixin.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { openImageRepository } from "../models/backends.ts";
import { sniff } from "../models/http/image-sniffer.ts";
import { parseMultipart } from "../models/http/multipart.ts";
import type { ImageDoc, ImageFilter, ImagePatch, SortKey } from "../models/images/image.ts";
import { newImageDoc, userTags, type StagedSource, type UploadFields, type UploadOptions } from "../models/images/new-image.ts";
import { TAGS, UPLOAD_FIELDS, VISIBILITY } from "../models/images/params.ts";
import { imageEvent, toPublicImage } from "../models/images/public-image.ts";
import { ownerIdOf, ownerNamesOf } from "../models/images/search-filter.ts";
import { multiWordTagCandidates, parseSearchQuery, type SearchQuery } from "../models/images/search-query.ts";
import { tagList } from "../models/images/tags.ts";
import { ViewCounter } from "../models/images/view-counter.ts";
import { canManage, canSee, isAdmin, type Viewer } from "../models/shared/access.ts";
import { BadRequestError, ConflictError, isClusterUnavailable, NotFoundError, storageExhaustionOf } from "../models/shared/errors.ts";
import { newId } from "../models/shared/ids.ts";
import { holdFailure } from "../models/shared/stream-failure.ts";
import { ID } from "../models/shared/params.ts";
import type { BlobRef } from "../models/storage/blob-store.ts";
import type { ImagesContext, ImagesMethods, ImagesVars } from "../types/images-service.ts";

const config = getConfig();

/** `params` with its null values as undefined (not given). */
function withoutNulls<T extends Record<string, unknown>>(params: T): { [K in keyof T]: Exclude<T[K], null> } {
	return Object.fromEntries(Object.entries(params).map(([key, value]) => [key, value ?? undefined])) as { [K in keyof T]: Exclude<T[K], null> };
}

/** Ids one images.byIds call may ask for: the most an album call adds (services/albums.service.ts) or pages. */
const BY_IDS_LIMIT = 1000;

const images: ServiceSchema<ServiceSettingSchema, ImagesMethods, ImagesVars> = {
	name: "images",
	mixins: [repositoryMixin(() => openImageRepository(config), "The image metadata store"), BlobReaderMixin, ImageDeliveryMixin, SharedDeliveryMixin, ImagePipelineMixin, ImageReprocessMixin, ImageTrashMixin],
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
						const source = { id: newId(), owner: ctx.meta.user!, filename: file.filename };
						return this.stage(ctx, file.stream, source, await options);
					},
					async staged => {
						await Promise.all(staged.map(doc => ctx.call("storage.release", { key: doc.blob, ref: doc.id })));
					}
				);
				await this.commitAll(ctx, files);
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/images/${files[0]!.id}`;
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
				// Work in flight for a deleted account (an import mid-download) stores nothing.
				if (!(await this.ownerExists(ctx, owner))) {
					ctx.stream.resume();
					throw new NotFoundError("User", owner);
				}
				const source = { id, owner: { id: owner, username: ownerName }, filename };
				const doc = await this.stage(ctx, ctx.stream, source, { fields, category: category ?? null });
				try {
					await this.commit(ctx, doc);
				} catch (err) {
					// A twin call got there first. Its blob reference is this id too, so it stays; any
					// other failure is retried with the same id, which finds the stored blob again.
					const twin = err instanceof ConflictError ? await this.repo.get(id) : null;
					if (!twin) throw err;
					return { image: toPublicImage(twin), created: false };
				}
				// The account went while the bytes were stored: its deletion may have swept already,
				// so this image is removed here (the deletion's last sweep covers the other order).
				if (!(await this.ownerExists(ctx, owner))) {
					await this.deleteImage(ctx, doc);
					throw new NotFoundError("User", owner);
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
				const viewer = this.viewerOf(ctx);
				const parsed = p.q ? await this.searchQueryOf(p.q, viewer) : undefined;
				const owner = await this.ownerOf(ctx, ownerNamesOf(p.owner, parsed));
				if (owner === null) return { items: [], nextCursor: null, total: 0, totalIsEstimate: false };
				const filter: ImageFilter = {
					viewer,
					query: parsed && { ...parsed, ownerName: undefined, album: undefined },
					ids: parsed?.album === undefined ? undefined : await this.albumImageIds(ctx, parsed.album),
					tags: p.tag ? tagList(p.tag) : undefined,
					category: p.category,
					owner,
					visibility: p.visibility,
					sort: (p.sort as SortKey) ?? "-createdAt",
					limit: p.limit ?? 50,
					cursor: p.cursor
				};
				const page = await this.repo.search(filter);
				return { ...page, items: page.items.map(doc => this.imageView(ctx, doc)) };
			}
		},

		get: {
			rest: "GET /images/:id",
			auth: "optional",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext) {
				return this.imageView(ctx, await this.visibleImage(ctx, ctx.params.id));
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
				visibility: VISIBILITY,
				showMetadata: { type: "boolean", optional: true }
			},
			async handler(ctx: ImagesContext) {
				const doc = await this.editableImage(ctx, ctx.params.id);
				// An optional parameter may also be null: for these fields that means "not given" (only
				// a null category means something, no category), never a null in a NOT NULL column.
				const { category } = ctx.params;
				const { name, description, tags, visibility, showMetadata } = withoutNulls(ctx.params);
				const patch: ImagePatch = { name, visibility, showMetadata };
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

		/** Moves the image to the trash (mixins/image-trash.mixin.ts), whence it can be restored. */
		remove: {
			rest: "DELETE /images/:id",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext) {
				await this.trashImage(ctx, await this.editableImage(ctx, ctx.params.id));
				ctx.meta.$statusCode = 204;
				return null;
			}
		},

		stats: {
			rest: "GET /stats",
			params: { $$strict: true },
			async handler(ctx: ImagesContext) {
				// What the caller may see; site-wide figures (every image, the number of users) are for admins.
				const viewer = this.viewerOf(ctx);
				const stats = await this.repo.stats(viewer);
				return isAdmin(viewer) ? { ...stats, users: await ctx.call<number>("users.count") } : stats;
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

		/**
		 * The images of these ids that are not in the trash, in the order given, whoever owns them:
		 * the caller (the albums service) has authorised them. Each as the caller sees it
		 * (imageView): an album's viewers and a link's guests (ctx.meta.grant) are guests.
		 */
		byIds: {
			visibility: "public",
			params: { $$strict: true, ids: { type: "array", items: ID, max: BY_IDS_LIMIT } },
			async handler(ctx: ImagesContext<{ ids: string[] }>) {
				const ids = [...new Set(ctx.params.ids)];
				if (ids.length === 0) return [];
				const page = await this.repo.search({ viewer: null, ids, sort: "-createdAt", limit: ids.length });
				const found = new Map(page.items.map(doc => [doc.id, doc]));
				return ids.flatMap(id => (found.has(id) ? [this.imageView(ctx, found.get(id)!)] : []));
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

		/**
		 * The image if the caller may see it and it is not in the trash: theirs, public, or in an
		 * album they own or are a member of (then they see it as anyone who is not its owner does);
		 * 404 otherwise (never 403: existence stays private). Albums are asked each time, so a
		 * removed member or image counts at once.
		 */
		async visibleImage(ctx: ImagesContext, id: string): Promise<ImageDoc> {
			const doc = await this.liveImage(id);
			const viewer = this.viewerOf(ctx);
			if (doc && canSee(viewer, doc)) return doc;
			if (doc && viewer && (await this.albumGrantsView(ctx, id, viewer.id))) return doc;
			throw new NotFoundError("Image", id);
		},

		/**
		 * Whether an album opens the image to the user. Without a reachable albums service (a cluster
		 * that hosts none) no album can: the image stays hidden, as it was before albums existed.
		 */
		async albumGrantsView(ctx: ImagesContext, imageId: string, userId: string): Promise<boolean> {
			try {
				return await ctx.call<boolean, { imageId: string; userId: string }>("albums.grantsView", { imageId, userId });
			} catch (err) {
				if (isClusterUnavailable(err)) return false;
				throw err;
			}
		},

		/** The image ids of an album the caller may read (`album:` in a search); 404 otherwise. */
		async albumImageIds(ctx: ImagesContext, albumId: string): Promise<string[]> {
			const { ids } = await ctx.call<{ ids: string[] }, { albumId: string; userId: string | null }>("albums.imageIdsFor", { albumId, userId: ctx.meta.user?.id ?? null });
			return ids;
		},

		/** Seeing a public image is not owning it: to others it is not there to edit. */
		async editableImage(ctx: ImagesContext, id: string): Promise<ImageDoc> {
			const doc = await this.liveImage(id);
			if (!doc || !canManage(this.viewerOf(ctx), doc)) throw new NotFoundError("Image", id);
			return doc;
		},

		/**
		 * The account id the owner names of a search resolve to now (see ownerIdOf): a deleted
		 * account's images never answer to the name a new account took.
		 */
		async ownerOf(ctx: ImagesContext, names: string[]): Promise<string | null | undefined> {
			const ids = await Promise.all(names.map(username => ctx.call<string | null, { username: string }>("users.idOf", { username })));
			return ownerIdOf(ids);
		},

		async ownerExists(ctx: ImagesContext, owner: string): Promise<boolean> {
			return ctx.call<boolean, { id: string }>("users.exists", { id: owner });
		},

		/** `q` as a query; a `tag:` followed by words takes the longest label the viewer can find. */
		async searchQueryOf(q: string, viewer: Viewer): Promise<SearchQuery> {
			const candidates = multiWordTagCandidates(q);
			const known = candidates.length > 0 ? await this.repo.existingTags(candidates, viewer) : [];
			return parseSearchQuery(q, new Set(known));
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
		async stage(ctx: ImagesContext, stream: Readable, source: StagedSource, options: UploadOptions): Promise<ImageDoc> {
			const sniffer = sniff(stream, { maxBytes: config.maxUploadBytes, maxPixels: config.maxInputPixels });
			// Its verdict is read from `sniffer.errored` below; storage may not be listening yet
			// when a small file is refused, and an unheard 'error' would crash the process.
			sniffer.on("error", () => undefined);
			const put = { encrypt: options.fields.encrypted === "true", ref: source.id, maxBytes: config.maxUploadBytes };
			let ref: BlobRef;
			try {
				ref = await ctx.call<BlobRef, object>("storage.put", put, { stream: holdFailure(sniffer) });
			} catch (err) {
				// The sniffer's verdict (415/422/413) explains the failure better than storage's; a
				// full store is told as such (507) to uploads and imports alike.
				throw (sniffer.errored as Error | null) ?? storageExhaustionOf(err) ?? err;
			}
			try {
				return newImageDoc(source, options, sniffer.probe, ref);
			} catch (err) {
				// The caller only undoes the files it got a document for: these bytes are ours to release.
				await ctx.call("storage.release", { key: ref.key, ref: source.id });
				throw err;
			}
		},

		/**
		 * Removing the document is the commit point: an orphaned blob is invisible, a document
		 * without bytes is not. Once it is gone the deletion is done, whatever releasing the bytes
		 * then does (releaseOrLog). With `onlyTrashed` (a purge from the trash), only while the image
		 * is still there: one restored meanwhile stays, bytes and all. One already gone (a concurrent
		 * purge) is released again, which reference counting makes harmless, as a repeated deletion
		 * always was. True when this call removed the record.
		 */
		async deleteImage(ctx: ImagesContext, doc: ImageDoc, options: { onlyTrashed?: boolean } = {}): Promise<boolean> {
			const removed = await this.repo.remove(doc.id, options);
			if (!removed && options.onlyTrashed && (await this.repo.get(doc.id))) return false;
			await this.releaseOrLog(ctx, doc.blob, doc.id);
			// The stored document, not the caller's copy: the pipeline may have added renditions since.
			await this.releaseRenditions(ctx, doc.id, removed?.renditions ?? doc.renditions);
			if (removed) ctx.emit("image.deleted", imageEvent(removed));
			return removed !== null;
		},

		/** Saves a staged image and hands it to the processing pipeline. */
		async commit(ctx: ImagesContext, doc: ImageDoc): Promise<void> {
			await this.repo.insert(doc);
			ctx.emit("image.uploaded", imageEvent(doc));
			await this.enqueue(ctx, doc);
		},

		/**
		 * Saves an upload's images, all or none: when one cannot be saved (a full disk), those saved
		 * before it are deleted again and the bytes of the rest released, so the refused upload keeps nothing.
		 */
		async commitAll(ctx: ImagesContext, docs: ImageDoc[]): Promise<void> {
			for (const [index, doc] of docs.entries()) {
				try {
					await this.commit(ctx, doc);
				} catch (err) {
					const saved = docs.slice(0, index).map(earlier => this.deleteImage(ctx, earlier));
					const unsaved = docs.slice(index).map(later => this.releaseOrLog(ctx, later.blob, later.id));
					await Promise.allSettled([...saved, ...unsaved]);
					throw err;
				}
			}
		}
	},

	created() {
		this.checkUploadFields = this.broker.validator!.compile(UPLOAD_FIELDS);
		this.views = new ViewCounter((id, by) => this.repo.incrementViews(id, by), this.logger);
	},

	/** Before the repository closes (stopped hooks run the service's first, then its mixins'). */
	async stopped() {
		await this.views.stop();
	}
};

export default images;
