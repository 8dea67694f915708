/**
 * Delivery of image bytes, mixed into the images service: the original (validators, ranges, view
 * counting), variants made by the transform service, thumbnails and other renditions, and the
 * anonymous public links (/p/:id). Every answer carries a strong ETag, so a conditional request
 * is answered 304 before any byte is read.
 */
import { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { deliveryHeaders, etagMatches } from "../models/http/conditional.ts";
import { parseRange } from "../models/http/range.ts";
import type { ImageDoc, Rendition } from "../models/images/image.ts";
import { EXT, THUMBNAIL_SIZE, TRANSFORM } from "../models/images/params.ts";
import { renditionByName } from "../models/pipeline/renditions.ts";
import { canManage } from "../models/shared/access.ts";
import { NotFoundError, RangeNotSatisfiableError } from "../models/shared/errors.ts";
import { ID } from "../models/shared/params.ts";
import {
	checkOutputPixels,
	checkPublicTransform,
	contentTypeOf,
	FORMAT_NAMES,
	normalizeTransform,
	sourceOf,
	variantFilename,
	variantKey,
	wantsTransform,
	type TransformQuery,
	type TransformSpec
} from "../models/transform/spec.ts";
import { imagesMixin, type ImagesContext, type VariantOptions } from "../types/images-service.ts";

const config = getConfig();

/** Routes that serve bytes answer HEAD too: the same headers, no body, nothing read or counted. */
function getAndHead(path: string): string[] {
	return [`GET ${path}`, `HEAD ${path}`];
}

function isHead(ctx: ImagesContext): boolean {
	return ctx.meta.request?.method === "HEAD";
}

/**
 * The body of a HEAD answer: an empty stream, because the gateway sets the content type only
 * for a body (null would lose it) and the length only for a buffer (an empty one would say 0).
 */
function noBody(): Readable {
	return Readable.from([]);
}

export const ImageDeliveryMixin = imagesMixin({
	actions: {
		/** The original bytes, or a variant of them when any transform parameter is given. */
		content: {
			rest: getAndHead("/images/:id/content"),
			auth: "optional",
			params: { $$strict: true, id: ID, ...TRANSFORM },
			async handler(ctx: ImagesContext) {
				const { id, ...query } = ctx.params;
				return this.serveDownload(ctx, await this.visibleImage(ctx, id), query);
			}
		},

		/** GET /images/:id/content.<ext>: a variant in the format the extension names. */
		contentAs: {
			rest: getAndHead("/images/:id/content.:ext"),
			auth: "optional",
			params: { $$strict: true, id: ID, ext: EXT, ...TRANSFORM },
			async handler(ctx: ImagesContext) {
				const { id, ...query } = ctx.params;
				return this.serveDownload(ctx, await this.visibleImage(ctx, id), query);
			}
		},

		thumbnail: {
			rest: getAndHead("/images/:id/thumbnail"),
			auth: "optional",
			params: { $$strict: true, id: ID, size: THUMBNAIL_SIZE },
			async handler(ctx: ImagesContext) {
				return this.serveRendition(ctx, await this.visibleImage(ctx, ctx.params.id), ctx.params.size);
			}
		},

		/** A rendition by name: "240", "720" or a compressed one ("compress-q70-webp"). */
		rendition: {
			rest: getAndHead("/images/:id/renditions/:name"),
			auth: "optional",
			params: { $$strict: true, id: ID, name: { type: "string", max: 40 } },
			async handler(ctx: ImagesContext) {
				return this.serveRendition(ctx, await this.visibleImage(ctx, ctx.params.id), ctx.params.name);
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
			params: { $$strict: true, id: ID, size: THUMBNAIL_SIZE },
			async handler(ctx: ImagesContext) {
				return this.serveRendition(ctx, await this.publicImage(ctx, ctx.params.id), ctx.params.size);
			}
		}
	},

	methods: {
		/** For share links: the image if it is public, and the request then counts as anonymous. */
		async publicImage(ctx: ImagesContext, id: string): Promise<ImageDoc> {
			const doc = await this.liveImage(id);
			if (!doc || doc.visibility !== "public") throw new NotFoundError("Image", id);
			ctx.meta.user = null;
			return doc;
		},

		serveDownload(ctx: ImagesContext, doc: ImageDoc, query: TransformQuery): Promise<Readable | null> {
			if (!wantsTransform(query)) return this.serveContent(ctx, doc);
			const spec = normalizeTransform(query, doc, { accept: ctx.meta.request?.accept, maxOutputPixels: config.transformMaxOutputPixels });
			this.checkTransformAllowed(ctx, doc, spec);
			return this.serveVariant(ctx, doc, spec, { negotiated: query.format === "auto", countsView: true });
		},

		/** The owner (and admins) may ask for any variant; everyone else for the public ones. */
		checkTransformAllowed(ctx: ImagesContext, doc: ImageDoc, spec: TransformSpec): void {
			if (!canManage(this.viewerOf(ctx), doc)) checkPublicTransform(spec, doc);
		},

		/** The original bytes with validators, ranges and view counting. */
		async serveContent(ctx: ImagesContext, doc: ImageDoc): Promise<Readable | null> {
			const filename = variantFilename(doc.filename, FORMAT_NAMES[doc.format]!);
			const headers: Record<string, string | number> = { ...deliveryHeaders(doc.visibility, doc.sha256, filename), "Accept-Ranges": "bytes" };
			ctx.meta.$responseHeaders = headers;
			ctx.meta.$responseType = doc.contentType;
			const countsView = ctx.meta.user?.id !== doc.owner && !isHead(ctx);
			if (etagMatches(ctx.meta.request?.ifNoneMatch, headers.ETag as string)) {
				if (countsView) await this.repo.incrementViews(doc.id);
				ctx.meta.$statusCode = 304;
				return null;
			}
			const range = parseRange(ctx.meta.request?.range, doc.size);
			if (range === "unsatisfiable") throw new RangeNotSatisfiableError(doc.size);
			// A range request continuing a download is not another view.
			if (countsView && (!range || range.start === 0)) await this.repo.incrementViews(doc.id);
			if (await this.redirectToBucket(ctx, doc, doc.blob)) return null;
			if (range) {
				ctx.meta.$statusCode = 206;
				headers["Content-Range"] = `bytes ${range.start}-${range.end}/${doc.size}`;
				headers["Content-Length"] = range.end - range.start + 1;
			} else {
				headers["Content-Length"] = doc.size;
			}
			if (isHead(ctx)) return noBody();
			return this.readBlob(ctx, doc.blob, range ?? undefined);
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
			this.checkTransformAllowed(ctx, doc, spec);
			return this.serveVariant(ctx, doc, spec, { negotiated: false, countsView: false });
		},

		/**
		 * A stored rendition's bytes. Its ETag is the variant key of its spec, as for the same
		 * rendition made on the spot: the two are the same bytes, so a client's copy of either
		 * stays valid.
		 */
		async serveStoredRendition(ctx: ImagesContext, doc: ImageDoc, rendition: Rendition): Promise<Readable | null> {
			const format = FORMAT_NAMES[rendition.format] ?? "webp";
			const etag = variantKey(sourceOf(doc), renditionByName(rendition.name)!, config.transformAvifEffort);
			const headers = deliveryHeaders(doc.visibility, etag, variantFilename(doc.filename, format));
			ctx.meta.$responseHeaders = headers;
			ctx.meta.$responseType = contentTypeOf(format);
			if (etagMatches(ctx.meta.request?.ifNoneMatch, headers.ETag as string)) {
				ctx.meta.$statusCode = 304;
				return null;
			}
			if (await this.redirectToBucket(ctx, doc, rendition.blob)) return null;
			headers["Content-Length"] = rendition.size;
			if (isHead(ctx)) return noBody();
			return this.readBlob(ctx, rendition.blob);
		},

		/**
		 * With S3_PRESIGNED_REDIRECT, the stored bytes of a plain public image (its original, a
		 * rendition, a cached variant) are not streamed through the cluster. Never for an encrypted
		 * image (the bucket holds ciphertext) nor a private one (the URL would bypass its access
		 * check), nor for HEAD (the URL is signed for GET).
		 */
		mayRedirectToBucket(ctx: ImagesContext, doc: ImageDoc): boolean {
			return config.s3?.presignedRedirect === true && doc.visibility === "public" && !doc.encrypted && !isHead(ctx);
		},

		/**
		 * Answers 302 to a short-lived presigned URL of blob `key`'s bucket object, with the headers
		 * set so far signed into it (a client sending Range gets its range there), when
		 * mayRedirectToBucket. False when the bytes are to be served here.
		 */
		async redirectToBucket(ctx: ImagesContext, doc: ImageDoc, key: string): Promise<boolean> {
			if (!this.mayRedirectToBucket(ctx, doc)) return false;
			const headers = ctx.meta.$responseHeaders!;
			const url = await ctx.call<string | null, object>("storage.presignedUrl", {
				key,
				contentType: ctx.meta.$responseType!,
				contentDisposition: String(headers["Content-Disposition"]),
				cacheControl: String(headers["Cache-Control"])
			});
			if (!url) return false;
			ctx.meta.$statusCode = 302;
			ctx.meta.$location = url;
			// The URL expires: no cache may keep the redirect longer.
			ctx.meta.$responseHeaders = { "Cache-Control": "no-store" };
			return true;
		},

		/**
		 * A variant of the image. Its ETag is the variant key, known from the request alone, so a
		 * conditional request is answered 304 before any image is read or rendered.
		 */
		async serveVariant(ctx: ImagesContext, doc: ImageDoc, spec: TransformSpec, options: VariantOptions): Promise<Readable | null> {
			const source = sourceOf(doc);
			const headers = deliveryHeaders(doc.visibility, variantKey(source, spec, config.transformAvifEffort), variantFilename(doc.filename, spec.format));
			if (options.negotiated) headers.Vary = "Accept";
			ctx.meta.$responseHeaders = headers;
			ctx.meta.$responseType = contentTypeOf(spec.format);
			const countsView = options.countsView && ctx.meta.user?.id !== doc.owner && !isHead(ctx);
			if (countsView) await this.repo.incrementViews(doc.id);
			if (etagMatches(ctx.meta.request?.ifNoneMatch, headers.ETag as string)) {
				ctx.meta.$statusCode = 304;
				return null;
			}
			if (this.mayRedirectToBucket(ctx, doc)) {
				const cached = await ctx.call<string | null, object>("transform.cachedBlob", { source, spec });
				if (cached && (await this.redirectToBucket(ctx, doc, cached))) return null;
			}
			const bytes = await ctx.call<Readable, object>("transform.variant", { source, spec });
			// The size comes back in transform.variant's ctx.meta, merged into ours; from another node
			// that merge also replaces $responseHeaders with a copy, so they are set again here.
			ctx.meta.$responseHeaders = { ...headers, "Content-Length": ctx.meta.$variant!.size };
			// HEAD needs the variant's size, which only making (or finding) it tells.
			if (isHead(ctx)) {
				bytes.destroy();
				return noBody();
			}
			return bytes;
		}
	}
});
