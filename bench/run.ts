/**
 * Every benchmark of issue 17 in one go (`npm run bench`, i.e. `node bench/run.ts`): transforms
 * against raw sharp and ipx (bench/transform.ts), uploads and GETs against their baselines and
 * nginx (bench/api.ts), bulk import against the compute bound (bench/import.ts), search at 10k,
 * 100k and 1M images (bench/search.ts), one after the other, each as its own process with the
 * event-loop lag preload (bench/event-loop-lag.ts) in every imgmesh node it starts. Each bench
 * keeps its own logic and JSON; this reads them back (bench/report.ts) and writes
 * bench/results/latest.json (every figure, the lag per workload, each goal met or not with its
 * ratio), bench/results/report.md and its SVG charts.
 *
 *   node bench/run.ts [--quick] [--only=transform,api,import,search] [--report]
 *
 * --report: no bench runs; the report is made again from the benches' -latest.json files as they
 * are (e.g. after one bench was run by hand), with the lag and exit codes of the last full run.
 * --quick: a smoke run of a few minutes (few sources, 1 round, short loads, 10k images only).
 * Without it, bounded defaults: each bench's own, but import of 10,000 images (the issue's size;
 * BENCH_IMPORT_IMAGES to change it) and search up to 1M
 * (the 1M library is generated once, ~10 min, and kept in the search bench's directory).
 * A BENCH_* variable set in the environment wins over both (it reaches every bench).
 * A bench that fails is reported as failed; the others still run. Exit code 1 if one failed.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { eventLoopLagEnv, machineInfo, printTable, readEventLoopLag, round } from "./lib.ts";
import { buildReport, chartsOf, reportMarkdown, type BenchRun } from "./report.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS = join(ROOT, "bench", "results");
const BENCH_TIMEOUT_MS = 75 * 60_000;

interface Step {
	name: string;
	script: string;
	args: { quick: string[]; full: string[] };
	env: { quick: Record<string, string>; full: Record<string, string> };
}

const STEPS: Step[] = [
	{
		name: "transform",
		script: "bench/transform.ts",
		args: { quick: [], full: [] },
		env: { quick: { BENCH_SOURCES: "4", BENCH_AVIF_SOURCES: "2", BENCH_ROUNDS: "1", BENCH_SECONDS: "2" }, full: {} }
	},
	{
		name: "api",
		script: "bench/api.ts",
		args: { quick: [], full: [] },
		env: {
			quick: { BENCH_UPLOADS: "40", BENCH_SECONDS: "2", BENCH_SERVE_SECONDS: "2", BENCH_ROUNDS: "1", BENCH_BIG_SIDE: "3000" },
			full: { BENCH_UPLOADS: "300", BENCH_SECONDS: "5" }
		}
	},
	{
		name: "import",
		script: "bench/import.ts",
		args: { quick: ["30"], full: [process.env.BENCH_IMPORT_IMAGES || "10000"] },
		env: { quick: { BENCH_MODES: "embedded", BENCH_COMPUTE_SAMPLE: "10" }, full: { BENCH_COMPUTE_SAMPLE: "60", BENCH_MAX_MINUTES: "70" } }
	},
	{
		name: "search",
		script: "bench/search.ts",
		args: { quick: [], full: [] },
		env: { quick: { BENCH_SEARCH_SIZES: "10000", BENCH_SEARCH_ROUNDS: "5" }, full: { BENCH_SEARCH_ROUNDS: "15" } }
	}
];

function parseArgs(argv: string[]): { quick: boolean; only: string[]; reportOnly: boolean } {
	let quick = false;
	let reportOnly = false;
	let only = STEPS.map(step => step.name);
	for (const arg of argv) {
		if (arg === "--quick") quick = true;
		else if (arg === "--report") reportOnly = true;
		else if (arg.startsWith("--only=")) only = arg.slice("--only=".length).split(",");
		else throw new Error(`unknown argument ${arg}: use --quick, --report and --only=${STEPS.map(step => step.name).join(",")}`);
	}
	const unknown = only.filter(name => !STEPS.some(step => step.name === name));
	if (unknown.length > 0) throw new Error(`unknown bench ${unknown.join(", ")}`);
	return { quick, only, reportOnly };
}

const mtime = (path: string) => {
	try {
		return statSync(path).mtimeMs;
	} catch {
		return 0;
	}
};

let interrupted = false;

/** Runs one bench as a child process (its output passed through); its result JSON if it wrote one. */
async function runStep(step: Step, quick: boolean, lagDir: string): Promise<BenchRun> {
	const resultPath = join(RESULTS, `${step.name}-latest.json`);
	const before = mtime(resultPath);
	const mode = quick ? "quick" : "full";
	console.log(`\n=== ${step.name}: node ${[step.script, ...step.args[mode]].join(" ")} ${JSON.stringify(step.env[mode])}`);
	const started = performance.now();
	const child = spawn(process.execPath, [step.script, ...step.args[mode]], {
		cwd: ROOT,
		env: { ...step.env[mode], ...process.env, ...eventLoopLagEnv(lagDir) },
		stdio: "inherit",
		// Its own process group, so a bench that hangs goes with every node it started.
		detached: true
	});
	const timer = setTimeout(() => process.kill(-child.pid!, "SIGTERM"), BENCH_TIMEOUT_MS);
	// Ctrl-C reaches only this process (the bench has a group of its own): pass it on, run no more.
	const interrupt = () => {
		interrupted = true;
		process.kill(-child.pid!, "SIGINT");
	};
	process.once("SIGINT", interrupt);
	const exitCode = await new Promise<number | null>(resolve => child.once("exit", code => resolve(code)));
	process.off("SIGINT", interrupt);
	clearTimeout(timer);
	const fresh = mtime(resultPath) > before;
	return {
		name: step.name,
		exitCode,
		seconds: round((performance.now() - started) / 1000, 1),
		result: fresh ? JSON.parse(readFileSync(resultPath, "utf8")) : null,
		lag: readEventLoopLag(lagDir).map(({ services, p50Ms, p99Ms, maxMs, seconds }) => ({ services, p50Ms, p99Ms, maxMs, seconds }))
	};
}

/** The runs as the last `npm run bench` left them, each with its bench's current result file. */
function previousRuns(only: string[]): { runs: BenchRun[]; machine: Record<string, unknown>; quick: boolean } {
	const last = JSON.parse(readFileSync(join(RESULTS, "latest.json"), "utf8")) as { machine: Record<string, unknown>; quick: boolean; runs: Omit<BenchRun, "result">[] };
	const runs = last.runs
		.filter(run => only.includes(run.name))
		.map(run => ({ ...run, result: JSON.parse(readFileSync(join(RESULTS, `${run.name}-latest.json`), "utf8")) }));
	return { runs, machine: last.machine, quick: last.quick };
}

async function runAll(quick: boolean, only: string[]): Promise<BenchRun[]> {
	const lagRoot = mkdtempSync(join(os.tmpdir(), "imgmesh-bench-lag-"));
	const runs: BenchRun[] = [];
	try {
		for (const step of STEPS.filter(step => only.includes(step.name))) {
			if (!interrupted) runs.push(await runStep(step, quick, join(lagRoot, step.name)));
		}
	} finally {
		rmSync(lagRoot, { recursive: true, force: true });
	}
	return runs;
}

async function main(): Promise<void> {
	const args = parseArgs(process.argv.slice(2));
	let { quick } = args;
	let machine = machineInfo();
	let runs: BenchRun[];
	if (args.reportOnly) ({ runs, machine, quick } = previousRuns(args.only));
	else {
		runs = await runAll(quick, args.only);
		machine.loadAvgAtEnd = os.loadavg().map(value => round(value));
	}
	if (interrupted) {
		// The last report stays: a partial run would replace it with less.
		console.error("interrupted: no report written");
		process.exitCode = 130;
		return;
	}

	const report = buildReport(runs);
	const charts = chartsOf(report);
	for (const [name, svg] of Object.entries(charts)) writeFileSync(join(RESULTS, name), svg);
	writeFileSync(join(RESULTS, "report.md"), reportMarkdown(report, { machine, runs, quick, charts: Object.keys(charts) }));
	writeFileSync(
		join(RESULTS, "latest.json"),
		JSON.stringify({ machine, quick, runs: runs.map(({ name, exitCode, seconds, lag }) => ({ name, exitCode, seconds, lag })), ...report }, null, 2) + "\n"
	);

	printTable(
		"Goals",
		["goal", "measured", "target", "met"],
		report.goals.map(g => [g.goal, g.value, `${g.kind === "min" ? ">=" : "<="} ${g.target}`, g.met ? "yes" : "NO"])
	);
	console.log(`\nbench/results/report.md, latest.json and ${Object.keys(charts).length} charts written.`);
	if (runs.some(run => run.exitCode !== 0)) {
		console.error(`failed: ${runs.filter(run => run.exitCode !== 0).map(run => run.name).join(", ")}`);
		process.exitCode = 1;
	}
}

await main();
