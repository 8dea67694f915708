/**
 * All configuration, read once from the environment. Every variable is documented in the
 * README's configuration table; nothing else in the code reads process.env.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { loadOrCreateSecrets } from "./secrets.ts";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace";

export interface Config {
	port: number;
	host: string;
	dataDir: string;
	logLevel: LogLevel;
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
	corsOrigins: string[];
	trustProxy: boolean;
	rateLimitPerMinute: number;
	requestTimeoutMs: number;

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

	// --- durable jobs and processing ---

	// --- classifier ---
	/** Path of the classifier's model manifest (JSON); unset = no automatic tagging. */
	classifierModel: string | undefined;

	// --- imports ---
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

const LOG_LEVELS: LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace"];

function logLevel(env: NodeJS.ProcessEnv): LogLevel {
	const raw = (env.LOG_LEVEL ?? "info").toLowerCase() as LogLevel;
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

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
	const dataDir = resolve(env.DATA_DIR || "./data");
	mkdirSync(dataDir, { recursive: true });
	const secrets = loadOrCreateSecrets(dataDir, env);
	return {
		port: integer(env, "PORT", 3000),
		host: env.HOST || "0.0.0.0",
		dataDir,
		logLevel: logLevel(env),
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
		corsOrigins: list(env, "CORS_ORIGINS"),
		trustProxy: boolean(env, "TRUST_PROXY", false),
		rateLimitPerMinute: integer(env, "RATE_LIMIT_PER_MINUTE", 3000, 0),
		requestTimeoutMs: integer(env, "REQUEST_TIMEOUT_MS", 120_000, 1000),

		// --- distributed mode (cluster: transporter, MongoDB, GridFS, metrics) ---
		transporter: env.TRANSPORTER || undefined,
		namespace: env.NAMESPACE || "imgmesh",
		heartbeatInterval: integer(env, "HEARTBEAT_INTERVAL", 5, 1),
		heartbeatTimeout: heartbeatTimeout(env),
		metricsPort: env.METRICS_PORT ? integer(env, "METRICS_PORT", 0, 1) : undefined,

		// --- durable jobs and processing ---

		// --- classifier ---
		classifierModel: env.CLASSIFIER_MODEL ? resolve(env.CLASSIFIER_MODEL) : undefined,

		// --- imports ---
	};
}

/** The process-wide configuration, read on first use. */
let current: Config | undefined;
export function getConfig(): Config {
	current ??= loadConfig();
	return current;
}
