/**
 * What `npm run bench` (bench/run.ts) makes of the benches' JSON: figures in one shape (imgmesh
 * next to its anchor), the issue's goals met or not with their ratios, and report.md with SVG
 * charts drawn here (bars of throughput and p99 per workload against each anchor; search latency
 * against library size). Pure functions, no I/O: bench/run.ts reads and writes the files, and
 * test/unit/bench/report.test.ts checks the output.
 *
 * A bench may put a `figures` array of `Figure`s in its result JSON: it is taken as is. The
 * extractors below read the shapes the benches save today, so neither has to change first.
 */

/** One workload measured on imgmesh and on its anchor in the same run. */
export interface Figure {
	workload: string;
	anchor: string;
	/** Unit of `imgmesh` and `anchorValue`, higher is better (e.g. "req/s"). */
	unit: string;
	imgmesh: number;
	anchorValue: number;
	imgmeshP99Ms?: number | null;
	anchorP99Ms?: number | null;
	/**
	 * Server CPU ms per operation: with the load generator on the same cores, throughput ratios
	 * move with the load, CPU per operation much less. Null where the bench measured none.
	 */
	imgmeshCpuMs?: number | null;
	anchorCpuMs?: number | null;
	/** The least imgmesh ÷ anchor the issue asks for; absent where it asks nothing. */
	goal?: number;
	/** The most imgmesh p99 ÷ anchor p99 the issue allows; absent where it says nothing. */
	p99Goal?: number;
}

/** p50 of one query kind at one library size. */
export interface SearchPoint {
	backend: string;
	viewer: string;
	query: string;
	size: number;
	p50Ms: number;
}

/** Event-loop lag of the imgmesh nodes during one workload (the worst node's). */
export interface LagFigure {
	workload: string;
	nodes: number;
	p50Ms: number;
	p99Ms: number;
	maxMs: number;
}

export interface Goal {
	goal: string;
	/** The measured value: a ratio to the anchor, or milliseconds, or MiB. */
	value: number;
	target: number;
	/** "min": value must be at least target; "max": at most. */
	kind: "min" | "max";
	met: boolean;
	/** value ÷ target: at least 1 for a met "min" goal, at most 1 for a met "max" goal. */
	ratio: number;
}

export interface BenchRun {
	name: string;
	/** Exit code of the bench (0: ran to the end). */
	exitCode: number | null;
	seconds: number;
	/** The bench's result JSON of this run; null when it wrote none. */
	result: any;
	/** Event-loop lag of each imgmesh node it started. */
	lag: { services: string | null; p50Ms: number; p99Ms: number; maxMs: number; seconds: number }[];
}

export interface Report {
	figures: Figure[];
	search: SearchPoint[];
	lag: LagFigure[];
	goals: Goal[];
}

const round = (value: number, digits = 2) => Number(value.toFixed(digits));

// ---------------------------------------------------------------------------------------------
// From the benches' JSON to figures
// ---------------------------------------------------------------------------------------------

/** CPU ms per successful operation of a run that recorded its server's CPU seconds. */
function cpuMsPerOp(run: { ok?: number; serverCpuS?: number } | undefined): number | null {
	return run?.ok && typeof run.serverCpuS === "number" ? round((run.serverCpuS * 1000) / run.ok, 3) : null;
}

const FORMAT_NAMES: Record<string, string> = { webp: "WebP", jpeg: "JPEG", avif: "AVIF" };

/** bench/transform.ts: `formats`, or `sizes.<size>.formats`, each with its three uncached rows. */
function transformFigures(result: any): Figure[] {
	const sizes: [string, any][] = result.sizes ? Object.entries(result.sizes) : [["", { formats: result.formats ?? {} }]];
	return sizes.flatMap(([size, { formats }]) =>
		Object.entries(formats as Record<string, any>).flatMap(([format, row]) => {
			const workload = `transform uncached${size ? `, ${size}` : ""}, ${FORMAT_NAMES[format] ?? format}`;
			const against = (anchor: string, other: any, goal: number): Figure => ({
				workload,
				anchor,
				unit: "images/s",
				imgmesh: row.imgmeshUncached.perS,
				anchorValue: other.perS,
				imgmeshP99Ms: row.imgmeshUncached.latencyMs?.p99 ?? null,
				anchorP99Ms: other.latencyMs?.p99 ?? null,
				imgmeshCpuMs: row.imgmeshUncached.cpuMsPerOp ?? null,
				anchorCpuMs: other.cpuMsPerOp ?? null,
				goal
			});
			return [against("raw sharp", row.rawSharp, 0.95), ...(row.ipxUncached ? [against("ipx", row.ipxUncached, 1)] : [])];
		})
	);
}

/** The issue's least ratio to nginx per serving workload of bench/api.ts part s (by its prefix). */
const SERVE_GOALS: [string, { goal: number; p99Goal?: number }][] = [
	["GET original", { goal: 0.6, p99Goal: 2 }],
	["304", { goal: 0.35, p99Goal: 2 }],
	["GET cached variant", { goal: 0.6 }],
	["GET rendition", { goal: 0.6 }]
];

/**
 * bench/api.ts: uploads against the busboy + fsync baseline, GETs against its node:http
 * baseline, and part s (`serve.workloads`): GET, 304, cached variants and renditions against nginx.
 */
function apiFigures(result: any): Figure[] {
	const figures: Figure[] = [];
	for (const [workload, entry] of Object.entries((result.serve?.workloads ?? {}) as Record<string, any>)) {
		const goals = SERVE_GOALS.find(([prefix]) => workload.startsWith(prefix))?.[1] ?? {};
		figures.push({
			workload,
			anchor: "nginx",
			unit: "req/s",
			imgmesh: entry.imgmesh.reqPerS,
			anchorValue: entry.nginx.reqPerS,
			imgmeshP99Ms: entry.imgmesh.latencyMs?.p99 ?? null,
			anchorP99Ms: entry.nginx.latencyMs?.p99 ?? null,
			imgmeshCpuMs: cpuMsPerOp(entry.imgmesh),
			anchorCpuMs: cpuMsPerOp(entry.nginx),
			...goals
		});
	}
	const upload = result.upload;
	const anchor = upload?.busboyBaseline;
	const uploads: [string, any, number][] = [
		["upload, node without the worker", upload?.imgmeshWithoutWorker, 0.8],
		["upload, full node", upload?.imgmesh, 0.6]
	];
	for (const [workload, run, goal] of anchor ? uploads : []) {
		if (!run) continue;
		figures.push({
			workload,
			anchor: "busboy + fsync baseline",
			unit: "images/s",
			imgmesh: run.imagesPerS,
			anchorValue: anchor.imagesPerS,
			imgmeshP99Ms: run.latencyMs?.p99 ?? null,
			anchorP99Ms: anchor.latencyMs?.p99 ?? null,
			imgmeshCpuMs: cpuMsPerOp(run),
			anchorCpuMs: cpuMsPerOp(anchor),
			goal
		});
	}
	const get = result.get;
	if (get?.imgmesh && get.baseline) {
		figures.push({
			workload: "GET original",
			anchor: "node:http baseline",
			unit: "req/s",
			imgmesh: get.imgmesh.reqPerS,
			anchorValue: get.baseline.reqPerS,
			imgmeshP99Ms: get.imgmesh.latencyMs?.p99 ?? null,
			anchorP99Ms: get.baseline.latencyMs?.p99 ?? null
		});
	}
	return figures;
}

/** bench/import.ts: each mode's images per minute against the compute bound of the same run. */
function importFigures(result: any): Figure[] {
	const bound = result.computeBound?.perMinute;
	if (!bound) return [];
	return (result.runs ?? []).map((run: any) => ({
		workload: `bulk import to ready, ${run.mode}`,
		anchor: "compute bound",
		unit: "images/min",
		imgmesh: run.perMinute,
		anchorValue: bound,
		goal: 0.85
	}));
}

const EXTRACTORS: Record<string, (result: any) => Figure[]> = { transform: transformFigures, api: apiFigures, import: importFigures };

/** The figures of one bench's result: its own `figures`, else what the extractor reads. */
export function figuresOf(name: string, result: any): Figure[] {
	if (!result) return [];
	if (Array.isArray(result.figures)) return result.figures;
	return EXTRACTORS[name]?.(result) ?? [];
}

/** bench/search.ts: `<backend>.results.<size>.<viewer>.<query>.p50`. */
export function searchPoints(result: any): SearchPoint[] {
	if (!result) return [];
	return ["sqlite", "mongo"].flatMap(backend =>
		Object.entries((result[backend]?.results ?? {}) as Record<string, any>).flatMap(([size, viewers]) =>
			Object.entries(viewers as Record<string, any>).flatMap(([viewer, queries]) =>
				Object.entries(queries as Record<string, any>).map(([query, row]) => ({ backend, viewer, query, size: Number(size), p50Ms: row.p50 }))
			)
		)
	);
}

// ---------------------------------------------------------------------------------------------
// Goals
// ---------------------------------------------------------------------------------------------

/** The issue's limits for search at the largest size, as a plain user: p50 in ms. */
const SEARCH_LIMITS_MS: Record<string, number> = {
	"list page": 50,
	"tag:": 50,
	"category:": 50,
	"owner:": 50,
	"date:": 50,
	"free word": 50,
	phrase: 100
};
const LAG_P99_LIMIT_MS = 20;
/** Flat memory through an import: RSS at its end at most this much of RSS half-way (warm-up is over by then). */
const IMPORT_RSS_GROWTH_LIMIT = 1.1;
export const UPLOAD_RSS_LIMIT_MIB = 150;

function goal(text: string, value: number, target: number, kind: "min" | "max"): Goal {
	return { goal: text, value, target, kind, met: kind === "min" ? value >= target : value <= target, ratio: round(value / target, 3) };
}

/** bench/import.ts: each node's RSS at the end of each mode's import ÷ half-way through. */
function importMemoryGoals(result: any): Goal[] {
	return (result?.runs ?? []).flatMap((run: any) =>
		Object.entries((run.memory ?? {}) as Record<string, { quartersMiB?: number[] }>).flatMap(([node, { quartersMiB }]) => {
			const [, half, , end] = quartersMiB ?? [];
			if (!half || !end) return [];
			return [goal(`import memory, ${run.mode}, ${node}: RSS at the end ÷ half-way ≤ ${IMPORT_RSS_GROWTH_LIMIT}`, round(end / half, 3), IMPORT_RSS_GROWTH_LIMIT, "max")];
		})
	);
}

function goalsOf(figures: Figure[], search: SearchPoint[], lag: LagFigure[], uploadRssMiB: number | null): Goal[] {
	const goals: Goal[] = [];
	for (const figure of figures) {
		const ratio = round(figure.imgmesh / figure.anchorValue, 3);
		if (figure.goal !== undefined) goals.push(goal(`${figure.workload}: imgmesh ÷ ${figure.anchor} ≥ ${figure.goal}`, ratio, figure.goal, "min"));
		if (figure.p99Goal !== undefined && figure.imgmeshP99Ms && figure.anchorP99Ms) {
			const p99Ratio = round(figure.imgmeshP99Ms / figure.anchorP99Ms, 3);
			goals.push(goal(`${figure.workload}: p99 ÷ ${figure.anchor}'s ≤ ${figure.p99Goal}`, p99Ratio, figure.p99Goal, "max"));
		}
	}
	for (const backend of new Set(search.map(point => point.backend))) {
		const points = search.filter(point => point.backend === backend && point.viewer === "user");
		const largest = Math.max(...points.map(point => point.size));
		for (const point of points.filter(point => point.size === largest && SEARCH_LIMITS_MS[point.query] !== undefined)) {
			goals.push(goal(`search ${backend}, ${point.query} at ${largest.toLocaleString("en")} images, user: p50 ms`, point.p50Ms, SEARCH_LIMITS_MS[point.query]!, "max"));
		}
	}
	for (const row of lag) goals.push(goal(`event-loop lag during ${row.workload}: p99 ms`, row.p99Ms, LAG_P99_LIMIT_MS, "max"));
	if (uploadRssMiB !== null) goals.push(goal("peak RSS of one 200 MB upload, full node: MiB", uploadRssMiB, UPLOAD_RSS_LIMIT_MIB, "max"));
	return goals;
}

/** Everything the report shows, from the runs of one `npm run bench`. */
export function buildReport(runs: BenchRun[]): Report {
	const figures = runs.flatMap(run => figuresOf(run.name, run.result));
	const search = runs.flatMap(run => (run.name === "search" ? searchPoints(run.result) : []));
	const lag = runs
		.filter(run => run.lag.length > 0)
		.map(run => {
			// The worst node of the workload: the goal holds for every node.
			const worst = run.lag.reduce((a, b) => (b.p99Ms > a.p99Ms ? b : a));
			return { workload: run.name, nodes: run.lag.length, p50Ms: worst.p50Ms, p99Ms: worst.p99Ms, maxMs: Math.max(...run.lag.map(node => node.maxMs)) };
		});
	// bench/api.ts part c: the whole embedded node's peak while one ~200 MB PNG comes in.
	const rssKb = runs.find(run => run.name === "api")?.result?.bigUpload?.embedded?.peakHwmKb;
	const goals = goalsOf(figures, search, lag, typeof rssKb === "number" ? round(rssKb / 1024, 1) : null);
	return { figures, search, lag, goals: [...goals, ...importMemoryGoals(runs.find(run => run.name === "import")?.result)] };
}

// ---------------------------------------------------------------------------------------------
// SVG charts (no dependency: a few rects and texts)
// ---------------------------------------------------------------------------------------------

const escapeXml = (text: string) => text.replace(/[<>&"']/g, c => `&#${c.charCodeAt(0)};`);
const COLORS = { imgmesh: "#2f6fb5", anchor: "#b0b0b0", grid: "#e4e4e4", text: "#222", miss: "#c0392b" };

export interface Bar {
	label: string;
	imgmesh: number;
	anchor: number;
	anchorName: string;
}

/**
 * Horizontal grouped bars: per row, imgmesh's bar over its anchor's, each scaled to the larger of
 * the two (absolute values differ by orders of magnitude between workloads), the values written
 * beside them.
 */
export function barChart(title: string, unit: string, bars: Bar[]): string {
	const width = 760;
	const labelWidth = 300;
	const barArea = width - labelWidth - 130;
	const rowHeight = 44;
	const top = 56;
	const height = top + bars.length * rowHeight + 16;
	const parts = [
		`<text x="10" y="22" font-size="15" font-weight="bold" fill="${COLORS.text}">${escapeXml(title)}</text>`,
		`<rect x="10" y="32" width="12" height="12" fill="${COLORS.imgmesh}"/><text x="27" y="43" font-size="12">imgmesh</text>`,
		`<rect x="100" y="32" width="12" height="12" fill="${COLORS.anchor}"/><text x="117" y="43" font-size="12">anchor</text>`
	];
	bars.forEach((bar, i) => {
		const y = top + i * rowHeight;
		const scale = Math.max(bar.imgmesh, bar.anchor) || 1;
		const w = (value: number) => Math.max(1, Math.round((value / scale) * barArea));
		parts.push(
			`<text x="${labelWidth - 8}" y="${y + 14}" font-size="12" text-anchor="end" fill="${COLORS.text}">${escapeXml(bar.label)}</text>`,
			`<text x="${labelWidth - 8}" y="${y + 30}" font-size="11" text-anchor="end" fill="#666">vs ${escapeXml(bar.anchorName)}</text>`,
			`<rect x="${labelWidth}" y="${y + 2}" width="${w(bar.imgmesh)}" height="16" fill="${COLORS.imgmesh}"/>`,
			`<text x="${labelWidth + w(bar.imgmesh) + 6}" y="${y + 15}" font-size="11">${formatNumber(bar.imgmesh)} ${escapeXml(unit)}</text>`,
			`<rect x="${labelWidth}" y="${y + 20}" width="${w(bar.anchor)}" height="16" fill="${COLORS.anchor}"/>`,
			`<text x="${labelWidth + w(bar.anchor) + 6}" y="${y + 33}" font-size="11">${formatNumber(bar.anchor)} ${escapeXml(unit)}</text>`
		);
	});
	return svg(width, height, parts);
}

export interface Series {
	name: string;
	points: [number, number][];
}

/** Lines of y against x, both on log10 axes (library sizes 10k..1M, latencies 0.1 ms..s). */
export function logLineChart(title: string, xLabel: string, yLabel: string, series: Series[], limit?: { value: number; label: string }): string {
	const width = 760;
	const height = 420;
	const left = 70;
	const right = 200;
	const top = 40;
	const bottom = 50;
	const all = series.flatMap(s => s.points).filter(([x, y]) => x > 0 && y > 0);
	const ys = [...all.map(([, y]) => y), ...(limit ? [limit.value] : [])];
	const decade = (value: number, up: boolean) => (up ? Math.ceil : Math.floor)(Math.log10(value));
	const xMin = all.length ? decade(Math.min(...all.map(([x]) => x)), false) : 0;
	// At least one decade wide, so a single size still has an axis.
	const xMax = Math.max(xMin + 1, all.length ? decade(Math.max(...all.map(([x]) => x)), true) : 1);
	const [yMin, yMax] = ys.length ? [decade(Math.min(...ys), false), decade(Math.max(...ys), true)] : [0, 1];
	const px = (x: number) => left + ((Math.log10(x) - xMin) / Math.max(1, xMax - xMin)) * (width - left - right);
	const py = (y: number) => height - bottom - ((Math.log10(y) - yMin) / Math.max(1, yMax - yMin)) * (height - top - bottom);
	const parts = [`<text x="10" y="22" font-size="15" font-weight="bold" fill="${COLORS.text}">${escapeXml(title)}</text>`];
	for (let d = yMin; d <= yMax; d++) {
		parts.push(
			`<line x1="${left}" x2="${width - right}" y1="${py(10 ** d)}" y2="${py(10 ** d)}" stroke="${COLORS.grid}"/>`,
			`<text x="${left - 6}" y="${py(10 ** d) + 4}" font-size="11" text-anchor="end">${formatNumber(10 ** d)}</text>`
		);
	}
	for (let d = xMin; d <= xMax; d++) {
		parts.push(`<text x="${px(10 ** d)}" y="${height - bottom + 18}" font-size="11" text-anchor="middle">${formatNumber(10 ** d)}</text>`);
	}
	parts.push(
		`<text x="${(left + width - right) / 2}" y="${height - 12}" font-size="12" text-anchor="middle">${escapeXml(xLabel)}</text>`,
		`<text x="16" y="${(top + height - bottom) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${(top + height - bottom) / 2})">${escapeXml(yLabel)}</text>`
	);
	if (limit) {
		parts.push(
			`<line x1="${left}" x2="${width - right}" y1="${py(limit.value)}" y2="${py(limit.value)}" stroke="${COLORS.miss}" stroke-dasharray="6 4"/>`,
			`<text x="${left + 4}" y="${py(limit.value) - 4}" font-size="11" fill="${COLORS.miss}">${escapeXml(limit.label)}</text>`
		);
	}
	series.forEach((s, i) => {
		const color = `hsl(${Math.round((i * 360) / Math.max(1, series.length))} 60% 42%)`;
		const points = s.points.filter(([x, y]) => x > 0 && y > 0).sort((a, b) => a[0] - b[0]);
		if (points.length === 0) return;
		parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map(([x, y]) => `${round(px(x), 1)},${round(py(y), 1)}`).join(" ")}"/>`);
		for (const [x, y] of points) parts.push(`<circle cx="${round(px(x), 1)}" cy="${round(py(y), 1)}" r="3" fill="${color}"/>`);
		parts.push(`<text x="${width - right + 6}" y="${top + 14 + i * 16}" font-size="11" fill="${color}">${escapeXml(s.name)}</text>`);
	});
	return svg(width, height, parts);
}

function svg(width: number, height: number, parts: string[]): string {
	return (
		`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">\n` +
		`<rect width="100%" height="100%" fill="white"/>\n${parts.join("\n")}\n</svg>\n`
	);
}

function formatNumber(value: number): string {
	if (value >= 1_000_000) return `${round(value / 1_000_000, 1)}M`;
	if (value >= 10_000) return `${round(value / 1000, 0)}k`;
	if (value >= 100) return String(Math.round(value));
	return String(round(value, value >= 1 ? 1 : 2));
}

// ---------------------------------------------------------------------------------------------
// report.md
// ---------------------------------------------------------------------------------------------

/** The charts of a report by file name (beside report.md), only those with data. */
export function chartsOf(report: Report): Record<string, string> {
	const charts: Record<string, string> = {};
	if (report.figures.length > 0) {
		const bars = (value: (f: Figure) => [number, number]) =>
			report.figures.map(f => ({ label: f.workload, anchorName: f.anchor, imgmesh: value(f)[0], anchor: value(f)[1] }));
		charts["report-throughput.svg"] = barChart("Throughput: imgmesh against its anchor (higher is better)", "", bars(f => [f.imgmesh, f.anchorValue]));
		const withP99 = report.figures.filter(f => f.imgmeshP99Ms && f.anchorP99Ms);
		if (withP99.length > 0) {
			charts["report-p99.svg"] = barChart(
				"p99 latency, ms (lower is better)",
				"ms",
				withP99.map(f => ({ label: f.workload, anchorName: f.anchor, imgmesh: f.imgmeshP99Ms!, anchor: f.anchorP99Ms! }))
			);
		}
	}
	for (const backend of new Set(report.search.map(point => point.backend))) {
		const points = report.search.filter(point => point.backend === backend && point.viewer === "user");
		const queries = [...new Set(points.map(point => point.query))];
		const series = queries.map(query => ({ name: query, points: points.filter(p => p.query === query).map(p => [p.size, p.p50Ms] as [number, number]) }));
		charts[`report-search-${backend}.svg`] = logLineChart(
			`Search p50 against library size, ${backend}, plain user`,
			"images in the library",
			"p50, ms",
			series,
			{ value: 50, label: "goal: 50 ms (phrases: 100 ms)" }
		);
	}
	return charts;
}

const cell = (value: number | null | undefined) => (value === null || value === undefined ? "–" : String(round(value)));

/** report.md: the goals first, then every figure, the lag per workload, the charts. */
export function reportMarkdown(report: Report, context: { machine: Record<string, unknown>; runs: BenchRun[]; quick: boolean; charts: string[] }): string {
	const met = report.goals.filter(g => g.met).length;
	const lines = [
		"# imgmesh benchmark report",
		"",
		"Written by `npm run bench` (bench/run.ts); figures in `latest.json` beside this file; how to run it and what each",
		"workload does: [docs/benchmarks.md](../../docs/benchmarks.md). Every ratio is imgmesh ÷ its anchor measured in the",
		"same run, so load from outside hits both alike; absolute figures depend on that load.",
		"",
		`Machine: ${context.machine.cpus} × ${context.machine.cpuModel}, Node ${context.machine.node}, load average at start ${(context.machine.loadAvgAtStart as number[]).join(" / ")}, at end ${((context.machine.loadAvgAtEnd as number[] | undefined) ?? []).join(" / ")}${context.quick ? ". **Quick mode** (`--quick`): a smoke run, too short for the figures to mean much." : "."}`,
		"",
		"Exit code 1: a bench failed, or found a requirement it checks itself unmet (bench/api.ts: the upload's peak RSS); its figures are still read.",
		"",
		"| bench | exit code | seconds |",
		"|---|---|---|",
		...context.runs.map(run => `| ${run.name} | ${run.exitCode === 0 ? "0" : `**${run.exitCode ?? "killed"}**`} | ${Math.round(run.seconds)} |`),
		"",
		`## Goals: ${met} of ${report.goals.length} met`,
		"",
		"For each goal not met: what the profile says takes the rest, and what was tried, in [docs/benchmarks.md](../../docs/benchmarks.md#goals-not-met).",
		"",
		"| goal | measured | target | ratio to target | met |",
		"|---|---|---|---|---|",
		...report.goals.map(g => `| ${g.goal} | ${cell(g.value)} | ${g.kind === "min" ? "≥" : "≤"} ${g.target} | ${g.ratio} | ${g.met ? "yes" : "**no**"} |`),
		"",
		"## Workloads against their anchors",
		"",
		"Ratio: imgmesh's throughput ÷ the anchor's. CPU: the server's CPU ms per operation, and its ratio the anchor's ÷ imgmesh's (the same sense: 1 is as cheap as the anchor), which moves less with the load than throughput does.",
		"",
		"| workload | anchor | imgmesh | anchor | ratio | CPU ms/op imgmesh / anchor | ratio by CPU | p99 imgmesh / anchor, ms |",
		"|---|---|---|---|---|---|---|---|",
		...report.figures.map(
			f =>
				`| ${f.workload} | ${f.anchor} | ${cell(f.imgmesh)} ${f.unit} | ${cell(f.anchorValue)} ${f.unit} | ${round(f.imgmesh / f.anchorValue)} | ${cell(f.imgmeshCpuMs)} / ${cell(f.anchorCpuMs)} | ${f.imgmeshCpuMs && f.anchorCpuMs ? round(f.anchorCpuMs / f.imgmeshCpuMs) : "–"} | ${cell(f.imgmeshP99Ms)} / ${cell(f.anchorP99Ms)} |`
		),
		"",
		"## Event-loop lag of the imgmesh nodes, per workload",
		"",
		"Sampled by bench/event-loop-lag.ts (perf_hooks.monitorEventLoopDelay, 10 ms resolution, the resolution subtracted) in every node the bench started; the worst node shown.",
		"",
		"| workload | nodes | p50 ms | p99 ms | max ms |",
		"|---|---|---|---|---|",
		...report.lag.map(row => `| ${row.workload} | ${row.nodes} | ${row.p50Ms} | ${row.p99Ms} | ${row.maxMs} |`),
		"",
		"## Charts",
		"",
		...context.charts.map(name => `![${name}](${name})\n`)
	];
	return lines.join("\n") + "\n";
}
