/**
 * The operator REPL against a real cluster over Redis: its commands typed at moleculer-repl's real
 * command parser (test/helpers/repl.ts) on an observer node, as `npm run repl` loads them, and one
 * real `npm run repl` process driven through stdin, whose exit leaves the cluster running.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import type { ServiceBroker } from "moleculer";
import { loadReplCommands } from "../../cluster/repl-commands.ts";
import { Client, fileFrom } from "../helpers/client.ts";
import { clusterEnv, nodesWith, redisSkipReason, startNode, startObserver, startRedis, waitForCluster, waitForRoutes, type RedisServer } from "../helpers/cluster.ts";
import { hasStackTrace, openRepl, type ReplOutput, type ReplSession } from "../helpers/repl.ts";
import { SHARED_IMAGES, type RunningServer } from "../helpers/server.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

describe("operator REPL", { skip: redisSkipReason() }, () => {
	let redis: RedisServer;
	let env: Record<string, string>;
	let node: RunningServer;
	let observer: ServiceBroker;
	let repl: ReplSession;

	/** Types a command line at the REPL's prompt; whatever it is, it prints no stack trace. */
	async function run(line: string): Promise<ReplOutput> {
		const out = await repl.exec(line);
		assert.equal(hasStackTrace(out.text), false, `${line}:\n${out.text}`);
		return out;
	}

	before(async () => {
		redis = await startRedis();
		env = clusterEnv(redis);
		// With a worker: the ingest pipeline's channel has a consumer group and a worker waiting.
		node = await startNode(env, ["api", "health", "users", "images", "categories", "storage", "worker"], { nodeId: "all-1" });
		await waitForRoutes(node.url);
		observer = await startObserver(env);
		repl = await openRepl(observer);
	});

	after(async () => {
		repl?.close();
		await observer?.stop();
		await node?.stop();
		await redis?.stop();
	});

	it("loads every repl/*.ts module's commands, one command per name", async () => {
		const names = (await loadReplCommands()).map(command => command.command.split(" ")[0]);
		for (const name of ["cluster", "images", "user", "storage", "queue", "jobs"]) assert.ok(names.includes(name), name);
		// moleculer-repl skips a second command of the same name: every name must be unique.
		assert.deepEqual(names.filter((name, i) => names.indexOf(name) !== i), []);
	});

	it("cluster: lists the nodes with their services and versions, and where each service runs", async () => {
		const printed = await run("cluster");
		const [nodes, services] = printed.tables;
		const all = nodes.find(row => row.node === "all-1");
		assert.ok(all, JSON.stringify(nodes));
		assert.equal(all.status, "up");
		assert.equal(all.services, "api,categories,health,images,storage,users,worker");
		assert.match(String(all.imgmesh), /^\d+\.\d+\.\d+$/);
		assert.match(String(all.moleculer), /^0\.15\./);
		assert.ok(nodes.some(row => String(row.node).endsWith("(this REPL)") && row.services === "-"), "the REPL node hosts nothing");
		assert.deepEqual(services.find(row => row.service === "images"), { service: "images", nodes: 1, on: "all-1" });
	});

	it("queue: before any job, shows the workers subscribed and waiting on each channel", async () => {
		const printed = await run("queue");
		const rows = printed.tables[0];
		const process = rows.find(row => row.channel === "imgmesh.process");
		assert.deepEqual(process, { channel: "imgmesh.process", group: "worker", workers: 1, on: "all-1", length: 0, pending: 0, lag: 0, dead: 0 }, printed.text);
		// Nothing consumes classify here (no classifier node has ever started): no group, nobody waiting.
		const classify = rows.find(row => row.channel === "imgmesh.classify");
		assert.deepEqual({ group: classify?.group, workers: classify?.workers }, { group: "(none yet)", workers: 0 }, printed.text);
		assert.match(printed.text, /no worker for it has started/);
	});

	it("user add|role|disable|enable manage accounts through the users service", async () => {
		const added = await run("user add carol");
		const password = /shown once: (\S+)/.exec(added.text)?.[1];
		assert.ok(password, added.text);
		const carol = await new Client(node.url).login("carol", password);
		assert.equal((await carol.get("/api/users")).status, 403, "a new account is a plain user");

		await run("user role carol admin");
		assert.equal((await carol.get("/api/users")).status, 200, "the role applies to the token at once");

		const disabled = await run("user disable carol");
		assert.match(disabled.text, /disabled/);
		assert.equal((await carol.get("/api/auth/me")).status, 401, "a disabled user's token stops working");
		await run("user enable carol");
		assert.equal((await carol.get("/api/auth/me")).status, 401, "re-enabling does not revive tokens issued before the disabling");
		const again = await new Client(node.url).login("carol", password);
		assert.equal((await again.get("/api/auth/me")).status, 200, "a re-enabled account signs in again");

		const listed = await run("user list");
		const row = listed.tables[0].find(user => user.username === "carol");
		assert.equal(row?.role, "admin");
		assert.equal(listed.text.includes("passwordHash"), false, "no secret is printed");

		const usage = await run("user role carol root");
		assert.match(usage.text, /^usage: /m);
		const taken = await run("user add carol");
		assert.match(taken.text, /^error: /m, "a failing action prints its error");
		assert.equal(observer.registry.getActionList({}).some(action => action.name === "users.create" && (action as { action?: { rest?: unknown } }).action?.rest), false);
		assert.equal((await new Client(node.url).post("/api/users/create", { username: "eve", password: "12345678", role: "admin" })).status, 404, "not on REST");
	});

	it("images stats, images find <query> and images reprocess show and act on the whole catalogue", async () => {
		const dave = await new Client(node.url).register("dave");
		const upload = await dave.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg")), fileFrom(join(SHARED_IMAGES, "mug-cc0.jpeg"))], { tags: "repl" });
		assert.equal(upload.status, 201);

		const found = await run("images find tag:repl dog");
		assert.deepEqual(found.tables[0].map(row => row.name), ["dog"], "private images are found too");
		assert.equal(found.tables[0][0].owner, "dave");
		assert.match(found.text, /^1 image\(s\) match/m);
		const usage = (await run("images find")).text;
		assert.match(usage, /^usage: /m);
		assert.match(usage, /images find <query>/);

		const stats = await run("images stats");
		const value = (key: string) => stats.tables[0].find(row => row.key === key)?.value;
		assert.equal(value("users"), 3, "admin, carol and dave");
		assert.deepEqual(JSON.parse(String(value("images"))), { count: 2, bytes: upload.body.images.reduce((sum: number, image: { size: number }) => sum + image.size, 0) });

		assert.match((await run("images reprocess tag:repl --status failed")).text, /^Reprocessing 0 image\(s\)\.$/m, "none failed");
		assert.match((await run("images reprocess tag:repl owner:dave")).text, /^Reprocessing 2 image\(s\)\.$/m);
	});

	it("jobs dead: says when there are none, lists them readably, and jobs retry <id> sends one back", async () => {
		assert.match((await run("jobs dead")).text, /^No dead letters\.$/m);
		assert.deepEqual((await run("jobs dead")).tables, [], "no empty table");

		// A dead letter as the channels adapter writes it (cluster/durable-redis-adapter.ts).
		const ns = env.NAMESPACE;
		const client = new Redis(redis.url);
		let id: string;
		try {
			id = (await client.xadd(
				`${ns}.imgmesh.dead`,
				"*",
				"payload",
				JSON.stringify({ id: "img-gone", spec: { width: 100 } }),
				"headers",
				JSON.stringify({ "x-original-channel": `${ns}.imgmesh.compress`, "x-original-group": "transform", "x-error": "image not found", "x-attempts": 3 })
			))!;
		} finally {
			client.disconnect();
		}
		const dead = await run("jobs dead");
		assert.match(dead.text, /^1 dead letter\(s\)/m);
		assert.deepEqual(dead.tables[0], [{ id, channel: "imgmesh.compress", attempts: 3, error: "image not found", payload: JSON.stringify({ id: "img-gone", spec: { width: 100 } }) }]);
		assert.equal((await run("queue")).tables[0].find(row => row.channel === "imgmesh.compress")?.dead, 1);

		assert.match((await run(`jobs retry ${id}`)).text, /back to imgmesh\.compress/);
		assert.match((await run("jobs dead")).text, /^No dead letters\.$/m);
		assert.match((await run(`jobs retry ${id}`)).text, new RegExp(`^No dead letter ${id}\\.$`, "m"));
		assert.match((await run("jobs retry")).text, /^usage: /m);
	});

	it("cluster: a node killed with kill -9 is down once its heartbeat is overdue, as the broker routes", async () => {
		const doomed = await startNode(env, ["categories"], { nodeId: "doomed-1" });
		const discoverer = observer.registry.discoverer as unknown as { checkNodesTimer: NodeJS.Timeout | null; startHeartbeatTimers(): void };
		try {
			await waitForCluster("doomed-1 up", () => nodesWith(observer, "categories").includes("doomed-1"));
			assert.equal((await run("cluster")).tables[0].find(row => row.node === "doomed-1")?.status, "up");
			// The REPL node checks heartbeats every HEARTBEAT_TIMEOUT, so in the worst case its check
			// comes a whole timeout after the node is overdue: hold it back for this test.
			clearInterval(discoverer.checkNodesTimer!);
			doomed.process.kill("SIGKILL");
			const timeout = Number(env.HEARTBEAT_TIMEOUT);
			const lastBeat = () => observer.registry.nodes.get("doomed-1")!.lastHeartbeatTime;
			await waitForCluster("doomed-1 overdue", () => Math.round(process.uptime()) - lastBeat() > timeout, 10_000);

			const printed = await run("cluster");
			assert.equal(printed.tables[0].find(row => row.node === "doomed-1"), undefined, `a node without heartbeat for over ${timeout} s is not listed as up:\n${printed.text}`);
			assert.deepEqual(nodesWith(observer, "categories"), ["all-1"], "calls no longer go to it");
			const all = await run("cluster --all");
			assert.equal(all.tables[0].find(row => row.node === "doomed-1")?.status, "DOWN");
			assert.deepEqual(all.tables[1].find(row => row.service === "categories"), { service: "categories", nodes: 1, on: "all-1" });
		} finally {
			discoverer.startHeartbeatTimers();
			await doomed.stop();
		}
	});

	it("npm run repl joins as a node without services; leaving it does not stop the cluster", async () => {
		// A HOME of its own: moleculer-repl keeps its history file there.
		const home = mkdtempSync(join(tmpdir(), "imgmesh-repl-home-"));
		const child = spawn(process.execPath, [join(ROOT, "repl.ts")], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: home, DATA_DIR: node.dataDir, ...env, NODE_ID: "repl-test" } });
		let output = "";
		child.stdout.on("data", chunk => (output += chunk));
		child.stderr.on("data", chunk => (output += chunk));
		const exited = new Promise<number | null>(resolve => child.once("exit", resolve));
		const prompts = () => output.split(`imgmesh ${env.NAMESPACE} $ `).length - 1;
		/** Types a line and waits for the prompt to come back. */
		const type = async (line: string) => {
			const before = prompts();
			child.stdin.write(`${line}\n`);
			while (prompts() === before) {
				if (child.exitCode !== null) assert.fail(output);
				await new Promise(resolve => setTimeout(resolve, 50));
			}
		};
		// The prompt appears once the node has joined.
		while (prompts() === 0) {
			if (child.exitCode !== null) assert.fail(output);
			await new Promise(resolve => setTimeout(resolve, 100));
		}
		await type("cluster");
		await type("images find tag:repl dog");
		await type("images");
		child.stdin.write("exit\n");
		assert.equal(await exited, 0, output);
		assert.match(output, /repl-test \(this REPL\)/);
		assert.match(output, /1 image\(s\) match/, "a query of several words");
		assert.match(output, /\$ usage: images stats\n/, "a missing argument prints the usage");
		assert.equal(hasStackTrace(output), false, output);
		assert.doesNotMatch(output, / INFO /, "no broker chatter around the prompt");
		assert.doesNotMatch(output, new RegExp(`${env.JWT_SECRET}|${env.STORAGE_MASTER_KEY}|${env.ADMIN_PASSWORD}`), "no secret printed");
		assert.equal((await fetch(`${node.url}/api/ready`)).status, 200, "the cluster carries on");
	});

	it("storage scrub verifies every blob on the storage node, reports one changed on disk, and continues after a key", async () => {
		const erin = await new Client(node.url).register("erin");
		const bytes = readFileSync(join(SHARED_IMAGES, "hummingbird.jpg"));
		assert.equal((await erin.upload([fileFrom(join(SHARED_IMAGES, "hummingbird.jpg"))])).status, 201);
		const sha = createHash("sha256").update(bytes).digest("hex");
		const key = `sha256-${sha}`;
		const path = join(node.dataDir, "blobs", sha.slice(0, 2), key);
		const stored = readFileSync(path);
		stored[500]! ^= 0x01;
		writeFileSync(path, stored);

		const out = await run("storage scrub --rate 64");
		assert.match(out.text, /^Scrubbed \d+ blob\(s\), [\d.]+ MiB: 1 corrupt$/m);
		assert.deepEqual(
			out.tables.at(-1)?.map(row => row.key),
			[key]
		);
		assert.match((await run(`storage scrub --after ${key}`)).text, /^Scrubbed \d+ blob\(s\), [\d.]+ MiB: none corrupt$/m, "the blobs after it only");
	});

	it("storage migrate asks for --to fs|gridfs|s3, and says so when the storage node has no S3_* bucket to copy into", async () => {
		assert.match((await run("storage migrate")).text, /--to fs\|gridfs\|s3/);
		assert.match((await run("storage migrate --to fs")).text, /on fs already/);
		assert.match((await run("storage migrate --to s3 --dry-run")).text, /Set S3_BUCKET/);
		assert.match((await run("storage gc --to s3")).text, /--to is for storage migrate/);
	});
});
