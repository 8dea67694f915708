/**
 * Import jobs and items as stored, and a job as the REST API and its events stream show it: pure
 * type declarations, with no runtime code and no imports but other pure-type files. The web app
 * imports them (type-only) and compiles them without Node's types, so they must stay this way;
 * import-job.ts re-exports them next to the repository contract for the server.
 */
import type { Visibility } from "../images/image-types.ts";

export type ImportStatus = "queued" | "listing" | "running" | "completed" | "completed_with_errors" | "failed" | "cancelled";

export type ItemState = "queued" | "dispatched" | "running" | "succeeded" | "duplicate" | "failed" | "cancelled";
export type ItemOutcome = "succeeded" | "duplicate" | "failed";

/**
 * What to import and how. A Drive job's API key from the request is kept for the workers only
 * while the job runs, sealed under the master key (`sealedApiKey`), and never shown to clients;
 * `apiKey` is the clear key jobs stored before that, read until they end.
 */
export type ImportSource =
	| { type: "urls"; count: number }
	| { type: "google-drive"; folder: string; recursive: boolean; sealedApiKey?: string; apiKey?: string };

/** Options applied to every imported image. */
export interface ImportOptions {
	category: string | null;
	tags?: string;
	visibility: Visibility;
	encrypted: boolean;
}

export interface ImportJob {
	id: string;
	owner: string;
	ownerName: string;
	source: ImportSource;
	options: ImportOptions;
	status: ImportStatus;
	/** Items listed so far (final once listing is done). */
	total: number;
	processed: number;
	succeeded: number;
	duplicates: number;
	failed: number;
	cancelled: number;
	bytes: number;
	/** Why the job as a whole failed (e.g. the folder could not be listed). */
	error: string | null;
	listed: boolean;
	createdAt: string;
	startedAt: string | null;
	finishedAt: string | null;
	updatedAt: string;
}

export interface ImportItem {
	jobId: string;
	seq: number;
	/** Identity for exactly-once: the normalized URL or `gdrive:<file id>`. */
	key: string;
	/** Where the bytes come from. */
	url: string;
	/** File name to give the image. */
	name: string;
	state: ItemState;
	imageId: string | null;
	error: string | null;
	bytes: number;
	attempts: number;
	updatedAt: string;
}

/**
 * A job as the API shows it (GET /imports, GET /imports/:id, the events stream, and `{job}` in
 * the answers of POST /imports, DELETE and retry): no API key, no internal fields, with the first
 * failed items.
 */
export type JobView = Omit<ImportJob, "source" | "listed" | "updatedAt"> & {
	source: Record<string, unknown>;
	errors: { item: string; error: string }[];
	/** Items per second since the job started. */
	rate: number | null;
	/** Seconds left at that rate. */
	eta: number | null;
};
