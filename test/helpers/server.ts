/**
 * Starts a real imgmesh node (`node main.ts`) in a child process with its own DATA_DIR and port,
 * the way a user runs it, and talks to it over HTTP. Used by the integration tests and benches.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const SHARED_IMAGES = join(ROOT, "..", "shared", "images");
export const ADMIN_PASSWORD = "admin-password-for-tests";
/** Graceful shutdown waits up to 30 s for calls in flight (moleculer.config.ts), plus margin. */
const STOP_TIMEOUT_MS = 45_000;

export interface RunningServer {
	url: string;
	dataDir: string;
	process: ChildProcess;
	/** Everything the node printed, for diagnosing failures. */
	output(): string;
	/** Stops the node (SIGTERM) and deletes its DATA_DIR unless `keepData`. */
	stop(options?: { keepData?: boolean }): Promise<void>;
}

/**
 * How `npm start` runs a node (package.json's start script): its `VAR=value` prefixes and node
 * flags. Tests and benches start nodes exactly that way, so they measure what users run.
 */
export function startCommand(): { env: Record<string, string>; nodeArgs: string[] } {
	const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: { start: string } };
	const words = pkg.scripts.start.split(/\s+/);
	const node = words.indexOf("node");
	const env = Object.fromEntries(words.slice(0, node).map(word => word.split("=", 2) as [string, string]));
	return { env, nodeArgs: words.slice(node + 1) };
}

/**
 * What a bench's environment hands on to the nodes it starts: `npm run bench`'s event-loop lag
 * preload (bench/event-loop-lag.ts) through NODE_OPTIONS and BENCH_LAG_DIR. Empty otherwise.
 */
export function benchPassThrough(): Record<string, string> {
	const { BENCH_LAG_DIR, NODE_OPTIONS } = process.env;
	return BENCH_LAG_DIR && NODE_OPTIONS ? { BENCH_LAG_DIR, NODE_OPTIONS } : {};
}

export async function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = createServer();
		server.unref();
		server.on("error", reject);
		server.listen(0, "127.0.0.1", () => {
			const { port } = server.address() as { port: number };
			server.close(() => resolve(port));
		});
	});
}

async function waitFor(url: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (Date.now() < deadline) {
		if (child.exitCode !== null) throw new Error(`imgmesh exited with ${child.exitCode}:\n${output()}`);
		try {
			const res = await fetch(url);
			if (res.status === 200) return;
		} catch {
			// not listening yet
		}
		await new Promise(resolve => setTimeout(resolve, 100));
	}
	throw new Error(`imgmesh did not become ready within ${timeoutMs} ms:\n${output()}`);
}

export interface StartOptions {
	/** Start again on the data a previous node left. */
	dataDir?: string;
	/**
	 * Path that must answer 200 before the node counts as started; `null` for a node without the
	 * gateway (SERVICES without `api`): it counts as started once spawned, and the caller waits
	 * for it through the cluster (test/helpers/cluster.ts).
	 */
	readyPath?: string | null;
}

export async function startServer(env: Record<string, string> = {}, options: StartOptions = {}): Promise<RunningServer> {
	const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "imgmesh-test-"));
	const port = await freePort();
	let log = "";
	const command = startCommand();
	const child = spawn(process.execPath, command.nodeArgs, {
		cwd: ROOT,
		env: {
			...command.env,
			PATH: process.env.PATH,
			HOME: process.env.HOME,
			...benchPassThrough(),
			PORT: String(port),
			HOST: "127.0.0.1",
			DATA_DIR: dataDir,
			LOG_LEVEL: "warn",
			ADMIN_USERNAME: "admin",
			ADMIN_PASSWORD,
			RATE_LIMIT_PER_MINUTE: "0",
			...env
		},
		stdio: ["ignore", "pipe", "pipe"]
	});
	child.stdout!.on("data", chunk => (log += chunk));
	child.stderr!.on("data", chunk => (log += chunk));
	const url = `http://127.0.0.1:${port}`;
	const output = () => log;
	const stop = async ({ keepData = false } = {}) => {
		// A node killed by a signal has a null exitCode and has already emitted 'exit'.
		if (child.exitCode === null && child.signalCode === null) {
			const exited = new Promise(resolve => child.once("exit", resolve));
			child.kill("SIGTERM");
			// A node that ignores SIGTERM is a bug to report, not a reason to hang the test run.
			let timer: NodeJS.Timeout | undefined;
			const gaveUp = await Promise.race([exited.then(() => false), new Promise<boolean>(resolve => (timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS)))]);
			clearTimeout(timer);
			if (gaveUp) {
				child.kill("SIGKILL");
				await exited;
				throw new Error(`imgmesh did not stop within ${STOP_TIMEOUT_MS} ms of SIGTERM:\n${output().slice(-4000)}`);
			}
		}
		if (!keepData) rmSync(dataDir, { recursive: true, force: true });
	};
	if (options.readyPath === null) return { url, dataDir, process: child, output, stop };
	try {
		await waitFor(url + (options.readyPath ?? "/api/ready"), child, output, 30_000);
	} catch (err) {
		await stop();
		throw err;
	}
	return { url, dataDir, process: child, output, stop };
}
