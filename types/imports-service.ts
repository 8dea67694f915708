/**
 * The shape of the imports service as its parts see it: services/imports.service.ts (the REST
 * side) and mixins/import-worker.mixin.ts (the work) share these methods and state.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { PublicImage } from "../models/images/public-image.ts";
import type { CreateParams } from "../models/imports/params.ts";
import type { ImportItem, ImportJob, ImportRepository, ItemResult, JobView } from "../models/imports/import-job.ts";
import type { FetchLimiter } from "../models/imports/safe-fetch.ts";
import type { KeyedLock } from "../models/shared/keyed-lock.ts";
import type { Keyring } from "../models/storage/envelope-crypto.ts";
import type { AuthUser } from "../models/users/user.ts";

type Meta = { user?: AuthUser | null; $statusCode?: number; $responseType?: string; $responseHeaders?: Record<string, string> };
export type ImportsContext<P = Record<string, any>> = Context<P, Meta>;

/** A message on the import channel: list a job's items, or run some of them. */
export type ImportMessage = { jobId: string; list: true } | { jobId: string; items: number[] };

export interface ImportsVars {
	repo: ImportRepository;
	limiter: FetchLimiter;
	tmpDir: string;
	/** Seals and opens the API keys jobs carry (models/imports/job-secrets.ts). */
	keyring: Keyring;
	reconciler: NodeJS.Timeout | undefined;
	/** Sweeps tmpDir of what a crashed node left, every GC_INTERVAL_MS. */
	tempSweeper: NodeJS.Timeout | undefined;
	/** Job creations of one owner, one at a time on this node (the per-user limits' check and write). */
	ownerLocks: KeyedLock;
}

export interface ImportsMethods {
	// services/imports.service.ts
	createJob(ctx: ImportsContext, params: CreateParams): Promise<ImportJob>;
	checkLimits(owner: string, requested: number): Promise<void>;
	ownJob(ctx: ImportsContext, id: string): Promise<ImportJob>;
	retryApiKey(job: ImportJob, apiKey: string | undefined): string | undefined;
	view(job: ImportJob): Promise<JobView>;
	// mixins/import-worker.mixin.ts
	fill(jobId: string): Promise<void>;
	listJob(jobId: string): Promise<void>;
	listItems(job: ImportJob): Promise<void>;
	runItems(jobId: string, seqs: number[]): Promise<void>;
	runItem(job: ImportJob, seq: number): Promise<void>;
	importItem(job: ImportJob, item: ImportItem): Promise<ItemResult>;
	storeOnce(job: ImportJob, item: ImportItem, id: string, file: string, sha256: string): Promise<ItemResult>;
	existingImage(job: ImportJob, id: string): Promise<PublicImage | null>;
	reconcile(stalledForMs?: number): Promise<void>;
	resumeAfterRestart(): Promise<void>;
	sweepTempFiles(): Promise<void>;
}

/** A part of the imports service, written against the whole service's `this`. */
export function importsMixin(schema: Partial<ServiceSchema<ServiceSettingSchema, ImportsMethods, ImportsVars>>): Partial<ServiceSchema> {
	return schema as Partial<ServiceSchema>;
}
