/**
 * The operator REPL against a real cluster over Redis: its commands (every repl/*.ts module, as
 * `npm run repl` loads them) called on an observer node, and one real `npm run repl` process
 * driven through stdin, whose exit leaves the cluster running.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it, mock } from "node:test";
import { fileURLToPath } from "node:url";
import type { ServiceBroker } from "moleculer";
import { loadReplCommands, type ReplArgs, type ReplCommand } from "../../cluster/repl-commands.ts";
import { Client, fileFrom } from "../helpers/client.ts";
import { clusterEnv, redisSkipReason, startNode, startObserver, startRedis, waitForRoutes, type RedisServer } from "../helpers/cluster.ts";
import { SHARED_IMAGES, type RunningServer } from "../helpers/server.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** What a command printed: console.log lines and console.table rows. */
interface Printed {
	lines: string[];
	tables: Record<string, unknown>[][];
}

describe("operator REPL", { skip: redisSkipReason() }, () => {
	let redis: RedisServer;
	let env: Record<string, string>;
	let node: RunningServer;
	let observer: ServiceBroker;
	let commands: ReplCommand[];

	/** Runs a command line the way moleculer-repl parses it: positionals by name, flags in options. */
	async function run(line: string, positionals: Record<string, string> = {}, options: Record<string, unknown> = {}): Promise<Printed> {
		const name = line.split(" ")[0];
		const command = commands.find(c => c.command.split(" ")[0] === name);
		assert.ok(command, `command ${name} is loaded`);
		const printed: Printed = { lines: [], tables: [] };
		const log = mock.method(console, "log", (...args: unknown[]) => printed.lines.push(args.join(" ")));
		const table = mock.method(console, "table", (rows: Record<string, unknown>[]) => printed.tables.push(rows));
		try {
			await command.action(observer, { options, rawCommand: line, ...positionals } as ReplArgs);
		} finally {
			log.mock.restore();
			table.mock.restore();
		}
		return printed;
	}

	before(async () => {
		redis = await startRedis();
		env = clusterEnv(redis);
		node = await startNode(env, ["api", "health", "users", "images", "categories", "storage"], { nodeId: "all-1" });
		await waitForRoutes(node.url);
		observer = await startObserver(env);
		commands = await loadReplCommands();
	});

	after(async () => {
		await observer?.stop();
		await node?.stop();
		await redis?.stop();
	});

	it("loads every repl/*.ts module's commands, one command per name", () => {
		const names = commands.map(command => command.command.split(" ")[0]);
		for (const name of ["cluster", "images", "user", "storage"]) assert.ok(names.includes(name), name);
		// moleculer-repl skips a second command of the same name: every name must be unique.
		assert.deepEqual(names.filter((name, i) => names.indexOf(name) !== i), []);
	});

	it("cluster: lists the nodes with their services and versions, and where each service runs", async () => {
		const printed = await run("cluster");
		const [nodes, services] = printed.tables;
		const all = nodes.find(row => row.node === "all-1");
		assert.ok(all, JSON.stringify(nodes));
		assert.equal(all.status, "up");
		assert.equal(all.services, "api,categories,health,images,storage,users");
		assert.match(String(all.imgmesh), /^\d+\.\d+\.\d+$/);
		assert.match(String(all.moleculer), /^0\.15\./);
		assert.ok(nodes.some(row => String(row.node).endsWith("(this REPL)") && row.services === "-"), "the REPL node hosts nothing");
		assert.deepEqual(services.find(row => row.service === "images"), { service: "images", nodes: 1, on: "all-1" });
	});

	it("user add|role|disable|enable manage accounts through the users service", async () => {
		const added = await run("user add carol", { op: "add", username: "carol" });
		const password = /shown once: (\S+)/.exec(added.lines.join("\n"))?.[1];
		assert.ok(password, added.lines.join("\n"));
		const carol = await new Client(node.url).login("carol", password);
		assert.equal((await carol.get("/api/users")).status, 403, "a new account is a plain user");

		await run("user role carol admin", { op: "role", username: "carol", value: "admin" });
		assert.equal((await carol.get("/api/users")).status, 200, "the role applies to the token at once");

		const disabled = await run("user disable carol", { op: "disable", username: "carol" });
		assert.match(disabled.lines.join("\n"), /disabled/);
		assert.equal((await carol.get("/api/auth/me")).status, 401, "a disabled user's token stops working");
		await run("user enable carol", { op: "enable", username: "carol" });
		assert.equal((await carol.get("/api/auth/me")).status, 200);

		const listed = await run("user list", { op: "list" });
		const row = listed.tables[0].find(user => user.username === "carol");
		assert.equal(row?.role, "admin");
		assert.equal(JSON.stringify(listed.tables).includes("passwordHash"), false, "no secret is printed");

		const usage = await run("user role carol root", { op: "role", username: "carol", value: "root" });
		assert.match(usage.lines.join("\n"), /^usage: /);
		assert.equal(observer.registry.getActionList({}).some(action => action.name === "users.create" && (action as { action?: { rest?: unknown } }).action?.rest), false);
		assert.equal((await new Client(node.url).post("/api/users/create", { username: "eve", password: "12345678", role: "admin" })).status, 404, "not on REST");
	});

	it("images stats and images find show the whole catalogue to the operator", async () => {
		const dave = await new Client(node.url).register("dave");
		const upload = await dave.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg")), fileFrom(join(SHARED_IMAGES, "mug-cc0.jpeg"))], { tags: "repl" });
		assert.equal(upload.status, 201);

		const found = await run("images find tag:repl dog", { op: "find" });
		assert.deepEqual(found.tables[0].map(row => row.name), ["dog"], "private images are found too");
		assert.equal(found.tables[0][0].owner, "dave");
		assert.match(found.lines[0], /^1 image\(s\) match/);

		const stats = await run("images stats", { op: "stats" });
		const value = (key: string) => stats.tables[0].find(row => row.key === key)?.value;
		assert.equal(value("users"), 3, "admin, carol and dave");
		assert.deepEqual(JSON.parse(String(value("images"))), { count: 2, bytes: upload.body.images.reduce((sum: number, image: { size: number }) => sum + image.size, 0) });
	});

	it("npm run repl joins as a node without services; leaving it does not stop the cluster", async () => {
		const child = spawn(process.execPath, [join(ROOT, "repl.ts")], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: node.dataDir, ...env, NODE_ID: "repl-test" } });
		let output = "";
		child.stdout.on("data", chunk => (output += chunk));
		child.stderr.on("data", chunk => (output += chunk));
		const exited = new Promise<number | null>(resolve => child.once("exit", resolve));
		// The prompt appears once the node has joined.
		while (!output.includes("$ ")) {
			if (child.exitCode !== null) assert.fail(output);
			await new Promise(resolve => setTimeout(resolve, 100));
		}
		child.stdin.write("cluster\n");
		while (!output.includes("all-1")) await new Promise(resolve => setTimeout(resolve, 100));
		child.stdin.write("exit\n");
		assert.equal(await exited, 0, output);
		assert.match(output, /repl-test \(this REPL\)/);
		assert.doesNotMatch(output, new RegExp(`${env.JWT_SECRET}|${env.STORAGE_MASTER_KEY}|${env.ADMIN_PASSWORD}`), "no secret printed");
		assert.equal((await fetch(`${node.url}/api/ready`)).status, 200, "the cluster carries on");
	});
});
