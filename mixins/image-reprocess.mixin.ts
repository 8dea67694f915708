/**
 * Owners' and administrators' requests for pipeline work on images that exist, mixed into the
 * images service: a compressed rendition (queued on `imgmesh.compress`), and the ingest pipeline
 * run again for one image or for every failed one.
 */
import { getConfig } from "../config/index.ts";
import { EXT } from "../models/images/params.ts";
import { toPublicImage } from "../models/images/public-image.ts";
import { CHANNELS } from "../models/pipeline/channels.ts";
import { compressName } from "../models/pipeline/renditions.ts";
import { ConflictError } from "../models/shared/errors.ts";
import { ID } from "../models/shared/params.ts";
import { normalizeTransform } from "../models/transform/spec.ts";
import { imagesMixin, type ImagesContext } from "../types/images-service.ts";

const config = getConfig();

/** Images read per page by the bulk reprocess of failed images. */
const REPROCESS_PAGE = 100;

/** What POST /images/:id/compress makes when not told otherwise. */
const COMPRESS_DEFAULTS = { format: "webp", quality: 70 };

export const ImageReprocessMixin = imagesMixin({
	actions: {
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

		/**
		 * Runs the ingest pipeline again for an image of the caller's (any image, for admins): 202
		 * with the image `processing`. 409 ALREADY_PROCESSING while it is processing: its job is
		 * queued or running, so a second request changes nothing (the reconciler re-sends a lost one).
		 */
		requestReprocess: {
			rest: "POST /images/:id/reprocess",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext) {
				const doc = await this.editableImage(ctx, ctx.params.id);
				if (doc.status === "processing") throw new ConflictError("The image is being processed already", "ALREADY_PROCESSING", { id: doc.id });
				await this.restartPipeline(ctx, doc.id);
				ctx.meta.$statusCode = 202;
				return toPublicImage((await this.repo.get(doc.id)) ?? doc);
			}
		},

		/**
		 * Runs the ingest pipeline again for every `failed` image (admins), reading the catalogue a
		 * page at a time; answers how many were queued.
		 */
		reprocessFailed: {
			rest: "POST /admin/images/reprocess-failed",
			auth: "admin",
			params: { $$strict: true },
			async handler(ctx: ImagesContext) {
				let queued = 0;
				let cursor: string | undefined;
				do {
					// Oldest first: a reprocessed image keeps its place, so no page skips or repeats one.
					const page = await this.repo.search({ viewer: this.viewerOf(ctx), sort: "createdAt", limit: REPROCESS_PAGE, cursor });
					for (const doc of page.items.filter(item => item.status === "failed")) {
						await this.restartPipeline(ctx, doc.id);
						queued++;
					}
					cursor = page.nextCursor ?? undefined;
				} while (cursor);
				return { queued };
			}
		}
	}
});
