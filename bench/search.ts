/**
 * Search and list latency against the library size (`npm run bench:search`): libraries of 10k,
 * 100k and 1M images on the SQLite repository, and on request on the MongoDB repository (FerretDB
 * v1 on its PostgreSQL handler, started here), each query kind as a plain user (the visibility
 * filter included) and as an admin, page of 24 with its total, as the API asks for it. FerretDB v1
 * took 8-28 s per search already at 10k images (December 2026, docs/benchmarks.md), figures that
 * say nothing of MongoDB's, so the MongoDB run is off by default.
 *
 * Libraries are generated through the repository's insertMany (not timed) and kept between runs:
 * SQLite in BENCH_SEARCH_DIR, one file per size, MongoDB in one database per size. A second run
 * starts measuring at once, and a file made by an older schema is migrated on open, which is also
 * the migration's own test at scale. The content is deterministic: 1,000 owners (a few heavy
 * ones), 10 % private, Zipf-distributed tags and words, half the images with a description, dates
 * over five years.
 *
 * Prints tables and writes bench/results/search-latest.json (p50, p95 and CPU p50 per query kind
 * and size, and the ratio of the largest size to the smallest). Benchmarks are never tests.
 *
 * Environment (defaults in brackets):
 *   BENCH_SEARCH_SIZES [10000,100000,1000000]   library sizes
 *   BENCH_SEARCH_ROUNDS [30]                    measured calls per query kind and viewer
 *   BENCH_SEARCH_DIR [<tmpdir>/imgmesh-bench-search]
 *   BENCH_SEARCH_MONGO_SIZES []                 MongoDB library sizes, e.g. 10000; empty: SQLite only
 *   BENCH_SEARCH_POSTGRESQL_URL [postgres://postgres@127.0.0.1:5432/postgres]   for FerretDB
 */
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Viewer } from "../models/shared/access.ts";
import type { ImageDoc, ImageFilter, ImageRepository } from "../models/images/image.ts";
import { parseSearchQuery } from "../models/images/search-query.ts";
import { MongoImageRepository } from "../models/images/mongo-repository.ts";
import { SqliteImageRepository } from "../models/images/sqlite-repository.ts";
import { dropDatabase, startFerretDb } from "../test/helpers/ferretdb.ts";
import { envInt, machineInfo, percentile, printTable, prng, round, saveResults } from "./lib.ts";

const params = {
	sizes: (process.env.BENCH_SEARCH_SIZES || "10000,100000,1000000").split(",").map(Number),
	rounds: envInt("BENCH_SEARCH_ROUNDS", 30, 1),
	dir: process.env.BENCH_SEARCH_DIR || join(tmpdir(), "imgmesh-bench-search"),
	mongoSizes: (process.env.BENCH_SEARCH_MONGO_SIZES ?? "").split(",").filter(Boolean).map(Number),
	postgresqlUrl: process.env.BENCH_SEARCH_POSTGRESQL_URL || "postgres://postgres@127.0.0.1:5432/postgres",
	pageSize: 24
};

/** Bump when the generated content changes, so stale cached libraries are not reused. */
const GENERATOR_VERSION = 1;
const OWNERS = 1000;
const VOCABULARY = 5000;
const TAG_LABELS = 2000;
const CATEGORIES = 20;
const SPAN_MS = 5 * 365 * 24 * 3600 * 1000;
const START = Date.UTC(2021, 0, 1);
/** Images per insertMany while generating. */
const BATCH = 5000;

/** An index in [0, n) where small ones are far more frequent (roughly Zipf, like real words). */
function zipf(random: () => number, n: number): number {
	return Math.min(n - 1, Math.floor(Math.exp(random() * Math.log(n + 1)) - 1));
}

/** Pronounceable made-up words: "w0" is the most frequent, "w4999" the rarest. */
const SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "ba", "de", "fu", "go", "hi", "ju", "pe"];
function wordOf(index: number): string {
	let word = "";
	for (let n = index + SYLLABLES.length; n > 0; n = Math.floor(n / SYLLABLES.length)) word += SYLLABLES[n % SYLLABLES.length];
	return word;
}

function words(random: () => number, count: number): string {
	return Array.from({ length: count }, () => wordOf(zipf(random, VOCABULARY))).join(" ");
}

/** The i-th of `size` images, created in order over the span, like a library that grew over five years. */
function imageOf(i: number, size: number): ImageDoc {
	const random = prng(i * 2654435761);
	// A tenth of the images belong to ten heavy owners.
	const owner = random() < 0.1 ? Math.floor(random() * 10) : Math.floor(random() * OWNERS);
	const createdAt = new Date(START + Math.floor((i / size) * SPAN_MS)).toISOString();
	const tagCount = 1 + Math.floor(random() * 5);
	const labels = new Set(Array.from({ length: tagCount }, () => `t${wordOf(zipf(random, TAG_LABELS))}`));
	return {
		id: `img-${String(i).padStart(8, "0")}`,
		owner: `u-${owner}`,
		ownerName: `user${owner}`,
		name: `${words(random, 2 + Math.floor(random() * 3))}, ${i}`,
		description: random() < 0.5 ? `${words(random, 5 + Math.floor(random() * 10))}.` : "",
		filename: `photo-${i}.jpg`,
		contentType: "image/jpeg",
		format: "jpeg",
		size: 50_000 + Math.floor(random() * 5_000_000),
		width: 1600,
		height: 1067,
		sha256: i.toString(16).padStart(64, "0"),
		encrypted: false,
		visibility: random() < 0.1 ? "private" : "public",
		showMetadata: false,
		category: random() < 0.8 ? `c${Math.floor(random() * CATEGORIES)}` : null,
		tags: [...labels].map(label => ({ label, source: "user" as const })),
		views: Math.floor(random() * 1000),
		status: "ready",
		statusReason: null,
		metadata: null,
		renditions: [],
		blob: `blob-${i}`,
		createdAt,
		updatedAt: createdAt,
		trashedAt: null
	};
}

/** Fills an empty repository with the library of `size` images. */
async function generate(repository: ImageRepository, size: number): Promise<void> {
	const started = performance.now();
	for (let first = 0; first < size; first += BATCH) {
		const count = Math.min(BATCH, size - first);
		await repository.insertMany(Array.from({ length: count }, (_, k) => imageOf(first + k, size)));
		if ((first + count) % 100_000 === 0) console.log(`  generated ${first + count} of ${size} (${round((performance.now() - started) / 1000, 0)} s)`);
	}
}

/** The SQLite library of `size` images, generated once into its own file and reused afterwards. */
async function sqliteLibrary(size: number): Promise<ImageRepository> {
	mkdirSync(params.dir, { recursive: true });
	const file = join(params.dir, `library-v${GENERATOR_VERSION}-${size}.db`);
	if (!existsSync(file)) {
		const partial = `${file}.partial`;
		const repository = new SqliteImageRepository(partial);
		await generate(repository, size);
		await repository.close();
		renameSync(partial, file);
	}
	return new SqliteImageRepository(file);
}

/** The MongoDB library of `size` images in its own database, generated unless complete. */
async function mongoLibrary(url: string, size: number): Promise<ImageRepository> {
	const databaseUrl = `${url}/library_v${GENERATOR_VERSION}_${size}`;
	let repository: ImageRepository = new MongoImageRepository({ url: databaseUrl, timeoutMs: 60_000 });
	// Images are generated in id order: the last one exists only in a complete library.
	if (!(await repository.get(imageOf(size - 1, size).id))) {
		await repository.close();
		await dropDatabase(databaseUrl);
		repository = new MongoImageRepository({ url: databaseUrl, timeoutMs: 60_000 });
		await generate(repository, size);
	}
	return repository;
}

interface QueryKind {
	name: string;
	/** The filter of the n-th call: a few different values per kind, so no one answer is cached. */
	filter(n: number, viewer: Viewer): ImageFilter;
}

/** Values that match about 1 % (head of the Zipf) down to rare ones. */
const SAMPLE_WORDS = [0, 3, 10, 40, 200].map(wordOf);
const SAMPLE_TAGS = [0, 2, 10, 50, 300].map(index => `t${wordOf(index)}`);

function page(viewer: Viewer, extra: Partial<ImageFilter> = {}, q?: string): ImageFilter {
	return { viewer, sort: "-createdAt", limit: params.pageSize, ...extra, ...(q === undefined ? {} : { query: parseSearchQuery(q) }) };
}

const pick = <T>(values: T[], n: number): T => values[n % values.length]!;

const KINDS: QueryKind[] = [
	{ name: "list page", filter: (_, viewer) => page(viewer) },
	{ name: "list page, most viewed", filter: (_, viewer) => page(viewer, { sort: "-views" }) },
	{ name: "tag:", filter: (n, viewer) => page(viewer, {}, `tag:${pick(SAMPLE_TAGS, n)}`) },
	{ name: "category:", filter: (n, viewer) => page(viewer, {}, `category:c${n % CATEGORIES}`) },
	{ name: "owner:", filter: (n, viewer) => page(viewer, { owner: `u-${pick([3, 42, 500], n)}` }) },
	{ name: "date:", filter: (n, viewer) => page(viewer, {}, `date:${2021 + (n % 5)}-0${1 + (n % 9)}`) },
	{ name: "free word", filter: (n, viewer) => page(viewer, {}, pick(SAMPLE_WORDS, n)) },
	{ name: "two free words", filter: (n, viewer) => page(viewer, {}, `${pick(SAMPLE_WORDS, n)} ${pick(SAMPLE_WORDS, n + 1)}`) },
	{ name: "phrase", filter: (n, viewer) => page(viewer, {}, `"${pick(SAMPLE_WORDS, n)} ${pick(SAMPLE_WORDS, n + 2)}"`) },
	{ name: "phrase, part of a word", filter: (n, viewer) => page(viewer, {}, `"${pick(SAMPLE_WORDS, n).slice(1)} ${pick(SAMPLE_WORDS, n + 2).slice(0, 3)}"`) },
	{ name: "next page (cursor)", filter: (_, viewer) => page(viewer) }
];

const VIEWERS: { name: string; viewer: Viewer }[] = [
	{ name: "user", viewer: { id: "u-7", role: "user" } },
	{ name: "admin", viewer: { id: "u-admin", role: "admin" } }
];

interface Latency {
	p50: number;
	p95: number;
	/** Median CPU time of the process per call: steadier than wall time on a shared machine. */
	cpuP50: number;
	total: number;
	totalIsEstimate: boolean;
}

async function measure(repository: ImageRepository, kind: QueryKind, viewer: Viewer): Promise<Latency> {
	const times: number[] = [];
	const cpuTimes: number[] = [];
	let last = { total: 0, totalIsEstimate: false };
	const cursorOf = async (filter: ImageFilter) => (await repository.search(filter)).nextCursor ?? undefined;
	for (let n = -3; n < params.rounds; n++) {
		const filter = kind.filter(n + 3, viewer);
		// The next page starts at a cursor taken outside the timed call.
		if (kind.name === "next page (cursor)") filter.cursor = await cursorOf(filter);
		const cpu0 = process.cpuUsage();
		const t0 = performance.now();
		const result = await repository.search(filter);
		const elapsed = performance.now() - t0;
		const cpu = process.cpuUsage(cpu0);
		// The first calls warm the page cache and the statements; they are not counted.
		if (n >= 0) {
			times.push(elapsed);
			cpuTimes.push((cpu.user + cpu.system) / 1000);
		}
		last = { total: result.total, totalIsEstimate: result.totalIsEstimate };
	}
	const sorted = Float64Array.from(times).sort();
	const cpuSorted = Float64Array.from(cpuTimes).sort();
	return { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), cpuP50: round(percentile(cpuSorted, 50)), ...last };
}

type Results = Record<string, Record<string, Record<string, Latency>>>;

/** Every query kind for every viewer, on the library of each size. */
async function run(backend: string, sizes: number[], library: (size: number) => Promise<ImageRepository>): Promise<Results> {
	const results: Results = {};
	for (const size of sizes) {
		console.log(`${backend}: library of ${size} images ...`);
		const repository = await library(size);
		results[size] = {};
		for (const { name, viewer } of VIEWERS) {
			results[size][name] = {};
			for (const kind of KINDS) {
				results[size][name][kind.name] = await measure(repository, kind, viewer);
				console.log(`  ${name}: ${kind.name} p50 ${results[size][name][kind.name]!.p50} ms`);
			}
		}
		await repository.close();
	}
	return results;
}

/** p50 at the largest size over p50 at the smallest, per viewer and query kind. */
function ratiosOf(results: Results, sizes: number[]): Record<string, Record<string, number>> {
	const [smallest, largest] = [String(sizes[0]), String(sizes.at(-1))];
	return Object.fromEntries(
		VIEWERS.map(({ name }) => [name, Object.fromEntries(KINDS.map(kind => [kind.name, round(results[largest]![name]![kind.name]!.p50 / results[smallest]![name]![kind.name]!.p50)]))])
	);
}

function print(backend: string, results: Results, sizes: number[], ratios: Record<string, Record<string, number>>): void {
	const largest = sizes.at(-1)!;
	for (const { name } of VIEWERS) {
		printTable(
			`${backend}, as ${name}: p50 / p95 ms (CPU p50 ms) per library size (page of ${params.pageSize} with its total; ratio = p50 at ${largest} / at ${sizes[0]})`,
			["query", ...sizes.map(String), "ratio", `total at ${largest}`],
			KINDS.map(kind => {
				const at = (size: number) => results[size]![name]![kind.name]!;
				const total = at(largest);
				return [kind.name, ...sizes.map(size => `${at(size).p50} / ${at(size).p95} (${at(size).cpuP50})`), ratios[name]![kind.name]!, `${total.total}${total.totalIsEstimate ? "+" : ""}`];
			})
		);
	}
}

async function main(): Promise<void> {
	const sqlite = await run("SQLite", params.sizes, sqliteLibrary);
	// Not the directory nor the database URL: machine paths stay out of the committed results.
	const { sizes, rounds, mongoSizes, pageSize } = params;
	const saved: Record<string, unknown> = { params: { sizes, rounds, mongoSizes, pageSize }, machine: machineInfo(), sqlite: { results: sqlite, ratios: ratiosOf(sqlite, sizes) } };
	print("SQLite", sqlite, params.sizes, ratiosOf(sqlite, params.sizes));
	if (params.mongoSizes.length > 0) {
		const ferretDb = await startFerretDb({ postgresqlUrl: params.postgresqlUrl });
		try {
			const mongo = await run("MongoDB (FerretDB on PostgreSQL)", params.mongoSizes, size => mongoLibrary(ferretDb.url, size));
			saved.mongo = { results: mongo, ratios: ratiosOf(mongo, params.mongoSizes) };
			print("MongoDB (FerretDB on PostgreSQL)", mongo, params.mongoSizes, ratiosOf(mongo, params.mongoSizes));
		} finally {
			await ferretDb.stop();
		}
	}
	const path = saveResults("search", saved);
	console.log(`\nSaved ${path}`);
}

await main();
