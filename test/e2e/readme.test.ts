/**
 * The README runs as written. Its first shell block (install, start, test) is what CI runs
 * (.ci/run); its first session (the shell block under "A first session") runs, command by command
 * in one bash with errexit and pipefail, against a real node: the only change is the node's
 * address for `localhost:3000`. The photos it names come from ../shared/images, copied to where a
 * checkout finds them (`../shared/images` beside the working directory).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Client } from "../helpers/client.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The body of the first ```sh block after `heading` (or in the whole file without one). */
function shellBlock(heading?: string): string {
	let text = README;
	if (heading) {
		const at = text.indexOf(`\n${heading}\n`);
		assert.notEqual(at, -1, `README has no "${heading}"`);
		text = text.slice(at);
	}
	const block = /^```(?:sh|bash|shell)\n([\s\S]*?)^```$/m.exec(text);
	assert.ok(block, `README has no shell block${heading ? ` under "${heading}"` : ""}`);
	return block[1];
}

/** The block's commands: continuation lines joined, comment and blank lines dropped. */
function commands(block: string): string[] {
	const result: string[] = [];
	let current = "";
	for (const line of block.split("\n")) {
		if (!current && /^\s*(#.*)?$/.test(line)) continue;
		current += (current ? "\n" : "") + line;
		if (!line.endsWith("\\")) {
			result.push(current);
			current = "";
		}
	}
	if (current) result.push(current);
	return result;
}

const haveTools = ["bash", "curl"].filter(tool => spawnSync(tool, ["--version"]).status === 0).length === 2;
const missing = haveTools ? false : "bash or curl is missing";

describe("README", () => {
	let server: RunningServer | undefined;
	let work: string | undefined;
	/** One node for the whole file, started without ADMIN_PASSWORD, as on a user's first start. */
	const node = async () => (server ??= await startServer({ ADMIN_PASSWORD: "" }));
	after(async () => {
		await server?.stop();
		if (work) rmSync(work, { recursive: true, force: true });
	});

	it("puts the install, start and test commands first, and CI runs them as written", () => {
		const first = commands(shellBlock()).map(command => command.replace(/\s+#.*$/, "").trim());
		assert.deepEqual(first, ["npm install && npm start", "npm test"]);
		const ci = readFileSync(join(ROOT, ".ci", "run"), "utf8").split("\n");
		for (const command of ["npm install", "npm test"]) assert.ok(ci.includes(command), `.ci/run runs \`${command}\` on a line of its own`);
	});

	it("has a first session that runs as written against a fresh node", { skip: missing && !process.env.CI ? missing : false }, async () => {
		assert.equal(missing, false, "CI=true: the README session needs bash and curl");
		const block = shellBlock("## A first session");
		assert.match(block, /localhost:3000/, "the session talks to the node npm start runs");
		const photos = [...new Set([...block.matchAll(/@(?:\S*\/)?([\w.-]+\.(?:jpe?g|png|webp|gif))\b/gi)].map(match => match[1]))];
		assert.ok(photos.length >= 2, "the session uploads photos");
		for (const name of photos) assert.ok(existsSync(join(SHARED_IMAGES, name)), `the session uploads ${name}, which is not in the shared set (${SHARED_IMAGES})`);

		// A checkout (the working directory) with the shared photos beside it, as a newcomer has them.
		work = mkdtempSync(join(tmpdir(), "imgmesh-readme-"));
		const checkout = join(work, "imgmesh");
		mkdirSync(join(work, "shared", "images"), { recursive: true });
		mkdirSync(checkout);
		for (const name of photos) copyFileSync(join(SHARED_IMAGES, name), join(work, "shared", "images", name));

		const { url, output } = await node();
		const host = new URL(url).host;
		const steps = commands(block);
		const script = [
			"set -euo pipefail",
			"step() { printf '\\n@@readme-step %s\\n' \"$1\"; }",
			...steps.flatMap((command, i) => [`step ${i}`, command.replaceAll("localhost:3000", host)]),
			"step end"
		].join("\n");
		writeFileSync(join(work, "session.sh"), script + "\n");
		const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
		const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
			// `node` in the session is this Node.
			const child = spawn("bash", [join(work!, "session.sh")], { cwd: checkout, env: { ...env, PATH: dirname(process.execPath) + delimiter + process.env.PATH }, stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
			let stdout = "";
			let stderr = "";
			child.stdout.on("data", chunk => (stdout += chunk));
			child.stderr.on("data", chunk => (stderr += chunk));
			child.on("error", reject);
			child.on("close", code => resolve({ code, stdout, stderr }));
		});
		const outputs = new Map<string, string>();
		const parts = result.stdout.split(/\n@@readme-step (\S+)\n/);
		for (let i = 1; i < parts.length; i += 2) outputs.set(parts[i], parts[i + 1] ?? "");
		if (result.code !== 0 || !outputs.has("end")) {
			const failed = [...outputs.keys()].filter(key => key !== "end").pop();
			assert.fail(
				`README session stopped (exit ${result.code}) at:\n${failed === undefined ? "(before the first command)" : steps[Number(failed)]}\n` +
					`its output:\n${failed === undefined ? "" : outputs.get(failed)}\nstderr:\n${result.stderr}\nnode output:\n${output().slice(-2000)}`
			);
		}

		// The search finds every uploaded photo, public.
		const search = steps.findIndex(command => /\/api\/images\?q=/.test(command));
		assert.notEqual(search, -1, "the session searches");
		const found = JSON.parse(outputs.get(String(search))!) as { items: { filename: string; visibility: string }[] };
		assert.deepEqual(found.items.map(image => image.filename).sort(), [...photos].sort(), "the search finds the uploaded photos");
		for (const image of found.items) assert.equal(image.visibility, "public");

		// The public link returns the bytes of an uploaded photo.
		const link = steps.find(command => /\/p\//.test(command));
		assert.ok(link, "the session fetches a public link");
		const saved = /-o\s+(\S+)/.exec(link)?.[1];
		assert.ok(saved, "the public link is saved to a file");
		const bytes = readFileSync(join(checkout, saved));
		assert.ok(bytes.length > 0);
		assert.ok(photos.some(name => bytes.equals(readFileSync(join(SHARED_IMAGES, name)))), `${saved} holds the bytes of an uploaded photo`);
	});

	it("tells where the admin password is: adminPassword in DATA_DIR/secrets.json, mode 0600", async () => {
		assert.match(README, /`adminPassword` in that file/);
		const { url, dataDir } = await node();
		const secrets = join(dataDir, "secrets.json");
		assert.equal(statSync(secrets).mode & 0o777, 0o600);
		const { adminPassword } = JSON.parse(readFileSync(secrets, "utf8")) as { adminPassword: string };
		await new Client(url).login("admin", adminPassword);
	});
});
