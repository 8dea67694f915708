/**
 * The trash, mixed into the images service. DELETE /images/:id puts an image there
 * (trashImage): it leaves every listing and answers 404 to every read (liveImage), yet keeps its
 * record, bytes and blob references, so a restore brings it back exactly as it was, albums and
 * share links included. Purging it, by hand or once it has stayed TRASH_RETENTION_DAYS (every
 * images node sweeps each TRASH_SWEEP_INTERVAL_MS), is the deletion that DELETE used to be
 * (deleteImage: the record, then the bytes through reference counting, then `image.deleted`).
 */
import { getConfig } from "../config/index.ts";
import type { ImageDoc } from "../models/images/image.ts";
import { imageEvent, toPublicImage } from "../models/images/public-image.ts";
import { canManage, isAdmin } from "../models/shared/access.ts";
import { NotFoundError } from "../models/shared/errors.ts";
import { nowIso } from "../models/shared/ids.ts";
import { ID } from "../models/shared/params.ts";
import { imagesMixin, type ImagesContext } from "../types/images-service.ts";

const config = getConfig();

/** Images purged per repository read by "Empty trash" and the retention sweep. */
const PURGE_BATCH = 100;

const DAY_MS = 24 * 60 * 60_000;

export const ImageTrashMixin = imagesMixin({
	actions: {
		/** The caller's trash (admins: everyone's), most recently trashed first, in keyset pages. */
		trash: {
			rest: "GET /trash",
			params: {
				$$strict: true,
				limit: { type: "number", integer: true, min: 1, max: 100, convert: true, optional: true },
				cursor: { type: "string", max: 500, optional: true }
			},
			async handler(ctx: ImagesContext<{ limit?: number; cursor?: string }>) {
				const viewer = this.viewerOf(ctx);
				const owner = isAdmin(viewer) ? undefined : viewer!.id;
				const page = await this.repo.search({ viewer, owner, trashed: true, sort: "-trashedAt", limit: ctx.params.limit ?? 50, cursor: ctx.params.cursor });
				return { ...page, items: page.items.map(toPublicImage) };
			}
		},

		/** Back from the trash exactly as it was. An image not in the trash is answered as it is. */
		restore: {
			rest: "POST /trash/:id/restore",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext<{ id: string }>) {
				const doc = await this.repo.get(ctx.params.id);
				if (!doc || !canManage(this.viewerOf(ctx), doc)) throw new NotFoundError("Image", ctx.params.id);
				if (doc.trashedAt === null) return toPublicImage(doc);
				const restored = await this.repo.restore(doc.id);
				if (!restored) throw new NotFoundError("Image", doc.id);
				ctx.emit("image.restored", imageEvent(restored));
				return toPublicImage(restored);
			}
		},

		/** Deletes one image of the trash for good. */
		purge: {
			rest: "DELETE /trash/:id",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext<{ id: string }>) {
				const doc = await this.repo.get(ctx.params.id);
				if (!doc || doc.trashedAt === null || !canManage(this.viewerOf(ctx), doc)) throw new NotFoundError("Image", ctx.params.id);
				await this.deleteImage(ctx, doc, { onlyTrashed: true });
				ctx.meta.$statusCode = 204;
				return null;
			}
		},

		/** "Empty trash": deletes every image of the caller's own trash for good (admins too: only their own). */
		empty: {
			rest: "DELETE /trash",
			params: { $$strict: true },
			async handler(ctx: ImagesContext) {
				const viewer = this.viewerOf(ctx);
				const batch = () => this.repo.search({ viewer, owner: viewer!.id, trashed: true, sort: "-trashedAt", limit: PURGE_BATCH });
				return { purged: await this.purgeAll(ctx, async () => (await batch()).items) };
			}
		},

		/** Purges what stayed in the trash longer than TRASH_RETENTION_DAYS; run by each node's timer. */
		sweepTrash: {
			visibility: "protected",
			params: { $$strict: true },
			async handler(ctx: ImagesContext) {
				const cutoff = new Date(Date.now() - config.trashRetentionDays * DAY_MS).toISOString();
				const purged = await this.purgeAll(ctx, () => this.repo.trashedBefore(cutoff, PURGE_BATCH));
				if (purged > 0) this.logger.info(`Purged ${purged} image(s) kept in the trash for over ${config.trashRetentionDays} day(s).`);
				return { purged };
			}
		}
	},

	methods: {
		/** The image unless it is in the trash: what every read and edit starts from. */
		async liveImage(id: string): Promise<ImageDoc | null> {
			const doc = await this.repo.get(id);
			return doc && doc.trashedAt === null ? doc : null;
		},

		/** Told once: a concurrent DELETE that finds the image trashed already changes nothing. */
		async trashImage(ctx: ImagesContext, doc: ImageDoc): Promise<void> {
			const at = nowIso();
			const trashed = await this.repo.trash(doc.id, at);
			if (trashed?.trashedAt === at) ctx.emit("image.trashed", imageEvent(trashed));
		},

		/** Purges the images `next` hands out until it has none left; returns how many went. */
		async purgeAll(ctx: ImagesContext, next: () => Promise<ImageDoc[]>): Promise<number> {
			let purged = 0;
			for (let batch = await next(); batch.length > 0; batch = await next()) {
				for (const doc of batch) if (await this.deleteImage(ctx, doc, { onlyTrashed: true })) purged++;
			}
			return purged;
		}
	},

	started() {
		const every = config.trashSweepIntervalMs;
		if (every === 0) return;
		this.trashTimer = setInterval(() => {
			// A sweep that outlasts the interval is not joined by another one.
			this.trashSweep ??= this.actions.sweepTrash({})
				.catch((err: unknown) => this.logger.error("Purging the trash failed:", err))
				.finally(() => (this.trashSweep = undefined));
		}, every);
		this.trashTimer.unref();
	},

	stopped() {
		clearInterval(this.trashTimer);
	}
});
