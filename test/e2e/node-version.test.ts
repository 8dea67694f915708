/**
 * A Node.js too old for imgmesh (package.json engines: >=22.18) is told so at once: `npm start`,
 * `npm test` and `npm run repl` stop in their pre script with the one line of
 * scripts/check-node.cjs, and `npm install` stops before downloading anything (.npmrc
 * engine-strict). The npm commands run under an old Node found on the machine (OLD_NODE, default
 * /usr/bin/node); they are skipped, with the reason, when there is none.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHECK = join(ROOT, "scripts", "check-node.cjs");

interface Minimum {
	text: string;
	parts: number[];
}
const checkNode = createRequire(import.meta.url)(CHECK) as {
	minimum(): Minimum;
	problem(version: string, min: Minimum, execPath?: string): string | null;
	RECOMMENDED_MAJOR: number;
};
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { engines: { node: string }; scripts: Record<string, string> };

/** Runs a command to its end (or `timeoutMs`), with its stdout and stderr together. */
function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<{ code: number | null; output: string; ms: number }> {
	const started = Date.now();
	return new Promise((resolve, reject) => {
		const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"], timeout: options.timeoutMs ?? 120_000 });
		let output = "";
		child.stdout.on("data", chunk => (output += chunk));
		child.stderr.on("data", chunk => (output += chunk));
		child.on("error", reject);
		child.on("close", code => resolve({ code, output, ms: Date.now() - started }));
	});
}

/** The old Node to test with, or why there is none. */
function oldNode(): { path: string; version: string } | { skip: string } {
	const path = process.env.OLD_NODE || "/usr/bin/node";
	if (!existsSync(path)) return { skip: `no ${path} (set OLD_NODE to a Node older than ${pkg.engines.node})` };
	const version = spawnSync(path, ["-p", "process.version"], { encoding: "utf8" }).stdout.trim();
	if (!checkNode.problem(version, checkNode.minimum())) return { skip: `${path} is ${version}, not older than ${pkg.engines.node} (set OLD_NODE to one that is)` };
	return { path, version };
}

/**
 * The environment of a user whose PATH finds the old Node first (and so runs npm on it too), with
 * none of the npm_* variables of the `npm test` running this file.
 */
function oldNodeEnv(nodePath: string): NodeJS.ProcessEnv {
	const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
	return { ...env, PATH: dirname(nodePath) + delimiter + process.env.PATH };
}

describe("Node.js version check", () => {
	it("reads the minimum from package.json engines and tells any older version in one line", () => {
		const min = checkNode.minimum();
		assert.equal(pkg.engines.node, `>=${min.text}`);
		assert.deepEqual(min.parts, [22, 18, 0]);
		for (const version of ["v22.18.0", "v22.18.1", "v22.19.0", "v23.0.0", "v24.0.0", "v24.22.3", "v25.1.0-pre"]) {
			assert.equal(checkNode.problem(version, min), null, version);
		}
		for (const version of ["v22.17.9", "v22.0.0", "v20.20.2", "v18.20.8", "v8.17.0"]) {
			const message = checkNode.problem(version, min, "/usr/bin/node");
			assert.ok(message, version);
			assert.doesNotMatch(message, /\n/, "one line");
			assert.match(message, new RegExp(`needs Node\\.js >= 22\\.18 \\(Node ${checkNode.RECOMMENDED_MAJOR} LTS recommended\\), but this is Node ${version.replace(/\./g, "\\.")} \\(/usr/bin/node\\)`));
			assert.match(message, /https:\/\/nodejs\.org\/en\/download/, "says how to get it");
		}
	});

	it("runs first in the install, start, test and repl scripts", () => {
		for (const script of ["preinstall", "prestart", "pretest", "prerepl"]) {
			assert.match(pkg.scripts[script] ?? "", /^node scripts\/check-node\.cjs( &&|$)/, script);
		}
	});

	it("passes silently on this Node", async () => {
		const result = await run(process.execPath, [CHECK], { cwd: ROOT, env: process.env });
		assert.deepEqual({ code: result.code, output: result.output }, { code: 0, output: "" });
	});

	const old = oldNode();
	const skip = "skip" in old ? old.skip : false;

	it("stops npm start, npm test and npm run repl on an old Node with that one line", { skip }, async () => {
		const { path, version } = old as { path: string; version: string };
		const line = checkNode.problem(version, checkNode.minimum(), path)!;
		const direct = await run(path, [CHECK], { cwd: ROOT, env: process.env });
		assert.deepEqual({ code: direct.code, output: direct.output }, { code: 1, output: line + "\n" });
		// Safe to run in the checkout: each stops in its pre script before touching anything.
		for (const args of [["start"], ["test"], ["run", "repl"]]) {
			const result = await run("npm", args, { cwd: ROOT, env: oldNodeEnv(path), timeoutMs: 60_000 });
			const what = `npm ${args.join(" ")} (${result.ms} ms):\n${result.output}`;
			assert.notEqual(result.code, 0, what);
			assert.ok(result.output.split("\n").includes(line), what);
			assert.doesNotMatch(result.output, /ERR_UNKNOWN_FILE_EXTENSION|Could not find/, what);
			assert.ok(result.ms < 30_000, what);
		}
	});

	it("stops npm install on an old Node before installing anything", { skip }, async () => {
		const { path } = old as { path: string };
		// A copy of what a fresh clone's install reads, so nothing lands in this checkout's node_modules.
		const dir = mkdtempSync(join(tmpdir(), "imgmesh-old-node-"));
		try {
			for (const file of ["package.json", "package-lock.json", ".npmrc", "scripts"]) cpSync(join(ROOT, file), join(dir, file), { recursive: true });
			const result = await run("npm", ["install"], { cwd: dir, env: oldNodeEnv(path), timeoutMs: 120_000 });
			const what = `npm install (${result.ms} ms):\n${result.output}`;
			assert.notEqual(result.code, 0, what);
			assert.match(result.output, /EBADENGINE/, what);
			assert.ok(result.output.includes(`Required: {"node":"${pkg.engines.node}"}`), what);
			assert.equal(existsSync(join(dir, "node_modules")), false, "nothing installed");
			assert.ok(result.ms < 30_000, what);
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}
	});
});
