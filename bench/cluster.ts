/**
 * Cluster benchmark (`npm run bench:cluster`): bench/api.ts's workload against one embedded node
 * and against three nodes over Redis (gateway; storage+images+categories; users), in one run,
 * on a redis-server of its own:
 *
 *  a. uploads: N distinct real JPEGs, C concurrent uploaders, one file per request;
 *  b. GET /api/images/:id/content at K keep-alive connections for S seconds over them;
 *  c. large uploads, one at a time: noise PNGs of about 1, 20 and 50 MB. In the cluster the body
 *     crosses Redis as a Moleculer stream (`ctx.stream`, 256 KiB chunks) from the gateway to the
 *     images node; MB/s and the peak RSS of the nodes it crosses are reported;
 *  d. the cost of one hop: sequential calls from a service-less node in this process, a
 *     transporter PING round trip and a `users.count` call on the users node;
 *  e. part c's uploads on MongoDB + GridFS (FerretDB) two ways: streamed through Redis to a data
 *     node as in c, and with `images` and `storage` on the gateway node itself, which then writes
 *     the bytes straight into GridFS (they keep no local state on GridFS) and only metadata calls
 *     cross Redis. Skipped, with a note, when FerretDB is not built.
 *
 * Prints tables with cluster / embedded ratios and writes bench/results/cluster-<timestamp>.json
 * and cluster-latest.json. A quick check: BENCH_UPLOADS=40 BENCH_SECONDS=3 BENCH_LARGE_MB=1,5
 *   BENCH_UPLOADS [300]              distinct JPEGs uploaded in part a (served in part b)
 *   BENCH_UPLOAD_CONCURRENCY [8]     concurrent uploaders
 *   BENCH_SECONDS [10]               measured duration of each GET run (after a 1 s warm-up)
 *   BENCH_CONNECTIONS [64]           keep-alive connections of the GET load
 *   BENCH_LARGE_MB [1,20,50]         sizes of part c's PNGs (MB, 10^6 bytes)
 *   BENCH_HOP_CALLS [1000]           calls of each kind in part d
 *   BENCH_MAX_MINUTES [20]           hard limit on the whole run
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { ServiceBroker } from "moleculer";
import { Client } from "../test/helpers/client.ts";
import { clusterEnv, startNode, startObserver, startRedis, waitForRoutes, type RedisServer } from "../test/helpers/cluster.ts";
import { ferretDbSkipReason, startFerretDb } from "../test/helpers/ferretdb.ts";
import { startServer, type RunningServer } from "../test/helpers/server.ts";
import {
	MB,
	envInt,
	machineInfo,
	makeBigPng,
	makeJpegs,
	printTable,
	round,
	runGetLoad,
	runUploads,
	saveResults,
	startRssSampler,
	summarize,
	uploadMultipart,
	waitForIdle,
	type BenchImage
} from "./lib.ts";

const params = {
	uploads: envInt("BENCH_UPLOADS", 300, 1),
	uploadConcurrency: envInt("BENCH_UPLOAD_CONCURRENCY", 8, 1),
	getSeconds: envInt("BENCH_SECONDS", 10, 1),
	getConnections: envInt("BENCH_CONNECTIONS", 64, 1),
	largeMB: (process.env.BENCH_LARGE_MB || "1,20,50").split(",").map(Number),
	hopCalls: envInt("BENCH_HOP_CALLS", 1000, 1),
	maxMinutes: envInt("BENCH_MAX_MINUTES", 20, 1)
};

/** Large uploads need a higher limit than the 50 MiB default in both setups. */
const NODE_ENV = { MAX_UPLOAD_BYTES: String(128 * 1024 * 1024), LOG_LEVEL: "error" };
const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 3) : null);
const mib = (kb: number) => round(kb / 1024, 1);
const CLUSTER_LABEL = "3 nodes over Redis";

interface Setup {
	label: string;
	url: string;
	/** Processes a request crosses, by role, for CPU and memory figures. */
	pids: Record<string, number>;
}

interface Cluster {
	redis: RedisServer;
	nodes: RunningServer[];
	observer: ServiceBroker;
	setup: Setup;
}

/** Three nodes; `gatewayServices` beyond api+health are hosted on the gateway too. */
async function startCluster(backendEnv: Record<string, string> = {}, gatewayServices: string[] = []): Promise<Cluster> {
	const redis = await startRedis();
	const env = { ...clusterEnv(redis), ...NODE_ENV, ...backendEnv };
	// Users first: on MongoDB it creates the admin account the others would race to create.
	const users = await startNode(env, ["users"], { nodeId: "bench-users" });
	const data = await startNode(env, ["storage", "images", "categories"], { nodeId: "bench-data" });
	const gateway = await startNode(env, ["api", "health", ...gatewayServices], { nodeId: "bench-gateway" });
	await waitForRoutes(gateway.url);
	const observer = await startObserver(env);
	return {
		redis,
		nodes: [gateway, data, users],
		observer,
		setup: { label: CLUSTER_LABEL, url: gateway.url, pids: { gateway: gateway.process.pid!, images: data.process.pid!, users: users.process.pid! } }
	};
}

async function stopCluster(cluster: Cluster): Promise<void> {
	await cluster.observer.stop();
	await Promise.all(cluster.nodes.map(node => node.stop()));
	await cluster.redis.stop();
}

/** Part e: large uploads on GridFS, streamed through Redis vs written by the gateway itself. */
async function gridFsUploadPaths(files: { mb: number; path: string; size: number }[]) {
	const skipped = ferretDbSkipReason();
	if (skipped) return { skipped };
	const mongo = await startFerretDb();
	try {
		const run = async (gatewayServices: string[]) => {
			const cluster = await startCluster({ MONGO_URL: mongo.databaseUrl(), STORAGE: "gridfs" }, gatewayServices);
			try {
				return await largeUploads(cluster.setup, files);
			} finally {
				await stopCluster(cluster);
			}
		};
		return { throughRedis: await run([]), direct: await run(["images", "storage"]) };
	} finally {
		await mongo.stop();
	}
}

async function uploadsAndGets(setup: Setup, images: BenchImage[]) {
	const anon = new Client(setup.url);
	const uploader = await anon.register("bench-uploader");
	const viewer = await anon.register("bench-viewer");
	for (const pid of Object.values(setup.pids)) await waitForIdle(pid, 10_000);
	const upload = await runUploads({
		url: `${setup.url}/api/images`,
		token: uploader.token,
		fields: { visibility: "public" },
		files: images,
		concurrency: params.uploadConcurrency,
		maxMs: 10 * 60_000
	});
	const targets = images.flatMap((image, i) => {
		const doc = (upload.responses[i] as { images?: { id: string }[] } | undefined)?.images?.[0];
		return doc ? [{ path: `/api/images/${doc.id}/content`, bytes: image.bytes }] : [];
	});
	for (const pid of Object.values(setup.pids)) await waitForIdle(pid, 10_000);
	const get = await runGetLoad({
		base: setup.url,
		targets,
		headers: { authorization: `Bearer ${viewer.token}` },
		connections: params.getConnections,
		durationMs: params.getSeconds * 1000,
		warmupMs: 1000,
		maxRequests: 2_000_000
	});
	const { responses: _r, ...uploadOut } = upload;
	return { upload: uploadOut, get };
}

async function largeUploads(setup: Setup, files: { mb: number; path: string; size: number }[]) {
	const user = await new Client(setup.url).register("bench-large");
	const rows = [];
	for (const file of files) {
		for (const pid of Object.values(setup.pids)) await waitForIdle(pid, 10_000);
		const samplers = Object.entries(setup.pids).map(([role, pid]) => ({ role, sampler: startRssSampler(pid, 50) }));
		const started = performance.now();
		const res = await uploadMultipart(
			`${setup.url}/api/images`,
			{},
			{ filename: `noise-${file.mb}MB.png`, contentType: "image/png", source: { path: file.path, size: file.size } },
			{ token: user.token, timeoutMs: 300_000 }
		);
		const seconds = (performance.now() - started) / 1000;
		const peakRss = Object.fromEntries(samplers.map(({ role, sampler }) => [role, mib(sampler.stop().maxSampledRssKb)]));
		rows.push({ mb: file.mb, bytes: file.size, status: res.status, seconds: round(seconds, 2), mbPerS: round(file.size / MB / seconds), peakRssMiB: peakRss });
	}
	return rows;
}

/** Sequential calls from the observer: what one hop through Redis costs. */
async function hops(observer: ServiceBroker) {
	const timed = async (fn: () => Promise<unknown>) => {
		const ms: number[] = [];
		for (let i = 0; i < params.hopCalls; i++) {
			const t0 = performance.now();
			await fn();
			ms.push(performance.now() - t0);
		}
		return summarize(ms);
	};
	return {
		ping: await timed(() => observer.ping("bench-users", 5000)),
		usersCount: await timed(() => observer.call("users.count"))
	};
}

async function main(): Promise<number> {
	const watchdog = setTimeout(() => {
		console.error(`bench:cluster exceeded BENCH_MAX_MINUTES=${params.maxMinutes}`);
		process.exit(1);
	}, params.maxMinutes * 60_000);
	watchdog.unref();
	const startedAt = new Date();
	const results: Record<string, any> = { benchmark: "cluster", startedAt: startedAt.toISOString(), machine: machineInfo(), parameters: params };
	console.log(`imgmesh bench:cluster on ${results.machine.cpus} x ${results.machine.cpuModel}, node ${process.version}`);
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-bench-cluster-"));
	let embedded: RunningServer | undefined;
	let cluster: Cluster | undefined;
	try {
		console.log(`Making ${params.uploads} JPEGs and ${params.largeMB.join(", ")} MB PNGs ...`);
		const images = await makeJpegs(dir, params.uploads);
		const large = [];
		for (const mb of params.largeMB) {
			const path = join(dir, `noise-${mb}.png`);
			await makeBigPng(path, Math.round(Math.sqrt((mb * MB) / 3)));
			large.push({ mb, path, size: statSync(path).size });
		}

		embedded = await startServer(NODE_ENV);
		const single: Setup = { label: "embedded (1 process)", url: embedded.url, pids: { node: embedded.process.pid! } };
		console.log("a+b. embedded ...");
		const singleRun = await uploadsAndGets(single, images);
		console.log("c. embedded large uploads ...");
		const singleLarge = await largeUploads(single, large);
		await embedded.stop();
		embedded = undefined;

		cluster = await startCluster();
		console.log("a+b. cluster ...");
		const clusterRun = await uploadsAndGets(cluster.setup, images);
		console.log("c. cluster large uploads ...");
		const clusterLarge = await largeUploads(cluster.setup, large);
		console.log("d. hops ...");
		results.hops = await hops(cluster.observer);
		await stopCluster(cluster);
		cluster = undefined;
		console.log("e. large uploads on GridFS, through Redis and direct ...");
		results.gridfs = await gridFsUploadPaths(large);
		results.embedded = { ...singleRun, large: singleLarge };
		results.cluster = { ...clusterRun, large: clusterLarge };

		const row = (label: string, run: typeof singleRun) => [label, run.upload.imagesPerS, run.upload.mbPerS, run.upload.latencyMs.p99, run.upload.errors, run.get.reqPerS, run.get.latencyMs.p99, run.get.errors];
		printTable(
			`a+b. ${params.uploads} JPEG uploads (${params.uploadConcurrency} concurrent), then GET content (${params.getConnections} connections, ${params.getSeconds} s)`,
			["setup", "uploads/s", "upload MB/s", "upload p99 ms", "upload errors", "GET req/s", "GET p99 ms", "GET errors"],
			[
				row(single.label, singleRun),
				row(CLUSTER_LABEL, clusterRun),
				[
					"cluster / embedded",
					ratio(clusterRun.upload.imagesPerS, singleRun.upload.imagesPerS) ?? "n/a",
					ratio(clusterRun.upload.mbPerS, singleRun.upload.mbPerS) ?? "n/a",
					ratio(clusterRun.upload.latencyMs.p99, singleRun.upload.latencyMs.p99) ?? "n/a",
					"",
					ratio(clusterRun.get.reqPerS, singleRun.get.reqPerS) ?? "n/a",
					ratio(clusterRun.get.latencyMs.p99, singleRun.get.latencyMs.p99) ?? "n/a",
					""
				]
			]
		);
		printTable(
			"c. One large upload at a time (cluster: streamed gateway -> images node through Redis)",
			["MB", "embedded status", "embedded MB/s", "embedded peak RSS MiB", "cluster status", "cluster MB/s", "gateway peak RSS MiB", "images node peak RSS MiB", "MB/s ratio"],
			singleLarge.map((one, i) => {
				const many = clusterLarge[i];
				return [one.mb, one.status, one.mbPerS, one.peakRssMiB.node, many.status, many.mbPerS, many.peakRssMiB.gateway, many.peakRssMiB.images, ratio(many.mbPerS, one.mbPerS) ?? "n/a"];
			})
		);
		printTable(`d. One hop through Redis: ${params.hopCalls} sequential calls each (ms)`, ["call", "p50", "p90", "p99", "max"], [
			["transporter PING round trip", results.hops.ping.p50, results.hops.ping.p90, results.hops.ping.p99, results.hops.ping.max],
			["users.count on another node", results.hops.usersCount.p50, results.hops.usersCount.p90, results.hops.usersCount.p99, results.hops.usersCount.max]
		]);
		if ("skipped" in results.gridfs) console.log(`\ne. skipped: ${results.gridfs.skipped}`);
		else {
			const { throughRedis, direct } = results.gridfs as { throughRedis: typeof clusterLarge; direct: typeof clusterLarge };
			printTable(
				"e. One large upload at a time on MongoDB + GridFS (FerretDB): streamed through Redis to the data node vs images+storage on the gateway",
				["MB", "through Redis MB/s", "direct MB/s", "gateway peak RSS MiB (direct)", "direct / through Redis"],
				throughRedis.map((one, i) => [one.mb, one.mbPerS, direct[i].mbPerS, direct[i].peakRssMiB.gateway, ratio(direct[i].mbPerS, one.mbPerS) ?? "n/a"])
			);
		}
	} finally {
		await embedded?.stop();
		if (cluster) await stopCluster(cluster);
		rmSync(dir, { recursive: true, force: true });
		clearTimeout(watchdog);
	}
	results.durationS = round((Date.now() - startedAt.getTime()) / 1000, 1);
	const path = saveResults("cluster", results);
	console.log(`\nResults: ${path} (and bench/results/cluster-latest.json), ${results.durationS} s`);
	return 0;
}

process.exitCode = await main();
