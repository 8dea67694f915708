/**
 * Preload (`node --import ./bench/event-loop-lag.ts`, or through NODE_OPTIONS) that samples this
 * process's event-loop delay with perf_hooks.monitorEventLoopDelay while BENCH_LAG_DIR is set, and
 * writes `<BENCH_LAG_DIR>/lag-<pid>.json` (p50, p99, max in ms, the script it ran) every few
 * seconds and at exit: a node stopped by SIGTERM exits through 'exit', one killed hard keeps the
 * last snapshot. Nothing happens without BENCH_LAG_DIR. `npm run bench` (bench/run.ts) sets both
 * for every bench it runs; test/helpers/server.ts passes them on to the nodes it starts.
 */
import { writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";

const dir = process.env.BENCH_LAG_DIR;
if (dir) {
	// 10 ms resolution: the goal is p99 under 20 ms, and a finer timer would itself load the loop.
	const resolutionMs = 10;
	const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
	histogram.enable();
	const started = Date.now();
	// The histogram records the time between the timer's wake-ups, the resolution included (an
	// idle loop reads 10.1 ms): the lag is what exceeds it.
	const ms = (ns: number) => Math.max(0, Math.round(ns / 1e4 - resolutionMs * 100) / 100);
	const snapshot = () => {
		writeFileSync(
			join(dir, `lag-${process.pid}.json`),
			JSON.stringify({
				pid: process.pid,
				script: basename(process.argv[1] ?? ""),
				services: process.env.SERVICES ?? null,
				seconds: Math.round((Date.now() - started) / 100) / 10,
				samples: histogram.count,
				p50Ms: ms(histogram.percentile(50)),
				p99Ms: ms(histogram.percentile(99)),
				maxMs: ms(histogram.max)
			})
		);
	};
	setInterval(snapshot, 5000).unref();
	process.on("exit", snapshot);
}
