/**
 * Delivery of image bytes, mixed into the images service: the original (validators, ranges, view
 * counting), variants made by the transform service, thumbnails and other renditions, and the
 * anonymous public links (/p/:id). Every answer carries a strong ETag, so a conditional request
 * is answered 304 before any byte is read.
 *
 * Who asks decides what they get (docs/sharing.md). The owner (and admins) get the byte-exact
 * original under its uploaded name and any transform. Everyone else is a guest: the original's
 * stripped copy (no EXIF, XMP, IPTC, comments) under `<id>.<ext>` unless metadata is allowed
 * (the image's showMetadata, or the share link's grant), presets by name or signed parameters
 * only, and with a grant that allows no download, the `large` preset instead of the original.
 */
import { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { type CacheScope, deliveryHeaders, etagMatches } from "../models/http/conditional.ts";
import { parseRange } from "../models/http/range.ts";
import type { ImageDoc, Rendition } from "../models/images/image.ts";
import { EXT, THUMBNAIL_SIZE, TRANSFORM, TRANSFORM_PARAMS } from "../models/images/params.ts";
import type { PublicImage } from "../models/images/public-image.ts";
import { toPublicImage } from "../models/images/public-image.ts";
import { renditionByName, renditionEdgeOf } from "../models/pipeline/renditions.ts";
import { canManage } from "../models/shared/access.ts";
import { BadRequestError, NotFoundError, RangeNotSatisfiableError } from "../models/shared/errors.ts";
import { ID } from "../models/shared/params.ts";
import { presetQuery, transformNotAllowed } from "../models/transform/presets.ts";
import { signTransform, verifyTransform } from "../models/transform/signing.ts";
import {
	checkOutputPixels,
	contentTypeOf,
	FORMAT_NAMES,
	normalizeTransform,
	sourceOf,
	strippedKey,
	TRANSFORM_KEYS,
	variantFilename,
	variantKey,
	wantsTransform,
	type OutputFormat,
	type TransformQuery,
	type TransformSpec
} from "../models/transform/spec.ts";
import { imagesMixin, type ImagesContext, type StoredBytes, type VariantOptions } from "../types/images-service.ts";

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

/** What a grant without downloads serves instead of the original. */
const NO_DOWNLOAD_PRESET = "large";

/** The longest a signed transform URL may be valid: a year. */
const MAX_SIGNED_TTL_SECONDS = 365 * 24 * 3600;

/** The query string of a signed URL: the parameters in signing order, then the signature. */
function signedSearch(query: TransformQuery, signature: { sig: string; exp?: number }): string {
	const params = new URLSearchParams();
	for (const key of TRANSFORM_KEYS) if (query[key] !== undefined) params.set(key, String(query[key]));
	if (signature.exp !== undefined) params.set("exp", String(signature.exp));
	params.set("sig", signature.sig);
	return params.toString();
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

		/**
		 * A signed URL of a variant, for whoever may see the image to hand to guests: its public
		 * link for a public image, else its API path (which still needs access to the image).
		 * `expiresIn` seconds, if given, bound it. The parameters meet the checks of a request.
		 */
		signedUrl: {
			rest: "GET /images/:id/url",
			params: {
				$$strict: true,
				id: ID,
				...TRANSFORM_PARAMS,
				expiresIn: { type: "number", integer: true, min: 1, max: MAX_SIGNED_TTL_SECONDS, convert: true, optional: true }
			},
			async handler(ctx: ImagesContext) {
				const { id, expiresIn, ...query } = ctx.params as TransformQuery & { id: string; expiresIn?: number };
				const doc = await this.visibleImage(ctx, id);
				if (!wantsTransform(query)) throw new BadRequestError("Give a transform parameter to sign: the original needs no signature", "NOTHING_TO_SIGN");
				normalizeTransform(query, doc, { maxOutputPixels: config.transformMaxOutputPixels });
				// Rounded up: the URL is valid for at least `expiresIn` seconds.
				const exp = expiresIn === undefined ? undefined : Math.ceil(Date.now() / 1000) + expiresIn;
				const path = doc.visibility === "public" ? `/p/${doc.id}` : `/api/images/${doc.id}/content`;
				const url = `${path}?${signedSearch(query, signTransform(config.transformSigningKeys, doc.id, query, exp))}`;
				return { url, expiresAt: exp === undefined ? null : new Date(exp * 1000).toISOString() };
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

		/** Whether the caller gets the image as a guest: anyone but its owner and admins. */
		isGuest(ctx: ImagesContext, doc: ImageDoc): boolean {
			return !canManage(this.viewerOf(ctx), doc);
		},

		/** Whether the caller gets the original's metadata and uploaded name: managers, or guests the owner or a share link allows. */
		showsMetadata(ctx: ImagesContext, doc: ImageDoc): boolean {
			return !this.isGuest(ctx, doc) || doc.showMetadata || ctx.meta.grant?.showMetadata === true;
		},

		/**
		 * How widely the answer may be cached: managers get other bytes (the original with its
		 * metadata) or names than guests at the same URL, so only guests' answers of a public image
		 * may sit in shared caches. Guests of a private image (album members) or of a share link
		 * hold access that can end at the next request (a member removed, a link revoked): their
		 * copies are revalidated at every use.
		 */
		cacheScope(ctx: ImagesContext, doc: ImageDoc): CacheScope {
			if (!this.isGuest(ctx, doc)) return "private";
			return doc.visibility === "public" && !ctx.meta.grant ? "public" : "revalidate";
		},

		/** The download name of the image's bytes in `format`: its uploaded name, or `<id>.<ext>` when that stays private. */
		downloadName(ctx: ImagesContext, doc: ImageDoc, format: OutputFormat): string {
			return variantFilename(this.showsMetadata(ctx, doc) ? doc.filename : doc.id, format);
		},

		/** The image as JSON for the caller: without its uploaded name and camera details when its metadata stays private. */
		imageView(ctx: ImagesContext, doc: ImageDoc): PublicImage {
			const image = toPublicImage(doc);
			if (this.showsMetadata(ctx, doc)) return image;
			const metadata = image.metadata && { ...image.metadata, cameraMake: null, cameraModel: null, takenAt: null };
			return { ...image, filename: this.downloadName(ctx, doc, FORMAT_NAMES[doc.format]!), metadata };
		},

		/**
		 * The original, a preset or a transform, as the caller may have them: a guest's original is
		 * the stripped copy (or, with a grant that allows no download, the `large` preset), and a
		 * guest's parameters must be signed.
		 */
		serveDownload(ctx: ImagesContext, doc: ImageDoc, query: TransformQuery): Promise<Readable | null> {
			const guest = this.isGuest(ctx, doc);
			const noDownload = guest && ctx.meta.grant?.allowDownload === false && !wantsTransform(query);
			const preset = query.preset ?? (noDownload ? NO_DOWNLOAD_PRESET : undefined);
			if (preset !== undefined) {
				if (wantsTransform(query)) throw new BadRequestError("A preset cannot be combined with transform parameters", "PRESET_CONFLICT");
				return this.serveTransform(ctx, doc, presetQuery(config.transformPresets, preset), false);
			}
			if (!wantsTransform(query)) return this.showsMetadata(ctx, doc) ? this.serveContent(ctx, doc) : this.serveStripped(ctx, doc);
			return this.serveTransform(ctx, doc, query, guest);
		},

		/**
		 * A variant, normalized from its parameters (a malformed request is a 400 before anything
		 * else); `signed`: only with a valid signature of them (403 otherwise).
		 */
		serveTransform(ctx: ImagesContext, doc: ImageDoc, query: TransformQuery, signed: boolean): Promise<Readable | null> {
			const spec = normalizeTransform(query, doc, { accept: ctx.meta.request?.accept, maxOutputPixels: config.transformMaxOutputPixels });
			if (signed) {
				if (query.sig === undefined) throw transformNotAllowed(config.transformPresets);
				verifyTransform(config.transformSigningKeys, doc.id, query, Math.floor(Date.now() / 1000));
			}
			return this.serveVariant(ctx, doc, spec, { negotiated: query.format === "auto", countsView: true });
		},

		/** The original bytes with validators, ranges and view counting. */
		serveContent(ctx: ImagesContext, doc: ImageDoc): Promise<Readable | null> {
			const filename = this.downloadName(ctx, doc, FORMAT_NAMES[doc.format]!);
			return this.serveStored(ctx, doc, { etag: doc.sha256, filename, locate: async () => ({ blob: doc.blob, size: doc.size }) });
		},

		/**
		 * The original's copy without metadata, from the transform service's cache (made there on
		 * the first request), served as the original is: ranges, views, bucket redirects.
		 */
		serveStripped(ctx: ImagesContext, doc: ImageDoc): Promise<Readable | null> {
			const source = sourceOf(doc);
			const format = FORMAT_NAMES[doc.format]!;
			const locate = () => ctx.call<{ blob: string; size: number }, object>("transform.stripped", { source, format });
			return this.serveStored(ctx, doc, { etag: strippedKey(source), filename: this.downloadName(ctx, doc, format), locate });
		},

		/**
		 * Stored bytes in the image's own format with validators, ranges and view counting. Where
		 * they are (`locate`) is asked only once a conditional request did not answer 304.
		 */
		async serveStored(ctx: ImagesContext, doc: ImageDoc, bytes: StoredBytes): Promise<Readable | null> {
			const headers: Record<string, string | number> = { ...deliveryHeaders(this.cacheScope(ctx, doc), bytes.etag, bytes.filename), "Accept-Ranges": "bytes" };
			ctx.meta.$responseHeaders = headers;
			ctx.meta.$responseType = doc.contentType;
			const countsView = ctx.meta.user?.id !== doc.owner && !isHead(ctx);
			if (etagMatches(ctx.meta.request?.ifNoneMatch, headers.ETag as string)) {
				if (countsView) this.views.count(doc.id);
				ctx.meta.$statusCode = 304;
				return null;
			}
			const { blob, size } = await bytes.locate();
			// A call to another node may have replaced $responseHeaders with a copy in the meta merge.
			ctx.meta.$responseHeaders = headers;
			const range = parseRange(ctx.meta.request?.range, size);
			if (range === "unsatisfiable") throw new RangeNotSatisfiableError(size);
			// A range request continuing a download is not another view.
			if (countsView && (!range || range.start === 0)) this.views.count(doc.id);
			if (await this.redirectToBucket(ctx, doc, blob)) return null;
			if (range) {
				ctx.meta.$statusCode = 206;
				headers["Content-Range"] = `bytes ${range.start}-${range.end}/${size}`;
				headers["Content-Length"] = range.end - range.start + 1;
			} else {
				headers["Content-Length"] = size;
			}
			if (isHead(ctx)) return noBody();
			return this.readBlob(ctx, blob, range ?? undefined);
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
			// The pipeline's thumbnails are for everyone who may see the image; a compressed
			// rendition is a variant like any other, the owner's to ask for.
			if (renditionEdgeOf(spec) === null && this.isGuest(ctx, doc)) throw transformNotAllowed(config.transformPresets);
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
			const headers = deliveryHeaders(this.cacheScope(ctx, doc), etag, this.downloadName(ctx, doc, format));
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
			const headers = deliveryHeaders(this.cacheScope(ctx, doc), variantKey(source, spec, config.transformAvifEffort), this.downloadName(ctx, doc, spec.format));
			if (options.negotiated) headers.Vary = "Accept";
			ctx.meta.$responseHeaders = headers;
			ctx.meta.$responseType = contentTypeOf(spec.format);
			const countsView = options.countsView && ctx.meta.user?.id !== doc.owner && !isHead(ctx);
			if (countsView) this.views.count(doc.id);
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
