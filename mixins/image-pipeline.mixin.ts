/**
 * The ingest pipeline's side of the images service: the internal actions (never over REST) that
 * the worker, classifier, transform and reconciler use to read an image and record their results,
 * and the sending of an image's job. The metadata store is the source of truth of a job's
 * progress, so every action here is idempotent: a duplicate message finds nothing to do.
 */
import type { ImageDoc, ImageMetadata, ImageStatus, Rendition, Tag } from "../models/images/image.ts";
import { STATUS } from "../models/images/params.ts";
import { imageEvent, toPublicImage } from "../models/images/public-image.ts";
import { normalizeLabel, tagList } from "../models/images/tags.ts";
import { CHANNELS, imageRefParts, renditionRef } from "../models/pipeline/channels.ts";
import { NotFoundError } from "../models/shared/errors.ts";
import { ID } from "../models/shared/params.ts";
import { imagesMixin, type ImagesContext } from "../types/images-service.ts";

export const ImagePipelineMixin = imagesMixin({
	actions: {
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

		/**
		 * The storage garbage collector's question: for each storage reference this service makes
		 * (an image id for its original, renditionRef for a rendition) with the blob it holds, whether
		 * the image still uses that blob. A reference of any other form is not this service's to
		 * judge: it answers true, so the reference is kept.
		 */
		holdsBlobs: {
			visibility: "public",
			params: {
				$$strict: true,
				refs: {
					type: "array",
					max: 1000,
					items: { type: "object", strict: true, props: { ref: { type: "string", max: 128 }, key: { type: "string", max: 128 } } }
				}
			},
			async handler(ctx: ImagesContext<{ refs: { ref: string; key: string }[] }>): Promise<{ held: boolean[] }> {
				const images = new Map<string, Promise<ImageDoc | null>>();
				const imageOf = (id: string) => images.get(id) ?? images.set(id, this.repo.get(id)).get(id)!;
				const held = await Promise.all(
					ctx.params.refs.map(async ({ ref, key }) => {
						const parts = imageRefParts(ref);
						if (!parts) return true;
						const doc = await imageOf(parts.imageId);
						if (!doc) return false;
						return parts.rendition === null ? doc.blob === key : doc.renditions.some(r => r.name === parts.rendition && r.blob === key);
					})
				);
				return { held };
			}
		},

		/**
		 * The transform cache's garbage collection question: which of these original SHA-256 digests
		 * some image still has (a cached variant of any other is of no use any more).
		 */
		sourcesInUse: {
			visibility: "public",
			params: { $$strict: true, sha256s: { type: "array", max: 1000, items: { type: "string", length: 64 } } },
			async handler(ctx: ImagesContext<{ sha256s: string[] }>): Promise<{ inUse: string[] }> {
				return { inUse: await this.repo.existingSha256(ctx.params.sha256s) };
			}
		},

		/** Runs the pipeline again from the start: drops metadata and renditions, status back to processing. */
		reprocess: {
			visibility: "public",
			params: { $$strict: true, id: ID },
			async handler(ctx: ImagesContext) {
				await this.restartPipeline(ctx, ctx.params.id);
				return { id: ctx.params.id, status: "processing" };
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
		}
	},

	methods: {
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

		/**
		 * Drops metadata and renditions, status back to processing, and sends the job: what every
		 * way of reprocessing (REST, the bulk action, the REPL) does. Throws 404 if there is no such image.
		 */
		async restartPipeline(ctx: ImagesContext, id: string): Promise<void> {
			const before = await this.repo.resetProcessing(id);
			if (!before) throw new NotFoundError("Image", id);
			await this.releaseRenditions(ctx, before.id, before.renditions);
			await this.enqueue(ctx, before);
		},

		/**
		 * Called once the change that let go of the renditions is committed (deleted or reset): a
		 * release that fails then (a full disk) is logged, not thrown, or a change that was made
		 * would be answered as an error. The storage GC reclaims bytes no image references.
		 */
		async releaseRenditions(ctx: ImagesContext, id: string, renditions: Rendition[]): Promise<void> {
			await Promise.all(renditions.map(r => this.releaseOrLog(ctx, r.blob, renditionRef(id, r.name))));
		},

		async releaseOrLog(ctx: ImagesContext, key: string, ref: string): Promise<void> {
			try {
				await ctx.call("storage.release", { key, ref });
			} catch (err) {
				this.logger.warn(`Could not release blob ${key} of ${ref} (the storage GC reclaims it): ${(err as Error).message}`);
			}
		}
	}
});
