/**
 * Storage: the bytes of images, plain or encrypted at rest, behind the BlobStore contract. Only
 * other services call it (every action is `visibility: "public"`, so the gateway never exposes
 * them); uploads arrive and downloads leave as streams.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { openBlobStore } from "../models/backends.ts";
import type { BlobStore, ByteRange, PutOptions } from "../models/storage/blob-store.ts";
import { pacer } from "../models/storage/blob-support.ts";
import { BadRequestError, IntegrityError } from "../models/shared/errors.ts";
import { holdFailure } from "../models/shared/stream-failure.ts";

const KEY = { type: "string", min: 1, max: 128 };
const REF = { type: "string", min: 1, max: 128 };
const OFFSET = { type: "number", integer: true, min: 0, optional: true };

/** Blobs per scrub call: each call answers within seconds at the default rate, with its progress. */
const SCRUB_BATCH = 20;
/**
 * The default scrub rate, 16 MiB/s: a fraction of what one disk (or MongoDB) serves, so readers
 * keep the rest; a full pass over 100 GiB takes under two hours.
 */
const SCRUB_BYTES_PER_SECOND = 16 * 1024 * 1024;

interface StorageVars {
	repo: BlobStore;
}

/** An inclusive range from optional bounds: a missing start is 0, a missing end is the last byte. */
function rangeOf(start: number | undefined, end: number | undefined): ByteRange | undefined {
	if (start === undefined && end === undefined) return undefined;
	return { start: start ?? 0, end: end ?? Number.MAX_SAFE_INTEGER };
}

const storage: ServiceSchema<ServiceSettingSchema, {}, StorageVars> = {
	name: "storage",
	mixins: [repositoryMixin(() => openBlobStore(getConfig()), "Blob storage")],

	actions: {
		/** Stores the bytes of `ctx.stream`; returns the BlobRef. */
		put: {
			visibility: "public",
			// A retry would re-send a request stream that is already partly read.
			retryPolicy: { enabled: false },
			params: { $$strict: true, encrypt: "boolean", ref: REF, maxBytes: { type: "number", integer: true, min: 0 } },
			async handler(ctx: Context<PutOptions>) {
				if (!(ctx.stream instanceof Readable)) throw new BadRequestError("storage.put takes the bytes as a stream", "STREAM_REQUIRED");
				// Taken before the first await: a caller's failure may arrive while the store is still opening its file.
				return this.repo.put(holdFailure(ctx.stream), ctx.params);
			}
		},

		/** A stream of the plaintext, or of the inclusive range start..end of it. */
		get: {
			visibility: "public",
			params: { $$strict: true, key: KEY, start: OFFSET, end: OFFSET },
			async handler(ctx: Context<{ key: string; start?: number; end?: number }>) {
				const { key, start, end } = ctx.params;
				const stream = await this.repo.open(key, rangeOf(start, end));
				// A failure mid-stream reaches the reader, never this handler: it is logged here, so
				// the operator hears of corruption (the store has marked a plain blob corrupt by now).
				stream.once("error", err => {
					if (err instanceof IntegrityError) this.logger.error(`Blob ${key} failed its integrity check: ${err.message}`, err.data);
				});
				return stream;
			}
		},

		stat: {
			visibility: "public",
			params: { $$strict: true, key: KEY },
			async handler(ctx: Context<{ key: string }>) {
				return this.repo.stat(ctx.params.key);
			}
		},

		release: {
			visibility: "public",
			params: { $$strict: true, key: KEY, ref: REF },
			async handler(ctx: Context<{ key: string; ref: string }>) {
				return { deleted: await this.repo.release(ctx.params.key, ctx.params.ref) };
			}
		},

		/**
		 * After STORAGE_MASTER_KEY changed (the old key moved to STORAGE_OLD_MASTER_KEYS): re-wraps
		 * every data key under the new one. Blobs that failed are listed; the old key may be dropped
		 * once `failed` is empty.
		 */
		rotateKeys: {
			visibility: "public",
			params: { $$strict: true },
			async handler() {
				const report = await this.repo.rewrapAll();
				this.logger.info(`Re-wrapped ${report.rewrapped} encrypted blob(s) under the current master key.`);
				for (const { key, error } of report.failed) this.logger.error(`Could not re-wrap blob ${key}: ${error}`);
				return report;
			}
		},

		/**
		 * Verifies up to `limit` blobs after key `after` (in key order) by reading each whole, at most
		 * `bytesPerSecond`: a plain blob's SHA-256 (a mismatch marks it corrupt), every chunk of an
		 * encrypted one. Pass the `next` it returns as `after` to continue; null: every blob checked.
		 * The REPL's `storage scrub` calls it batch by batch, without a timeout (at a low rate a batch
		 * of large blobs takes longer than REQUEST_TIMEOUT_MS).
		 */
		scrub: {
			visibility: "public",
			params: {
				$$strict: true,
				after: { ...KEY, optional: true },
				limit: { type: "number", integer: true, min: 1, max: 1000, optional: true },
				bytesPerSecond: { type: "number", integer: true, min: 1024, optional: true }
			},
			async handler(ctx: Context<{ after?: string; limit?: number; bytesPerSecond?: number }>) {
				const { after, limit = SCRUB_BATCH, bytesPerSecond = SCRUB_BYTES_PER_SECOND } = ctx.params;
				const report = await this.repo.scrub({ ...(after ? { after } : {}), limit, pace: pacer(bytesPerSecond) });
				for (const { key, error } of report.corrupt) this.logger.error(`Scrub: blob ${key} is corrupt: ${error}`);
				return report;
			}
		}
	}
};

export default storage;
