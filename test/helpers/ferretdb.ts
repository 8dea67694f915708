/**
 * A real MongoDB-compatible server for tests: FerretDB v1 (MongoDB wire protocol) on the SQLite
 * handler, in a temp dir, on a free loopback port. One per test file; each test takes a fresh
 * database from `databaseUrl()`.
 *
 * The binary comes from `$IMGMESH_TOOLS_DIR/bin/ferretdb` (default `~/.cache/imgmesh-tools`;
 * `.ci/run` builds it). Outside CI a missing binary skips the MongoDB suites with the reason;
 * with CI=true it fails them, as does any failed start anywhere.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe } from "node:test";
import { MongoClient } from "mongodb";
import { freePort } from "./server.ts";

const TOOLS_DIR = process.env.IMGMESH_TOOLS_DIR || join(homedir(), ".cache", "imgmesh-tools");
export const FERRETDB_BINARY = join(TOOLS_DIR, "bin", "ferretdb");
const START_TIMEOUT_MS = 20_000;

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

/**
 * `postgresqlUrl`: serve from that PostgreSQL database (FerretDB's PostgreSQL handler, far faster
 * on large collections; the benchmarks use it) instead of SQLite files in the temp dir.
 */
export async function startFerretDb(options: { postgresqlUrl?: string } = {}): Promise<FerretDb> {
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-ferretdb-"));
	const port = await freePort();
	const url = `mongodb://127.0.0.1:${port}`;
	let child: ChildProcess | null = null;

	const up = async () => {
		child ??= await launch(dir, port, options.postgresqlUrl);
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
		throw err;
	}
	return {
		url,
		databaseUrl: () => `${url}/t_${randomBytes(8).toString("hex")}`,
		up,
		down,
		pid: () => child?.pid,
		async stop() {
			await down();
			rmSync(dir, { recursive: true, force: true });
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
