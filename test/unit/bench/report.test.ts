/**
 * `npm run bench`'s report (bench/report.ts) from results shaped as the benches save them: the
 * figures read from each bench's JSON, each goal met or not with its ratio, the lag per workload,
 * and the SVG charts and report.md made of them. No bench runs here: no timing at all.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { barChart, buildReport, chartsOf, figuresOf, logLineChart, reportMarkdown, type BenchRun } from "../../../bench/report.ts";

const latency = (p99: number) => ({ count: 10, min: 1, mean: 2, p50: 2, p90: 3, p99, max: p99 });
const row = (perS: number, p99: number) => ({ perS, latencyMs: latency(p99), errors: 0, cpuMsPerOp: 1000 / perS });

const transform = {
	sizes: {
		"1600x1067": {
			formats: {
				webp: { rawSharp: row(50, 40), imgmeshUncached: row(48, 60), ipxUncached: row(40, 70), imgmeshCached: row(1000, 10) }
			}
		}
	}
};
const api = {
	upload: {
		// The raw-body baseline is faster than busboy's, but the anchor is busboy's.
		baseline: { ok: 100, imagesPerS: 200, latencyMs: latency(10), serverCpuS: 0.2 },
		busboyBaseline: { ok: 100, imagesPerS: 100, latencyMs: latency(20), serverCpuS: 0.3 },
		imgmeshWithoutWorker: { ok: 100, imagesPerS: 85, latencyMs: latency(100), serverCpuS: 1.2 },
		imgmesh: { ok: 100, imagesPerS: 30, latencyMs: latency(200), serverCpuS: 1.5 }
	},
	get: { imgmesh: { reqPerS: 900, latencyMs: latency(90) }, baseline: { reqPerS: 1000, latencyMs: latency(80) } },
	bigUpload: { embedded: { peakHwmKb: 160 * 1024 } },
	serve: {
		workloads: {
			"GET original": { imgmesh: { ok: 2000, reqPerS: 700, latencyMs: latency(50), serverCpuS: 2 }, nginx: { ok: 4000, reqPerS: 1000, latencyMs: latency(20), serverCpuS: 0.4 } },
			"304 original": { imgmesh: { reqPerS: 300, latencyMs: latency(30) }, nginx: { reqPerS: 1000, latencyMs: latency(20) } }
		}
	},
	figures: undefined
};
const importResult = {
	computeBound: { perMinute: 500 },
	runs: [
		{ mode: "embedded (1 node)", perMinute: 450, memory: { node: { quartersMiB: [180, 200, 205, 210] } } },
		{ mode: "distributed", perMinute: 400, memory: { gateway: { quartersMiB: [150, 150, 150, 150] }, "worker-1": { quartersMiB: [200, 250, 300, 400] } } }
	]
};
const searchRow = (p50: number) => ({ p50, p95: p50 * 2, cpuP50: p50, total: 1, totalIsEstimate: false });
const search = {
	sqlite: {
		results: {
			"10000": { user: { "list page": searchRow(1), phrase: searchRow(3) }, admin: { "list page": searchRow(0.5) } },
			"1000000": { user: { "list page": searchRow(20), phrase: searchRow(150) }, admin: { "list page": searchRow(10) } }
		}
	}
};

const run = (name: string, result: unknown, lag: BenchRun["lag"] = []): BenchRun => ({ name, exitCode: 0, seconds: 12, result, lag });
const lag = (p99Ms: number) => ({ services: null, p50Ms: 1, p99Ms, maxMs: p99Ms * 2, seconds: 30 });

const runs = [run("transform", transform, [lag(12)]), run("api", api, [lag(8), lag(35)]), run("import", importResult), run("search", search)];

describe("the benchmark report", () => {
	it("reads each bench's figures from the JSON it saves, or the figures it gives itself", () => {
		const figures = figuresOf("transform", transform);
		assert.deepEqual(
			figures.map(f => [f.workload, f.anchor, f.imgmesh, f.anchorValue, f.goal]),
			[
				["transform uncached, 1600x1067, WebP", "raw sharp", 48, 50, 0.95],
				["transform uncached, 1600x1067, WebP", "ipx", 48, 40, 1]
			]
		);
		// The shape without sizes, as bench/transform.ts saved it before.
		assert.equal(figuresOf("transform", { formats: transform.sizes["1600x1067"].formats }).length, 2);
		const own = [{ workload: "304", anchor: "nginx", unit: "req/s", imgmesh: 1, anchorValue: 4, goal: 0.35 }];
		assert.deepEqual(figuresOf("api", { ...api, figures: own }), own);
		assert.deepEqual(figuresOf("api", null), []);
	});

	it("says of each goal whether it is met, with the measured ratio", () => {
		const report = buildReport(runs);
		const byGoal = new Map(report.goals.map(g => [g.goal, g]));
		const goal = (text: string) => {
			const found = byGoal.get(text);
			assert.ok(found, `no goal "${text}" in ${[...byGoal.keys()].join(" | ")}`);
			return found;
		};
		assert.deepEqual(goal("transform uncached, 1600x1067, WebP: imgmesh ÷ raw sharp ≥ 0.95"), { goal: "transform uncached, 1600x1067, WebP: imgmesh ÷ raw sharp ≥ 0.95", value: 0.96, target: 0.95, kind: "min", met: true, ratio: 1.011 });
		assert.equal(goal("transform uncached, 1600x1067, WebP: imgmesh ÷ ipx ≥ 1").met, true);
		assert.equal(goal("upload, full node: imgmesh ÷ busboy + fsync baseline ≥ 0.6").value, 0.3);
		assert.equal(goal("upload, full node: imgmesh ÷ busboy + fsync baseline ≥ 0.6").met, false);
		assert.equal(goal("upload, node without the worker: imgmesh ÷ busboy + fsync baseline ≥ 0.8").value, 0.85);
		assert.equal(goal("upload, node without the worker: imgmesh ÷ busboy + fsync baseline ≥ 0.8").met, true);
		// CPU per operation beside each throughput: the steadier figure on a shared machine.
		const upload = report.figures.find(f => f.workload === "upload, full node")!;
		assert.deepEqual([upload.imgmeshCpuMs, upload.anchorCpuMs], [15, 3]);
		const get = report.figures.find(f => f.workload === "GET original" && f.anchor === "nginx")!;
		assert.deepEqual([get.imgmeshCpuMs, get.anchorCpuMs], [1, 0.1]);
		const transformCpu = report.figures.find(f => f.workload.startsWith("transform") && f.anchor === "raw sharp")!;
		assert.deepEqual([transformCpu.imgmeshCpuMs, transformCpu.anchorCpuMs], [1000 / 48, 1000 / 50]);
		assert.equal(report.figures.find(f => f.anchor === "node:http baseline")!.imgmeshCpuMs ?? null, null, "no CPU figure in the result: none shown");
		assert.equal(goal("bulk import to ready, embedded (1 node): imgmesh ÷ compute bound ≥ 0.85").met, true);
		// Flat memory: each node's RSS at the end of the import against half-way through, within 10 %.
		assert.deepEqual(goal("import memory, embedded (1 node), node: RSS at the end ÷ half-way ≤ 1.1"), { goal: "import memory, embedded (1 node), node: RSS at the end ÷ half-way ≤ 1.1", value: 1.05, target: 1.1, kind: "max", met: true, ratio: 0.955 });
		assert.equal(goal("import memory, distributed, worker-1: RSS at the end ÷ half-way ≤ 1.1").met, false);
		// Search: the largest size as a plain user; list pages under 50 ms, phrases under 100 ms.
		assert.equal(goal("search sqlite, list page at 1,000,000 images, user: p50 ms").met, true);
		assert.equal(goal("search sqlite, phrase at 1,000,000 images, user: p50 ms").met, false);
		assert.equal(goal("search sqlite, phrase at 1,000,000 images, user: p50 ms").ratio, 1.5);
		// Lag: the worst node of each workload against 20 ms.
		assert.deepEqual(report.lag, [
			{ workload: "transform", nodes: 1, p50Ms: 1, p99Ms: 12, maxMs: 24 },
			{ workload: "api", nodes: 2, p50Ms: 1, p99Ms: 35, maxMs: 70 }
		]);
		assert.equal(goal("event-loop lag during api: p99 ms").met, false);
		assert.equal(goal("peak RSS of one 200 MB upload, full node: MiB").value, 160);
		// Serving against nginx: throughput and p99 (at most twice nginx's).
		assert.equal(goal("GET original: imgmesh ÷ nginx ≥ 0.6").met, true);
		assert.deepEqual(goal("GET original: p99 ÷ nginx's ≤ 2"), { goal: "GET original: p99 ÷ nginx's ≤ 2", value: 2.5, target: 2, kind: "max", met: false, ratio: 1.25 });
		assert.equal(goal("304 original: imgmesh ÷ nginx ≥ 0.35").value, 0.3);
		assert.equal(goal("304 original: p99 ÷ nginx's ≤ 2").met, true);
		// The GET against node:http has no goal of its own (the anchor is nginx).
		assert.ok(!report.goals.some(g => g.goal.includes("node:http")));
	});

	it("draws bars per workload and search latency against library size as SVG", () => {
		const bars = barChart("Throughput <&>", "req/s", [{ label: "GET", anchorName: "nginx", imgmesh: 500, anchor: 1000 }]);
		assert.match(bars, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
		assert.match(bars, /Throughput &#60;&#38;&#62;/);
		// Each pair is scaled to its larger value: the anchor's bar is full width, imgmesh's half.
		const widths = [...bars.matchAll(/<rect x="300" y="\d+" width="(\d+)"/g)].map(m => Number(m[1]));
		assert.deepEqual(widths, [165, 330]);
		const lines = logLineChart("Search", "images", "ms", [{ name: "list page", points: [[10_000, 1], [1_000_000, 20]] }], { value: 50, label: "goal" });
		assert.match(lines, /<polyline fill="none"[^>]+points="[\d.]+,[\d.]+ [\d.]+,[\d.]+"/);
		assert.match(lines, />10k</);
		assert.match(lines, />1M</);
		assert.doesNotMatch(lines, /NaN|Infinity/);
	});

	it("writes report.md with the goals, the figures, the lag and links to its charts", () => {
		const report = buildReport(runs);
		const charts = chartsOf(report);
		assert.deepEqual(Object.keys(charts).sort(), ["report-p99.svg", "report-search-sqlite.svg", "report-throughput.svg"]);
		for (const svg of Object.values(charts)) assert.doesNotMatch(svg, /NaN|Infinity|undefined/);
		const machine = { cpus: 2, cpuModel: "AMD EPYC", node: "v24", loadAvgAtStart: [1, 2, 3], loadAvgAtEnd: [3, 2, 1] };
		const markdown = reportMarkdown(report, { machine, runs, quick: true, charts: Object.keys(charts) });
		assert.match(markdown, new RegExp(`## Goals: ${report.goals.filter(g => g.met).length} of ${report.goals.length} met`));
		assert.match(markdown, /\| upload, full node: imgmesh ÷ busboy \+ fsync baseline ≥ 0.6 \| 0.3 \| ≥ 0.6 \| 0.5 \| \*\*no\*\* \|/);
		assert.match(markdown, /\| api \| 2 \| 1 \| 35 \| 70 \|/);
		assert.match(markdown, /\| upload, full node \| busboy \+ fsync baseline \| 30 images\/s \| 100 images\/s \| 0.3 \| 15 \/ 3 \| 0.2 \| 200 \/ 20 \|/);
		assert.match(markdown, /!\[report-throughput.svg\]\(report-throughput.svg\)/);
		assert.match(markdown, /Quick mode/);
		assert.match(markdown, /\(\.\.\/\.\.\/docs\/benchmarks\.md#goals-not-met\)/, "links to the explanations of the goals not met");
		assert.doesNotMatch(markdown, /NaN|undefined/);
	});
});
