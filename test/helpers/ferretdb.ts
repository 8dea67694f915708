/**
 * A real MongoDB-compatible server for tests: FerretDB v1 (MongoDB wire protocol) on a free
 * loopback port. One per test file; each test takes a fresh database from `databaseUrl()`.
 *
 * Handler: PostgreSQL when it answers at 127.0.0.1:5432 (user postgres, trust auth; a fresh
 * PostgreSQL database per FerretDB server, dropped at stop), since its SQLite handler decodes the
 * whole collection for any query but `_id` equality (4-50x slower on 5,000 documents).
 * SQLite files in a temp dir otherwise, or always with `FERRETDB_HANDLER=sqlite`;
 * `FERRETDB_HANDLER=postgresql` fails instead of falling back.
 *
 * The binary comes from `$IMGMESH_TOOLS_DIR/bin/ferretdb` (default `~/.cache/imgmesh-tools`;
 * `.ci/run` builds it). Outside CI a missing binary skips the MongoDB suites with the reason;
 * with CI=true it fails them, as does any failed start anywhere.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe } from "node:test";
import { promisify } from "node:util";
import { MongoClient } from "mongodb";
import { freePort } from "./server.ts";

const TOOLS_DIR = process.env.IMGMESH_TOOLS_DIR || join(homedir(), ".cache", "imgmesh-tools");
export const FERRETDB_BINARY = join(TOOLS_DIR, "bin", "ferretdb");
const START_TIMEOUT_MS = 20_000;
const POSTGRESQL_SERVER = "postgres://postgres@127.0.0.1:5432";
/**
 * FerretDB v1's PostgreSQL handler deadlocks when every connection of its pool is held by an
 * operation waiting for another one (seen: the import contract's 400 concurrent finishes hung
 * with the 50 connections of pgx's default pool idle, the driver sending up to its 100). So its
 * clients get fewer connections than its pool (a cluster test's few nodes included), and its pool
 * stays well under PostgreSQL's 100 connections, leaving room for a second server at once.
 */
const POSTGRESQL_POOL = 40;
const CLIENT_POOL = 10;
const HANDLER = process.env.FERRETDB_HANDLER || "auto";

export interface FerretDb {
	/** `mongodb://127.0.0.1:<port>` without a database. */
	url: string;
	/** A URL naming a database no test used before. */
	databaseUrl(): string;
	/** Kills the server, keeping its data and port (for "MongoDB down" tests). */
	down(): Promise<void>;
	/** Starts it again on the same data and port; nothing to do when it runs. */
	up(): Promise<void>;
	/** Kills the server and deletes its data. */
	stop(): Promise<void>;
	/** The server's process id while it runs (benchmarks count its CPU). */
	pid(): number | undefined;
	/** FerretDB's handler: where the data lives (benchmarks say which they measured). */
	handler: "postgresql" | "sqlite";
}

/**
 * Why the MongoDB suites cannot run here, or false when they can. Pass it as `skip` to describe.
 * Throws under CI=true, where skipping would hide a broken setup.
 */
export function ferretDbSkipReason(): string | false {
	if (existsSync(FERRETDB_BINARY)) return false;
	const reason = `FerretDB not found at ${FERRETDB_BINARY} (.ci/run builds it)`;
	if (process.env.CI === "true") throw new Error(`${reason}; CI=true requires the MongoDB suites to run`);
	return reason;
}

/**
 * A describe block with one FerretDB server for all of its tests (skipped, with the reason, where
 * FerretDB is missing). `server()` is that server once the block's tests run.
 */
export function describeOnFerretDb(name: string, body: (server: () => FerretDb) => void): void {
	describe(name, { skip: ferretDbSkipReason() }, () => {
		let server: FerretDb;
		before(async () => {
			server = await startFerretDb();
		});
		after(() => server.stop());
		body(() => server);
	});
}

/** Runs one SQL statement on the local PostgreSQL server with psql; rejects when it does not answer. */
async function psql(sql: string): Promise<void> {
	await promisify(execFile)("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", `${POSTGRESQL_SERVER}/postgres`, "-c", sql], { timeout: 10_000 });
}

/**
 * The name of a fresh PostgreSQL database for one FerretDB server, or null to use SQLite: forced
 * by FERRETDB_HANDLER=sqlite, or PostgreSQL (or psql) absent.
 */
async function freshPostgresqlDatabase(): Promise<string | null> {
	if (HANDLER === "sqlite") return null;
	const name = `ferretdb_${randomBytes(6).toString("hex")}`;
	try {
		await psql(`CREATE DATABASE ${name}`);
		return name;
	} catch (err) {
		if (HANDLER === "postgresql") throw new Error(`FERRETDB_HANDLER=postgresql but PostgreSQL did not answer: ${(err as Error).message}`);
		return null;
	}
}

/**
 * `postgresqlUrl`: serve from that existing PostgreSQL database (kept at stop; the search bench
 * keeps its libraries there) instead of a fresh one or SQLite files (see the file's comment).
 */
export async function startFerretDb(options: { postgresqlUrl?: string } = {}): Promise<FerretDb> {
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-ferretdb-"));
	const port = await freePort();
	const url = `mongodb://127.0.0.1:${port}`;
	const ownDatabase = options.postgresqlUrl ? null : await freshPostgresqlDatabase();
	const postgresqlUrl = options.postgresqlUrl ?? (ownDatabase ? `${POSTGRESQL_SERVER}/${ownDatabase}?pool_max_conns=${POSTGRESQL_POOL}` : undefined);
	let child: ChildProcess | null = null;

	const up = async () => {
		child ??= await launch(dir, port, postgresqlUrl);
	};
	const dropOwnDatabase = async () => {
		if (ownDatabase) await psql(`DROP DATABASE IF EXISTS ${ownDatabase} WITH (FORCE)`);
	};
	// SIGKILL: MongoDB dying, not shutting down (which also waits for every client to leave).
	const down = async () => {
		if (child) await terminate(child, "SIGKILL");
		child = null;
	};
	try {
		await up();
	} catch (err) {
		rmSync(dir, { recursive: true, force: true });
		await dropOwnDatabase();
		throw err;
	}
	return {
		url,
		databaseUrl: () => `${url}/t_${randomBytes(8).toString("hex")}?maxPoolSize=${CLIENT_POOL}`,
		up,
		down,
		pid: () => child?.pid,
		handler: postgresqlUrl ? "postgresql" : "sqlite",
		async stop() {
			await down();
			rmSync(dir, { recursive: true, force: true });
			await dropOwnDatabase();
		}
	};
}

/** Drops a test's database once its repositories are closed. */
export async function dropDatabase(url: string): Promise<void> {
	const client = new MongoClient(url);
	try {
		await client.db().dropDatabase();
	} finally {
		await client.close();
	}
}

async function launch(dir: string, port: number, postgresqlUrl?: string): Promise<ChildProcess> {
	const handler = postgresqlUrl ? ["--handler=postgresql", `--postgresql-url=${postgresqlUrl}`] : ["--handler=sqlite", `--sqlite-url=file:${dir}/`];
	const child = spawn(
		FERRETDB_BINARY,
		[
			...handler,
			`--listen-addr=127.0.0.1:${port}`,
			`--state-dir=${dir}`,
			// The debug HTTP listener has a fixed default port: several servers at once would clash.
			"--debug-addr=-",
			"--telemetry=disable",
			"--log-level=warn"
		],
		{ stdio: ["ignore", "pipe", "pipe"] }
	);
	let log = "";
	child.stdout!.on("data", chunk => (log += chunk));
	child.stderr!.on("data", chunk => (log += chunk));
	const spawned = new Promise<void>((resolve, reject) => {
		child.once("spawn", resolve);
		child.once("error", reject);
	});
	try {
		await spawned;
		await waitUntilAnswering(`mongodb://127.0.0.1:${port}`, child, () => log);
	} catch (err) {
		await terminate(child);
		throw err;
	}
	return child;
}

async function waitUntilAnswering(url: string, child: ChildProcess, log: () => string): Promise<void> {
	const deadline = Date.now() + START_TIMEOUT_MS;
	while (Date.now() < deadline) {
		if (child.exitCode !== null) throw new Error(`FerretDB exited with ${child.exitCode}:\n${log()}`);
		const client = new MongoClient(url, { serverSelectionTimeoutMS: 250, connectTimeoutMS: 250 });
		try {
			await client.db("admin").command({ ping: 1 });
			return;
		} catch {
			// not listening yet
		} finally {
			await client.close();
		}
	}
	throw new Error(`FerretDB did not answer within ${START_TIMEOUT_MS} ms:\n${log()}`);
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
	if (child.exitCode !== null || child.signalCode !== null) return;
	const exited = new Promise(resolve => child.once("exit", resolve));
	child.kill(signal);
	await exited;
}
