/**
 * Bytes and details of images opened by share links, mixed into the images service. The shares
 * service checks the link (token, expiry, password) and calls these internal actions; they serve
 * the image as to a guest: no user (ctx.meta.user null, so nothing of the owner's rights applies)
 * and the link's grant in ctx.meta.grant, which the delivery methods read (whether the original
 * or only renditions, with or without metadata). What the link opens is checked by the caller;
 * here only that the image is there and not in the trash.
 */
import type { ImageDoc } from "../models/images/image.ts";
import { THUMBNAIL_SIZE, TRANSFORM } from "../models/images/params.ts";
import { NotFoundError } from "../models/shared/errors.ts";
import { ID } from "../models/shared/params.ts";
import { imagesMixin, type ImagesContext } from "../types/images-service.ts";

const GRANT = { type: "object", strict: true, props: { showMetadata: "boolean", allowDownload: "boolean" } };

export const SharedDeliveryMixin = imagesMixin({
	actions: {
		/** The image's details as a guest of the link sees them (ctx.meta.grant); the shares service trims the rest. */
		sharedGet: {
			visibility: "public",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext) {
				return this.imageView(ctx, await this.sharedImage(ctx, ctx.params.id));
			}
		},

		/**
		 * The original (as the grant allows) or a variant of it, for a guest of a link. A link stays
		 * revocable: the grant makes its answers revalidated at every use (cacheScope), so a revoked
		 * link's 404 counts at once.
		 */
		sharedContent: {
			visibility: "public",
			params: { $$strict: true, id: ID, grant: GRANT, ...TRANSFORM },
			async handler(ctx: ImagesContext) {
				const { id, grant, ...query } = ctx.params;
				ctx.meta.grant = grant;
				return this.serveDownload(ctx, await this.sharedImage(ctx, id), query);
			}
		},

		sharedThumbnail: {
			visibility: "public",
			params: { $$strict: true, id: ID, grant: GRANT, size: THUMBNAIL_SIZE },
			async handler(ctx: ImagesContext) {
				ctx.meta.grant = ctx.params.grant;
				return this.serveRendition(ctx, await this.sharedImage(ctx, ctx.params.id), ctx.params.size);
			}
		}
	},

	methods: {
		/** The image unless it is in the trash (its links wait for a restore), served from here on as to an anonymous guest. */
		async sharedImage(ctx: ImagesContext, id: string): Promise<ImageDoc> {
			const doc = await this.liveImage(id);
			if (!doc) throw new NotFoundError("Image", id);
			ctx.meta.user = null;
			return doc;
		}
	}
});
