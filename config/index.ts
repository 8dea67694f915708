/**
 * All configuration, read once from the environment. Every variable is documented in the
 * configuration table in docs/configuration.md; nothing else in the code reads process.env.
 */
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { prepareDataDir } from "./data-dir.ts";
import { loadOrCreateSecrets } from "./secrets.ts";
import { DEFAULT_PRESETS, parsePresets, type Presets } from "../models/transform/presets.ts";
import type { SigningKey } from "../models/transform/signing.ts";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace";

/** Services a node needs reachable (anywhere in the cluster) to serve requests: readiness checks them. */
export const REQUIRED_SERVICES = ["users", "images", "categories", "storage"];

export interface Config {
	port: number;
	host: string;
	dataDir: string;
	logLevel: LogLevel;
	/** The operator REPL's: LOG_LEVEL when given, else warnings only (broker chatter would scroll the prompt away). */
	replLogLevel: LogLevel;
	nodeId: string | undefined;
	/** Names of the services this node hosts; empty means all of them. */
	services: string[];
	jwtSecret: string;
	jwtExpiresIn: number;
	/** Current master key (32 bytes) wrapping per-object data keys. */
	storageMasterKey: Buffer;
	/** Older master keys still accepted for reading, for rotation. */
	storageOldMasterKeys: Buffer[];
	adminUsername: string;
	adminPassword: string;
	maxUploadBytes: number;
	maxUploadFiles: number;
	maxInputPixels: number;
	/** Readiness answers 503 while the file system of DATA_DIR (or of the blob files) has less free space than this; 0 = no check. */
	storageMinFreeBytes: number;
	corsOrigins: string[];
	trustProxy: boolean;
	rateLimitPerMinute: number;
	requestTimeoutMs: number;
	/** Threads of the password hashing pool (scrypt), per users node. */
	passwordHashWorkers: number;
	/** Password checks waiting for such a thread; more are refused with 429. */
	passwordHashQueue: number;
	/** Failed logins for one username before further attempts are refused for a while. */
	loginFailuresPerAccount: number;
	/** Failed logins from one client address before further attempts are refused for a while. */
	loginFailuresPerAddress: number;
	/** First refusal period after the threshold; doubles with every further failure. */
	loginThrottleBaseMs: number;
	/** Longest refusal period; also how long a failure is remembered. */
	loginThrottleMaxMs: number;

	// --- distributed mode (cluster: transporter, MongoDB, GridFS, metrics) ---
	/** Moleculer transporter URL (`redis://host:port`); unset = embedded, no transporter. */
	transporter: string | undefined;
	namespace: string;
	/** Seconds between a node's heartbeats (Moleculer discovery). */
	heartbeatInterval: number;
	/** Seconds without a heartbeat after which a node counts as gone and gets no more calls. */
	heartbeatTimeout: number;
	/** Port of this node's Prometheus metrics endpoint (`/metrics`); unset = no metrics. */
	metricsPort: number | undefined;
	/** MongoDB connection string; set = images, categories and users live in MongoDB, not SQLite. */
	mongoUrl: string | undefined;
	/** How long a MongoDB call waits for a reachable server before failing with 503. */
	mongoTimeoutMs: number;
	/** Where blobs live: files under DATA_DIR, GridFS in the MONGO_URL database, or an S3 bucket. */
	storage: StorageBackend;
	/** The bucket of STORAGE=s3; unset for the other backends. */
	s3: S3Settings | undefined;
	/** The bucket `storage migrate --to s3` copies into (S3_* set with another STORAGE); unset without S3_BUCKET. */
	s3MigrationTarget: S3Settings | undefined;
	/** How a node without the storage service reads blobs: the backend itself, or through a storage node (models/backends.ts). */
	blobReads: BlobReads;

	// --- durable jobs and processing ---
	/** Messages one worker node processes at once, per channel (@moleculer/channels maxInFlight). */
	workerMaxInFlight: number;
	/** Deliveries of a job before it goes to the dead-letter stream (a hard cap, see cluster/channels.ts). */
	jobMaxAttempts: number;
	/** A job unacknowledged this long (its worker died or failed) is handed to another worker (Redis minIdleTime). */
	jobRedeliverAfterMs: number;
	/** How often each consumer looks for such jobs. */
	jobClaimIntervalMs: number;
	/** Times the pipeline runs an image again after a transient error (full disk, I/O error, a backend away) before failing it. */
	jobTransientRetries: number;
	/** Wait before the first such retry; it doubles with each one. */
	jobRetryBaseMs: number;
	/** Longest wait between such retries. */
	jobRetryMaxMs: number;
	/** A stopping node gives its jobs in flight this long to finish, then hands them back to other workers. */
	jobStopGraceMs: number;
	/** A stopping node exits after this long at the latest (Moleculer tracking.shutdownTimeout, and a hard exit). */
	shutdownTimeoutMs: number;
	/** How often the reconciler looks for images stuck in `processing`. */
	reconcileIntervalMs: number;
	/** An image `processing` without any update for this long has lost its job and is enqueued again. */
	reconcileStuckAfterMs: number;
	/**
	 * Garbage collection of bytes: a storage reference younger than this is never collected, nor is
	 * a temp file modified more recently. Far longer than an upload or a pipeline step takes.
	 */
	gcGraceMs: number;
	/** How often each storage node collects garbage and each imports node sweeps its temp files; 0 = never (on demand only). */
	gcIntervalMs: number;
	/** Days an image stays in the trash before it is purged for good (0: at the next sweep). */
	trashRetentionDays: number;
	/** How often each images node purges the trash of what is older than the retention; 0 = never. */
	trashSweepIntervalMs: number;
	/** Largest transform output (width × height); bigger requests get 400. */
	transformMaxOutputPixels: number;
	/** Bytes of transformed variants kept on the storage backend (LRU beyond that). */
	transformCacheMaxBytes: number;
	/** Variants rendered at once per transform node (non-AVIF). */
	transformConcurrency: number;
	/** AVIF encodes at once per transform node: each can hold a core for seconds. */
	transformAvifConcurrency: number;
	/** Renders waiting per bulkhead before requests are refused with 429 (at least 1: Moleculer reads 0 as unbounded). */
	transformQueueSize: number;
	/** AVIF encoder effort, 0 (fastest) to 9 (smallest). */
	transformAvifEffort: number;
	/** libvips threads per image. */
	transformThreads: number;
	/** Variants anyone who may see an image can ask for by name (`?preset=`): docs/sharing.md. */
	transformPresets: Presets;
	/** Keys of signed transform URLs, the signing one first; generated into secrets.json when unset. */
	transformSigningKeys: SigningKey[];

	// --- classifier ---
	/** Path of the classifier's model manifest (JSON); unset = no automatic tagging. */
	classifierModel: string | undefined;
	/** Inference sessions, each in its own worker thread (models run one batch at a time per session). */
	classifierSessions: number;
	/** onnxruntime intra-op threads per session; 0 = onnxruntime's default (one per core). */
	classifierThreads: number;
	/** Most images in one batch, for models with a dynamic batch dimension. */
	classifierMaxBatch: number;
	/** How long a lone request waits for others to share its batch (dynamic-batch models only). */
	classifierBatchWindowMs: number;
	/** Most labels per image. */
	classifierTopK: number;
	/** Labels scoring below this probability are dropped. */
	classifierMinScore: number;
	/** Extra attempts at classifying an image in the pipeline before its tag step is marked failed. */
	classifierRetries: number;

	// --- imports ---
	/** Lets imports fetch from loopback/private addresses. Only tests set it. */
	importAllowPrivateNetworks: boolean;
	/** Concurrent downloads per node, and per source host on a node. */
	importConcurrency: number;
	importPerHostConcurrency: number;
	/** Per download attempt: connect, headers and any stall in the body. */
	importTimeoutMs: number;
	importRetries: number;
	importRetryBaseMs: number;
	/** An item or listing held this long by a node that stopped renewing it is taken over. */
	importLeaseMs: number;
	/** An unfinished job without progress for this long is resumed by another node. */
	importStallMs: number;
	/** Import jobs one user may have open (queued, listing or running) at once. */
	importMaxOpenJobs: number;
	/** Items (URLs, Drive files) not yet done one user may have across their open import jobs. */
	importMaxQueuedItems: number;
	googleApiKey: string | undefined;
	googleDriveApiUrl: string;
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
	const raw = env[name];
	if (raw === undefined || raw === "") return fallback;
	const value = Number(raw);
	if (!Number.isSafeInteger(value) || value < min) {
		throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
	}
	return value;
}

function bounded(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
	const value = integer(env, name, fallback, min);
	if (value > max) throw new Error(`${name} must be at most ${max}, got ${value}`);
	return value;
}

function boolean(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
	const raw = env[name]?.toLowerCase();
	if (raw === undefined || raw === "") return fallback;
	if (["1", "true", "yes", "on"].includes(raw)) return true;
	if (["0", "false", "no", "off"].includes(raw)) return false;
	throw new Error(`${name} must be true or false, got "${raw}"`);
}

function list(env: NodeJS.ProcessEnv, name: string): string[] {
	return (env[name] ?? "")
		.split(",")
		.map(item => item.trim())
		.filter(Boolean);
}

function fraction(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
	const raw = env[name];
	if (raw === undefined || raw === "") return fallback;
	const value = Number(raw);
	if (!Number.isFinite(value) || value < 0 || value > 1) throw new Error(`${name} must be a number from 0 to 1, got "${raw}"`);
	return value;
}

const LOG_LEVELS: LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace"];

function logLevel(env: NodeJS.ProcessEnv, fallback: LogLevel = "info"): LogLevel {
	const raw = (env.LOG_LEVEL ?? fallback).toLowerCase() as LogLevel;
	if (!LOG_LEVELS.includes(raw)) throw new Error(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);
	return raw;
}

/** At least two missed heartbeats, so one late packet never expires a healthy node. */
function heartbeatTimeout(env: NodeJS.ProcessEnv): number {
	const interval = integer(env, "HEARTBEAT_INTERVAL", 5, 1);
	const timeout = integer(env, "HEARTBEAT_TIMEOUT", 15, 1);
	if (timeout < 2 * interval) throw new Error(`HEARTBEAT_TIMEOUT (${timeout}) must be at least twice HEARTBEAT_INTERVAL (${interval})`);
	return timeout;
}

/** The job grace must end before the whole stop's timeout, or the hand-back could come too late. */
function stopTimes(env: NodeJS.ProcessEnv): { jobStopGraceMs: number; shutdownTimeoutMs: number } {
	const shutdownTimeoutMs = integer(env, "SHUTDOWN_TIMEOUT_MS", 30_000, 1000);
	const jobStopGraceMs = integer(env, "JOB_STOP_GRACE_MS", 10_000, 0);
	if (jobStopGraceMs >= shutdownTimeoutMs) throw new Error(`JOB_STOP_GRACE_MS (${jobStopGraceMs}) must be less than SHUTDOWN_TIMEOUT_MS (${shutdownTimeoutMs})`);
	return { jobStopGraceMs, shutdownTimeoutMs };
}

function presets(env: NodeJS.ProcessEnv): Presets {
	if (!env.TRANSFORM_PRESETS) return DEFAULT_PRESETS;
	try {
		return parsePresets(env.TRANSFORM_PRESETS);
	} catch (err) {
		throw new Error((err as Error).message.startsWith("TRANSFORM_PRESETS") ? (err as Error).message : `TRANSFORM_PRESETS is not valid JSON: ${(err as Error).message}`);
	}
}

export type StorageBackend = "fs" | "gridfs" | "s3";
const STORAGE_BACKENDS: StorageBackend[] = ["fs", "gridfs", "s3"];

function storageBackend(env: NodeJS.ProcessEnv): StorageBackend {
	const raw = (env.STORAGE || "fs").toLowerCase() as StorageBackend;
	if (!STORAGE_BACKENDS.includes(raw)) throw new Error(`STORAGE must be one of ${STORAGE_BACKENDS.join(", ")}, got "${raw}"`);
	if (raw === "gridfs" && !env.MONGO_URL) throw new Error("STORAGE=gridfs keeps blobs in MongoDB: set MONGO_URL too");
	return raw;
}

/** An S3 bucket and how to reach it (the S3BlobStore's S3Location). */
export interface S3Settings {
	/** Unset: AWS S3 itself. */
	endpoint: string | undefined;
	region: string;
	bucket: string;
	/** Prepended to every object name (e.g. `imgmesh/`), so deployments can share a bucket. */
	prefix: string;
	/** Unset: the SDK's default credential chain (AWS_* variables, profile, instance role). */
	credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
	forcePathStyle: boolean;
	/** Plain public images' bytes answered with a 302 to a presigned URL of their object, not streamed. */
	presignedRedirect: boolean;
	/** How long such a URL stays valid. */
	presignedTtlSeconds: number;
}

/** The longest a SigV4 presigned URL may be valid: 7 days. */
const MAX_PRESIGNED_TTL_SECONDS = 7 * 24 * 3600;

/** An object name prefix as a folder: `imgmesh` and `imgmesh/` both mean objects under `imgmesh/`. */
function folder(prefix: string): string {
	return prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
}

function s3Settings(env: NodeJS.ProcessEnv): S3Settings | undefined {
	if (storageBackend(env) !== "s3") return undefined;
	if (!env.S3_BUCKET) throw new Error("STORAGE=s3 needs S3_BUCKET");
	return bucketSettings(env, env.S3_BUCKET);
}

/** The bucket `storage migrate --to s3` copies into: the S3_* variables, whatever STORAGE is. */
function s3MigrationTarget(env: NodeJS.ProcessEnv): S3Settings | undefined {
	return env.S3_BUCKET ? bucketSettings(env, env.S3_BUCKET) : undefined;
}

function bucketSettings(env: NodeJS.ProcessEnv, bucket: string): S3Settings {
	const accessKeyId = env.S3_ACCESS_KEY_ID || "";
	const secretAccessKey = env.S3_SECRET_ACCESS_KEY || "";
	if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) throw new Error("Set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither (the SDK's default credentials)");
	const endpoint = env.S3_ENDPOINT || undefined;
	return {
		endpoint,
		region: env.S3_REGION || "us-east-1",
		bucket,
		prefix: folder(env.S3_PREFIX || ""),
		credentials: accessKeyId ? { accessKeyId, secretAccessKey } : undefined,
		// S3-compatible servers at an endpoint of their own rarely have per-bucket host names.
		forcePathStyle: boolean(env, "S3_FORCE_PATH_STYLE", endpoint !== undefined),
		presignedRedirect: boolean(env, "S3_PRESIGNED_REDIRECT", false),
		presignedTtlSeconds: bounded(env, "S3_PRESIGNED_TTL_SECONDS", 300, 1, MAX_PRESIGNED_TTL_SECONDS)
	};
}

/**
 * `auto`: a node reads the backend itself when every node reaches it (GridFS), else through a
 * storage node; `direct`: always itself (with STORAGE=fs the operator says DATA_DIR is shared);
 * `storage`: always through a storage node, the fallback.
 */
export type BlobReads = "auto" | "direct" | "storage";

const BLOB_READS: BlobReads[] = ["auto", "direct", "storage"];

function blobReads(env: NodeJS.ProcessEnv): BlobReads {
	const raw = (env.BLOB_READS || "auto").toLowerCase() as BlobReads;
	if (!BLOB_READS.includes(raw)) throw new Error(`BLOB_READS must be one of ${BLOB_READS.join(", ")}, got "${raw}"`);
	return raw;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
	const dataDir = resolve(env.DATA_DIR || "./data");
	prepareDataDir(dataDir);
	const secrets = loadOrCreateSecrets(dataDir, env);
	return {
		port: integer(env, "PORT", 3000),
		host: env.HOST || "0.0.0.0",
		dataDir,
		logLevel: logLevel(env),
		replLogLevel: logLevel(env, "warn"),
		nodeId: env.NODE_ID || undefined,
		services: list(env, "SERVICES"),
		jwtSecret: secrets.jwtSecret,
		jwtExpiresIn: integer(env, "JWT_EXPIRES_IN", 7 * 24 * 3600, 60),
		storageMasterKey: secrets.storageMasterKey,
		storageOldMasterKeys: secrets.storageOldMasterKeys,
		adminUsername: env.ADMIN_USERNAME || "admin",
		adminPassword: secrets.adminPassword,
		maxUploadBytes: integer(env, "MAX_UPLOAD_BYTES", 50 * 1024 * 1024, 1),
		maxUploadFiles: integer(env, "MAX_UPLOAD_FILES", 100, 1),
		maxInputPixels: integer(env, "MAX_INPUT_PIXELS", 100_000_000, 1),
		// Room for a few largest uploads and SQLite's journals: below it a node stops taking traffic before writes fail.
		storageMinFreeBytes: integer(env, "STORAGE_MIN_FREE_BYTES", 128 * 1024 * 1024, 0),
		corsOrigins: list(env, "CORS_ORIGINS"),
		trustProxy: boolean(env, "TRUST_PROXY", false),
		rateLimitPerMinute: integer(env, "RATE_LIMIT_PER_MINUTE", 3000, 0),
		requestTimeoutMs: integer(env, "REQUEST_TIMEOUT_MS", 120_000, 1000),
		// Half the cores (at least one, at most four): scrypt keeps a core busy for ~50 ms per check,
		// and a login flood must leave the other cores to everything else.
		passwordHashWorkers: integer(env, "PASSWORD_HASH_WORKERS", Math.min(4, Math.max(1, Math.floor(availableParallelism() / 2))), 1),
		// Room for a 64-login flood to wait rather than spin on refusals (bench:login): refused at
		// once, each guess came straight back and the requests cost more than the hashing did.
		passwordHashQueue: integer(env, "PASSWORD_HASH_QUEUE", 64, 0),
		loginFailuresPerAccount: integer(env, "LOGIN_FAILURES_PER_ACCOUNT", 5, 1),
		loginFailuresPerAddress: integer(env, "LOGIN_FAILURES_PER_ADDRESS", 20, 1),
		loginThrottleBaseMs: integer(env, "LOGIN_THROTTLE_BASE_MS", 1000, 1),
		loginThrottleMaxMs: integer(env, "LOGIN_THROTTLE_MAX_MS", 15 * 60_000, 1),

		// --- distributed mode (cluster: transporter, MongoDB, GridFS, metrics) ---
		transporter: env.TRANSPORTER || undefined,
		namespace: env.NAMESPACE || "imgmesh",
		heartbeatInterval: integer(env, "HEARTBEAT_INTERVAL", 5, 1),
		heartbeatTimeout: heartbeatTimeout(env),
		metricsPort: env.METRICS_PORT ? integer(env, "METRICS_PORT", 0, 1) : undefined,
		mongoUrl: env.MONGO_URL || undefined,
		mongoTimeoutMs: integer(env, "MONGO_TIMEOUT_MS", 1500, 100),
		storage: storageBackend(env),
		s3: s3Settings(env),
		s3MigrationTarget: s3MigrationTarget(env),
		blobReads: blobReads(env),

		// --- durable jobs and processing ---
		workerMaxInFlight: integer(env, "WORKER_MAX_IN_FLIGHT", 2, 1),
		jobMaxAttempts: integer(env, "JOB_MAX_ATTEMPTS", 3, 1),
		jobRedeliverAfterMs: integer(env, "JOB_REDELIVER_AFTER_MS", 30_000, 100),
		jobClaimIntervalMs: integer(env, "JOB_CLAIM_INTERVAL_MS", 1000, 10),
		// 1 s doubling to 5 min: 20 retries span about an hour, long enough for an operator to free a disk.
		jobTransientRetries: integer(env, "JOB_TRANSIENT_RETRIES", 20, 0),
		jobRetryBaseMs: integer(env, "JOB_RETRY_BASE_MS", 1000, 10),
		jobRetryMaxMs: integer(env, "JOB_RETRY_MAX_MS", 5 * 60_000, 10),
		...stopTimes(env),
		reconcileIntervalMs: integer(env, "RECONCILE_INTERVAL_MS", 60_000, 100),
		reconcileStuckAfterMs: integer(env, "RECONCILE_STUCK_AFTER_MS", 10 * 60_000, 100),
		gcGraceMs: integer(env, "GC_GRACE_MS", 60 * 60_000, 1),
		// At most setInterval's limit (about 24.8 days).
		gcIntervalMs: bounded(env, "GC_INTERVAL_MS", 6 * 60 * 60_000, 0, 2 ** 31 - 1),
		trashRetentionDays: integer(env, "TRASH_RETENTION_DAYS", 30, 0),
		// At most setInterval's limit (about 24.8 days).
		trashSweepIntervalMs: bounded(env, "TRASH_SWEEP_INTERVAL_MS", 60 * 60_000, 0, 2 ** 31 - 1),
		transformMaxOutputPixels: integer(env, "TRANSFORM_MAX_OUTPUT_PIXELS", 50_000_000, 1),
		transformCacheMaxBytes: integer(env, "TRANSFORM_CACHE_MAX_BYTES", 512 * 1024 * 1024, 0),
		transformConcurrency: integer(env, "TRANSFORM_CONCURRENCY", availableParallelism(), 1),
		transformAvifConcurrency: integer(env, "TRANSFORM_AVIF_CONCURRENCY", 1, 1),
		transformQueueSize: integer(env, "TRANSFORM_QUEUE_SIZE", 100, 1),
		transformAvifEffort: bounded(env, "TRANSFORM_AVIF_EFFORT", 3, 0, 9),
		transformThreads: integer(env, "TRANSFORM_THREADS", 1, 1),
		transformPresets: presets(env),
		transformSigningKeys: secrets.transformSigningKeys,

		// --- classifier ---
		classifierModel: env.CLASSIFIER_MODEL ? resolve(env.CLASSIFIER_MODEL) : undefined,
		classifierSessions: integer(env, "CLASSIFIER_SESSIONS", 1, 1),
		// One intra-op thread per session (sessions give the parallelism): onnxruntime's default of
		// one per core made inference fight the decoding beside it, 75 vs 106-118 images/s on 2 cores
		// (bench:classify, docs/classifier.md).
		classifierThreads: integer(env, "CLASSIFIER_THREADS", 1, 0),
		classifierMaxBatch: integer(env, "CLASSIFIER_MAX_BATCH", 8, 1),
		classifierBatchWindowMs: integer(env, "CLASSIFIER_BATCH_WINDOW_MS", 2, 0),
		classifierTopK: integer(env, "CLASSIFIER_TOP_K", 5, 1),
		classifierMinScore: fraction(env, "CLASSIFIER_MIN_SCORE", 0.2),
		classifierRetries: integer(env, "CLASSIFIER_RETRIES", 2, 0),

		// --- imports ---
		importAllowPrivateNetworks: boolean(env, "IMPORT_ALLOW_PRIVATE_NETWORKS", false),
		importConcurrency: integer(env, "IMPORT_CONCURRENCY", 16, 1),
		importPerHostConcurrency: integer(env, "IMPORT_PER_HOST_CONCURRENCY", 8, 1),
		importTimeoutMs: integer(env, "IMPORT_TIMEOUT_MS", 30_000, 100),
		importRetries: integer(env, "IMPORT_RETRIES", 3, 0),
		importRetryBaseMs: integer(env, "IMPORT_RETRY_BASE_MS", 500, 0),
		importLeaseMs: integer(env, "IMPORT_LEASE_MS", 5 * 60_000, 1000),
		importStallMs: integer(env, "IMPORT_STALL_MS", 60_000, 500),
		importMaxOpenJobs: integer(env, "IMPORT_MAX_OPEN_JOBS", 10, 1),
		importMaxQueuedItems: integer(env, "IMPORT_MAX_QUEUED_ITEMS", 200_000, 1),
		googleApiKey: env.GOOGLE_API_KEY || undefined,
		googleDriveApiUrl: env.GOOGLE_DRIVE_API_URL || "https://www.googleapis.com/drive/v3"
	};
}

/** The process-wide configuration, read on first use. */
let current: Config | undefined;
export function getConfig(): Config {
	current ??= loadConfig();
	return current;
}
