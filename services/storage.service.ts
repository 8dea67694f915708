/**
 * Storage: the bytes of images, plain or encrypted at rest, behind the BlobStore contract. Only
 * other services call it (every action is `visibility: "public"`, so the gateway never exposes
 * them); uploads arrive and downloads leave as streams. The exceptions are the garbage collector's
 * and the migration's, for administrators: `POST /api/admin/storage/gc` runs it, `GET
 * /api/admin/storage/gc` shows its last run (models/storage/garbage-collector.ts; it also runs
 * every GC_INTERVAL_MS); `POST /api/admin/storage/migrate` copies every blob to another backend,
 * `GET /api/admin/storage/migrate` shows its progress (models/storage/blob-migrator.ts).
 */
import type { CallingOptions, Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { MIGRATION_TARGETS, type MigrationTarget, openBlobStore, openMigrationTarget } from "../models/backends.ts";
import type { BlobStore, ByteRange, PresignedResponse, PutOptions, RefEntry } from "../models/storage/blob-store.ts";
import { pacer } from "../models/storage/blob-support.ts";
import { migrateBlobs } from "../models/storage/blob-migrator.ts";
import { collectGarbage } from "../models/storage/garbage-collector.ts";
import { type MigrationReport, newMigrationReport } from "../models/storage/migration-report.ts";
import { type GcReport, newGcReport } from "../models/storage/gc-report.ts";
import { isVariantRef } from "../models/transform/variant-cache.ts";
import type { VariantGcReport } from "../types/transform-service.ts";
import { BadRequestError, ConflictError, IntegrityError } from "../models/shared/errors.ts";
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

/**
 * The default migration rate, 64 MiB/s: a migration is an operator's planned job, faster than a
 * scrub, yet leaving the source backend room for the readers it still serves.
 */
const MIGRATE_BYTES_PER_SECOND = 64 * 1024 * 1024;
/** References listed per page of a migration. */
const MIGRATE_BATCH = 500;

/** References judged per round of a garbage collection: one images.holdsBlobs call each. */
const GC_BATCH = 100;

/** What the garbage collector counts, as Moleculer metrics (exported where METRICS_PORT is set). */
const GC_METRICS = {
	refsReleased: { name: "imgmesh.gc.refs.released", description: "Storage references the garbage collector dropped" },
	blobsDeleted: { name: "imgmesh.gc.blobs.deleted", description: "Blobs the garbage collector deleted" },
	bytesReclaimed: { name: "imgmesh.gc.bytes.reclaimed", description: "Plaintext bytes of the blobs the garbage collector deleted" },
	tempFilesRemoved: { name: "imgmesh.gc.temp.removed", description: "Leftovers of unfinished uploads the garbage collector deleted" }
} as const;

interface StorageVars {
	repo: BlobStore;
	/** The garbage collection under way on this node, if any. */
	gcRunning: GcReport | null;
	/** The last one this node finished, kept in memory. */
	gcLast: GcReport | null;
	gcTimer: NodeJS.Timeout | undefined;
	/** The migration under way on this node, if any, and the last one it finished. */
	migrationRunning: MigrationReport | null;
	migrationLast: MigrationReport | null;
}

/** A call as the garbage collector makes it: within the caller's context when it has one. */
type Call = <T>(action: string, params: object, options?: CallingOptions) => Promise<T>;

interface StorageMethods {
	runGc(ctx: Context | null, dryRun: boolean): Promise<GcReport>;
	collectVariants(call: Call, dryRun: boolean, report: GcReport): Promise<void>;
	runMigration(to: MigrationTarget, dryRun: boolean, bytesPerSecond: number): Promise<MigrationReport>;
}

/** An inclusive range from optional bounds: a missing start is 0, a missing end is the last byte. */
function rangeOf(start: number | undefined, end: number | undefined): ByteRange | undefined {
	if (start === undefined && end === undefined) return undefined;
	return { start: start ?? 0, end: end ?? Number.MAX_SAFE_INTEGER };
}

const storage: ServiceSchema<ServiceSettingSchema, StorageMethods, StorageVars> = {
	name: "storage",
	mixins: [repositoryMixin(() => openBlobStore(getConfig()), "Blob storage")],
	// Only the garbage collector's and the migration's actions have a `rest` key: the rest never reach the gateway.
	settings: { rest: "/admin/storage" },

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

		/**
		 * A short-lived URL that GETs a plain blob's bytes from the backend itself, answered with the
		 * given headers (S3_PRESIGNED_REDIRECT); null when the store cannot hand one out (not S3) or
		 * the blob is missing, encrypted or corrupt.
		 */
		presignedUrl: {
			visibility: "public",
			params: { $$strict: true, key: KEY, contentType: "string", contentDisposition: "string", cacheControl: "string" },
			async handler(ctx: Context<{ key: string } & PresignedResponse>): Promise<string | null> {
				const { key, ...response } = ctx.params;
				return (await this.repo.presignedUrl?.(key, response)) ?? null;
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
		},

		/**
		 * Runs a garbage collection on this node now and answers its report; with `dryRun`, only
		 * counts what it would reclaim. 409 while one is under way on this node. Runs as long as it
		 * takes (no timeout): the REPL's `storage gc` follows its progress through gcStatus.
		 */
		gc: {
			rest: "POST /gc",
			auth: "admin",
			timeout: 0,
			params: { $$strict: true, dryRun: { type: "boolean", optional: true } },
			async handler(ctx: Context<{ dryRun?: boolean }>) {
				return this.runGc(ctx, ctx.params.dryRun ?? false);
			}
		},

		/** This node's last finished garbage collection and the one under way: `{ lastRun, running }`, each a report or null. */
		gcStatus: {
			rest: "GET /gc",
			auth: "admin",
			params: { $$strict: true },
			handler() {
				return { lastRun: this.gcLast, running: this.gcRunning };
			}
		},

		/**
		 * Copies every blob of this node's store into the `to` backend under the same keys, verified
		 * (models/storage/blob-migrator.ts), at most `bytesPerSecond` read from the source; answers
		 * the report when done. With `dryRun`, only counts what it would copy. Running it again
		 * resumes: what the target has is skipped. 409 while one is under way on this node; 400 when
		 * the target is not configured (S3_*) or is the current backend. No timeout: the REPL's
		 * `storage migrate` follows its progress through migrateStatus.
		 */
		migrate: {
			rest: "POST /migrate",
			auth: "admin",
			timeout: 0,
			params: {
				$$strict: true,
				to: { type: "enum", values: [...MIGRATION_TARGETS] },
				dryRun: { type: "boolean", optional: true },
				bytesPerSecond: { type: "number", integer: true, min: 1024, optional: true }
			},
			async handler(ctx: Context<{ to: MigrationTarget; dryRun?: boolean; bytesPerSecond?: number }>) {
				const { to, dryRun = false, bytesPerSecond = MIGRATE_BYTES_PER_SECOND } = ctx.params;
				return this.runMigration(to, dryRun, bytesPerSecond);
			}
		},

		/** This node's last finished migration and the one under way: `{ lastRun, running }`, each a report or null. */
		migrateStatus: {
			rest: "GET /migrate",
			auth: "admin",
			params: { $$strict: true },
			handler() {
				return { lastRun: this.migrationLast, running: this.migrationRunning };
			}
		}
	},

	methods: {
		/**
		 * One garbage collection over the store (models/storage/garbage-collector.ts). Image references
		 * are judged by the images service; variant references by the transform node whose cache holds
		 * them (docs/architecture.md#garbage-collection-of-bytes). A failure ends the run, listed in its report.
		 */
		async runGc(ctx: Context | null, dryRun: boolean): Promise<GcReport> {
			if (this.gcRunning) throw new ConflictError("A garbage collection is already running on this storage node", "GC_RUNNING", { running: this.gcRunning });
			const report = newGcReport(dryRun);
			this.gcRunning = report;
			const call: Call = (action, params, options) => (ctx ? ctx.call(action, params, options) : this.broker.call(action, params, options));
			try {
				await collectGarbage(
					this.repo,
					{
						olderThan: new Date(Date.now() - getConfig().gcGraceMs),
						dryRun,
						batch: GC_BATCH,
						isJudged: ref => !isVariantRef(ref),
						held: async (refs: RefEntry[]) => (await call<{ held: boolean[] }>("images.holdsBlobs", { refs: refs.map(({ ref, key }) => ({ ref, key })) })).held
					},
					report
				);
				await this.collectVariants(call, dryRun, report);
			} catch (err) {
				report.errors.push((err as Error).message);
				this.logger.error("Garbage collection stopped:", err);
			} finally {
				report.finishedAt = new Date().toISOString();
				this.gcRunning = null;
				this.gcLast = report;
			}
			if (!dryRun) for (const [field, metric] of Object.entries(GC_METRICS)) this.broker.metrics.increment(metric.name, undefined, report[field as keyof typeof GC_METRICS]);
			this.logger.info(
				`Garbage collection${dryRun ? " (dry run)" : ""}: ${report.refsChecked} reference(s) checked, ${report.refsReleased} released, ` +
					`${report.blobsDeleted} blob(s) (${report.bytesReclaimed} bytes) deleted, ${report.tempFilesRemoved} temp file(s) removed`
			);
			return report;
		},

		/** One migration of this node's store into `to`; a failure ends the run, listed in its report. */
		async runMigration(to: MigrationTarget, dryRun: boolean, bytesPerSecond: number): Promise<MigrationReport> {
			if (this.migrationRunning) throw new ConflictError("A migration is already running on this storage node", "MIGRATION_RUNNING", { running: this.migrationRunning });
			const target = openMigrationTarget(getConfig(), to);
			const report = newMigrationReport(to, dryRun);
			this.migrationRunning = report;
			try {
				await migrateBlobs(this.repo, target, { dryRun, batch: MIGRATE_BATCH, pace: pacer(bytesPerSecond) }, report);
			} catch (err) {
				report.errors.push((err as Error).message);
				this.logger.error("Migration stopped (run it again to resume):", err);
			} finally {
				report.finishedAt = new Date().toISOString();
				this.migrationRunning = null;
				this.migrationLast = report;
				await target.close().catch(err => this.logger.warn("Closing the migration target failed:", err));
			}
			for (const { key, error } of report.failed) this.logger.error(`Migration: blob ${key} was not copied: ${error}`);
			this.logger.info(
				`Migration to ${to}${dryRun ? " (dry run)" : ""}: ${report.blobs} blob(s), ${report.copied} copied (${report.bytesCopied} bytes), ` +
					`${report.skipped} already there, ${report.failed.length} failed`
			);
			return report;
		},

		/**
		 * Each transform node's pass over its own cache (transform.collectGarbage), counted into the
		 * report: only the node whose index holds a variant reference can tell what it is for. A
		 * node that fails is listed in the report; the others still run.
		 */
		async collectVariants(call: Call, dryRun: boolean, report: GcReport): Promise<void> {
			const services = this.broker.registry.getServiceList({ onlyAvailable: true }) as { name: string; nodeID: string }[];
			const nodes = new Set(services.filter(service => service.name === "transform").map(service => service.nodeID));
			for (const nodeID of nodes) {
				try {
					const variants = await call<VariantGcReport>("transform.collectGarbage", { dryRun }, { nodeID, timeout: 0 });
					report.refsChecked += variants.checked;
					report.refsReleased += variants.released;
					report.blobsDeleted += variants.blobsDeleted;
					report.bytesReclaimed += variants.bytesReclaimed;
				} catch (err) {
					report.errors.push(`transform node ${nodeID}: ${(err as Error).message}`);
				}
			}
		}
	},

	created() {
		this.gcRunning = null;
		this.gcLast = null;
		this.migrationRunning = null;
		this.migrationLast = null;
		for (const metric of Object.values(GC_METRICS)) this.broker.metrics.register({ type: "counter", ...metric });
	},

	started() {
		const every = getConfig().gcIntervalMs;
		if (every === 0) return;
		this.gcTimer = setInterval(() => {
			if (this.gcRunning) return;
			this.runGc(null, false).catch(err => this.logger.error("Garbage collection failed:", err));
		}, every);
		this.gcTimer.unref();
	},

	stopped() {
		clearInterval(this.gcTimer);
	}
};

export default storage;
