/**
 * Import request benchmark (`node bench/import-request.ts [N]`, `npm run bench:import-request`):
 * does creating a big URL-list import (N URLs, 100,000 by default: ≈ 15 MB of JSON in one
 * POST /api/imports) stall the server? The event loop's lag is not visible from outside, so a
 * client polls GET /api/health every 10 ms (one request at a time, keep-alive) and records how
 * long each answer took, while the import is created:
 *
 *  - during the request (from sending the POST until its 202);
 *  - for BENCH_AFTER_MS [5000] ms after it (the listing of the job's items, in the same node).
 *
 * The worst health latency in a window is the longest the server could not answer; the goal is no
 * gap over ≈ 50 ms. The URLs point at loopback and the node does not allow private networks, so
 * items fail at once without any connection; the job is cancelled after the second window.
 * Runs BENCH_ROUNDS [3] imports, each by a new user. Writes bench/results/import-request-latest.json.
 */
import http from "node:http";
import { performance } from "node:perf_hooks";
import { Client } from "../test/helpers/client.ts";
import { startServer } from "../test/helpers/server.ts";
import { envInt, machineInfo, printTable, round, saveResults, sleep, summarize } from "./lib.ts";

const N = Number(process.argv[2] ?? 100_000);
if (!Number.isSafeInteger(N) || N < 1) throw new Error(`N must be a positive integer, got ${process.argv[2]}`);
const ROUNDS = envInt("BENCH_ROUNDS", 3, 1);
const AFTER_MS = envInt("BENCH_AFTER_MS", 5000, 0);
const POLL_MS = 10;

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One GET on a keep-alive socket; resolves with the status. */
function get(url: string): Promise<number> {
	return new Promise((resolve, reject) => {
		http
			.get(url, { agent }, res => {
				res.resume();
				res.on("end", () => resolve(res.statusCode ?? 0));
			})
			.on("error", reject);
	});
}

/** Polls /api/health until stopped: each answer's latency, and the start time of each poll. */
function pollHealth(base: string): { stop(): Promise<{ latencies: number[]; failures: number }> } {
	const latencies: number[] = [];
	let failures = 0;
	let running = true;
	const loop = (async () => {
		while (running) {
			const started = performance.now();
			const status = await get(`${base}/api/health`).catch(() => 0);
			if (status !== 200) failures++;
			latencies.push(performance.now() - started);
			await sleep(POLL_MS);
		}
	})();
	return {
		async stop() {
			running = false;
			await loop;
			return { latencies, failures };
		}
	};
}

// BENCH_CPU_PROF_DIR: the node writes a V8 CPU profile there when it stops (for finding where the time goes).
const profileDir = process.env.BENCH_CPU_PROF_DIR;
const server = await startServer({ LOG_LEVEL: "warn", ...(profileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` } : {}) });
const rows: (string | number)[][] = [];
const results: Record<string, unknown>[] = [];
try {
	const anon = new Client(server.url);
	// Warm up the route and the health poll.
	const warm = await anon.register("warmup");
	await warm.post("/api/imports", { source: "urls", urls: ["http://127.0.0.1:9/warm.jpg"] });
	for (let i = 0; i < 20; i++) await get(`${server.url}/api/health`);

	for (let round_ = 1; round_ <= ROUNDS; round_++) {
		const user = await anon.register(`bench${round_}`);
		const urls = Array.from({ length: N }, (_, i) => `http://127.0.0.1:9/r${round_}/collections/summer-holidays-2026/images/${String(i).padStart(6, "0")}/photo-${i}-original-resolution.jpg?size=large&format=jpeg&v=${i % 7}&t=0123456789abcdef`);
		const body = JSON.stringify({ source: "urls", urls });
		await sleep(500);
		const during = pollHealth(server.url);
		await sleep(50);
		const started = performance.now();
		const res = await user.request("POST", "/api/imports", body, { "content-type": "application/json" });
		const requestMs = performance.now() - started;
		const duringResult = await during.stop();
		if (res.status !== 202) throw new Error(`import: ${res.status} ${JSON.stringify(res.body).slice(0, 500)}`);
		const afterPoll = pollHealth(server.url);
		await sleep(AFTER_MS);
		const afterResult = await afterPoll.stop();
		await user.delete(`/api/imports/${res.body.job.id}`);
		const d = summarize(duringResult.latencies);
		const a = summarize(afterResult.latencies);
		rows.push([round_, round(body.length / 1e6, 1), round(requestMs, 0), d.count, d.p50, d.p99, d.max, a.count, a.p50, a.max, duringResult.failures + afterResult.failures]);
		results.push({ round: round_, urls: N, bodyBytes: body.length, requestMs: round(requestMs), during: d, after: a, failures: duringResult.failures + afterResult.failures });
	}
} finally {
	agent.destroy();
	await server.stop();
}

printTable(
	`POST /api/imports with ${N.toLocaleString("en")} URLs: GET /api/health latency (ms), polled every ${POLL_MS} ms`,
	["round", "body MB", "request ms", "polls during", "p50", "p99", "worst", `polls next ${AFTER_MS / 1000} s`, "p50", "worst", "failed"],
	rows
);
const path = saveResults("import-request", { machine: machineInfo(), urls: N, rounds: results });
console.log(`\nresults: ${path}`);
