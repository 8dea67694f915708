/**
 * ImageRepository on node:sqlite (embedded mode). Categories share its schema and file
 * (models/categories/sqlite-repository.ts).
 *
 * Search runs on side tables kept in step with each image row inside the same transaction:
 * image_tags (one row per distinct tag label) and image_words (one row per distinct keyword of
 * the searchable fields, see searchIndexOf), plus the normalized search_text column for phrases,
 * indexed by trigrams in image_text (FTS5, kept in step by triggers). How a search uses them so
 * that it costs the same in a library of a million images as in one of ten thousand: see search.
 * Every value reaches SQL as a bound parameter; the only SQL assembled at run time joins fixed
 * fragments from this file.
 */
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { ConflictError } from "../shared/errors.ts";
import { nowIso } from "../shared/ids.ts";
import { definedFields } from "../shared/fields.ts";
import { COUNTED_TOTAL_LIMIT, type Cursor, EXACT_TOTAL_LIMIT, pageOf, pageRequest, type SortSpec, totalOf } from "./paging.ts";
import { accessConditions, searchConditions, type SearchCondition } from "./search-filter.ts";
import type { Viewer } from "../shared/access.ts";
import type {
	CountAndBytes,
	ImageDoc,
	ImageFilter,
	ImagePatch,
	ImageRepository,
	ImageMetadata,
	ImageStats,
	ImageStatus,
	Rendition,
	SearchPage,
	StatusChange,
	Tag
} from "./image.ts";
import { searchIndexOf } from "./search-query.ts";
import type { SearchableField, SearchIndex } from "./search-query.ts";
import { closeDatabase, migrate, openDatabase, StatementCache, transaction, uniqueViolationOf } from "../db/sqlite.ts";

/** Schema versions, in order (see migrate). Append; never edit a released step. */
export const IMAGE_MIGRATIONS = [
	`CREATE TABLE images (
		id TEXT PRIMARY KEY,
		owner TEXT NOT NULL,
		owner_name TEXT NOT NULL,
		name TEXT NOT NULL,
		description TEXT NOT NULL,
		filename TEXT NOT NULL,
		content_type TEXT NOT NULL,
		format TEXT NOT NULL,
		size INTEGER NOT NULL,
		width INTEGER NOT NULL,
		height INTEGER NOT NULL,
		sha256 TEXT NOT NULL,
		encrypted INTEGER NOT NULL,
		visibility TEXT NOT NULL,
		category TEXT,
		tags TEXT NOT NULL, -- JSON array of Tag; image_tags indexes the labels
		views INTEGER NOT NULL,
		status TEXT NOT NULL,
		blob TEXT NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL,
		search_text TEXT NOT NULL
	);
	-- Sort indexes end with id, the tie-breaker, so keyset pages are index range scans.
	CREATE INDEX images_created ON images (created_at, id);
	CREATE INDEX images_views ON images (views, id);
	CREATE INDEX images_name ON images (name, id);
	CREATE INDEX images_owner ON images (owner, created_at, id);
	CREATE INDEX images_owner_name ON images (owner_name);
	-- Anonymous browsing (public, newest first) reads this index alone; visibility by itself
	-- has too few values to be worth an index.
	CREATE INDEX images_visibility ON images (visibility, created_at, id);
	CREATE INDEX images_category ON images (category);
	CREATE INDEX images_sha256 ON images (sha256);

	CREATE TABLE image_tags (
		label TEXT NOT NULL,
		image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
		PRIMARY KEY (label, image_id)
	) WITHOUT ROWID;
	CREATE INDEX image_tags_image ON image_tags (image_id);

	CREATE TABLE image_words (
		word TEXT NOT NULL,
		image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
		PRIMARY KEY (word, image_id)
	) WITHOUT ROWID;
	CREATE INDEX image_words_image ON image_words (image_id);

	CREATE TABLE categories (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		-- name.toLowerCase() from JS: SQLite's own lower() only knows ASCII.
		name_key TEXT NOT NULL UNIQUE,
		description TEXT NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);`,
	// Durable jobs: the ingest pipeline's results and why an image failed.
	`ALTER TABLE images ADD COLUMN status_reason TEXT;
	ALTER TABLE images ADD COLUMN metadata TEXT; -- JSON ImageMetadata, null until processed
	ALTER TABLE images ADD COLUMN renditions TEXT NOT NULL DEFAULT '[]'; -- JSON array of Rendition
	-- The reconciler's scan for stuck work; few rows are ever processing, so the index stays tiny.
	CREATE INDEX images_processing ON images (updated_at, id) WHERE status = 'processing';`,
	// Search flat in the library size (docs/benchmarks.md, "Search"). A user's pages walk the
	// public images and their own private ones as two ordered branches (visibleBranches), so the
	// public branch needs an ordered index per sort; a category page walks its own index in order.
	// image_text indexes search_text by trigrams for phrases, kept in step by triggers and filled
	// here for the existing rows. It maps images by rowid, which VACUUM may renumber on a table
	// without an INTEGER PRIMARY KEY: after a VACUUM, run INSERT INTO image_text(image_text)
	// VALUES ('rebuild').
	`CREATE INDEX images_visibility_views ON images (visibility, views, id);
	CREATE INDEX images_visibility_name ON images (visibility, name, id);
	-- The user's own branch: their non-public images in each sort order (an owner of thousands of
	-- public images would otherwise sort them all to find a page of private ones).
	CREATE INDEX images_unlisted_created ON images (owner, created_at, id) WHERE visibility <> 'public';
	CREATE INDEX images_unlisted_views ON images (owner, views, id) WHERE visibility <> 'public';
	CREATE INDEX images_unlisted_name ON images (owner, name, id) WHERE visibility <> 'public';
	DROP INDEX images_category;
	CREATE INDEX images_category ON images (category, created_at, id);

	CREATE VIRTUAL TABLE image_text USING fts5(search_text, content = 'images', content_rowid = 'rowid', tokenize = 'trigram');
	CREATE TRIGGER image_text_insert AFTER INSERT ON images BEGIN
		INSERT INTO image_text (rowid, search_text) VALUES (new.rowid, new.search_text);
	END;
	CREATE TRIGGER image_text_delete AFTER DELETE ON images BEGIN
		INSERT INTO image_text (image_text, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
	END;
	CREATE TRIGGER image_text_update AFTER UPDATE OF search_text ON images BEGIN
		INSERT INTO image_text (image_text, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
		INSERT INTO image_text (rowid, search_text) VALUES (new.rowid, new.search_text);
	END;
	INSERT INTO image_text (image_text) VALUES ('rebuild');`,
	// The trash: existing images are not in it (NULL). Listings filter on the column as they walk
	// their own indexes; the trash's page and the retention sweep walk this small partial index.
	`ALTER TABLE images ADD COLUMN trashed_at TEXT;
	CREATE INDEX images_trashed ON images (trashed_at, id) WHERE trashed_at IS NOT NULL;`,
	// Privacy-safe copies (docs/sharing.md): guests get the original's metadata only when the owner says so.
	`ALTER TABLE images ADD COLUMN show_metadata INTEGER NOT NULL DEFAULT 0;`,
	// Every listing leaves the trash out (trashed_at IS NULL) as it walks one of these indexes: with
	// trashed_at in each, a page's capped count (up to 1,001 matches) reads the index alone instead
	// of a table row per match (a plain user's list page at 1M images: 45 ms -> under 1 ms). The
	// partial ones hold visibility too, the category's visibility and owner: SQLite reads a row for
	// any column a condition names that its index lacks.
	`DROP INDEX images_created;
	CREATE INDEX images_created ON images (created_at, id, trashed_at);
	DROP INDEX images_views;
	CREATE INDEX images_views ON images (views, id, trashed_at);
	DROP INDEX images_name;
	CREATE INDEX images_name ON images (name, id, trashed_at);
	DROP INDEX images_owner;
	CREATE INDEX images_owner ON images (owner, created_at, id, trashed_at);
	DROP INDEX images_visibility;
	CREATE INDEX images_visibility ON images (visibility, created_at, id, trashed_at);
	DROP INDEX images_visibility_views;
	CREATE INDEX images_visibility_views ON images (visibility, views, id, trashed_at);
	DROP INDEX images_visibility_name;
	CREATE INDEX images_visibility_name ON images (visibility, name, id, trashed_at);
	DROP INDEX images_unlisted_created;
	CREATE INDEX images_unlisted_created ON images (owner, created_at, id, visibility, trashed_at) WHERE visibility <> 'public';
	DROP INDEX images_unlisted_views;
	CREATE INDEX images_unlisted_views ON images (owner, views, id, visibility, trashed_at) WHERE visibility <> 'public';
	DROP INDEX images_unlisted_name;
	CREATE INDEX images_unlisted_name ON images (owner, name, id, visibility, trashed_at) WHERE visibility <> 'public';
	DROP INDEX images_category;
	CREATE INDEX images_category ON images (category, created_at, id, visibility, owner, trashed_at);`
];

/** The images database, migrated; categories live in it too (models/categories/sqlite-repository.ts). */
export function openImagesDatabase(file: string): DatabaseSync {
	const db = openDatabase(file);
	migrate(db, "images", IMAGE_MIGRATIONS);
	return db;
}

// ---------------------------------------------------------------------------------------------
// Images: row mapping

interface ImageRow {
	id: string;
	owner: string;
	owner_name: string;
	name: string;
	description: string;
	filename: string;
	content_type: string;
	format: string;
	size: number;
	width: number;
	height: number;
	sha256: string;
	encrypted: number;
	visibility: string;
	show_metadata: number;
	category: string | null;
	tags: string;
	views: number;
	status: string;
	status_reason: string | null;
	metadata: string | null;
	renditions: string;
	blob: string;
	created_at: string;
	updated_at: string;
	trashed_at: string | null;
}

/** The ImageRow columns, for SELECT and RETURNING (search_text stays in the database). */
const IMAGE_COLUMNS =
	"id, owner, owner_name, name, description, filename, content_type, format, size, width, height, sha256, " +
	"encrypted, visibility, show_metadata, category, tags, views, status, status_reason, metadata, renditions, blob, created_at, updated_at, trashed_at";

function toRow(doc: ImageDoc): ImageRow {
	return {
		id: doc.id,
		owner: doc.owner,
		owner_name: doc.ownerName,
		name: doc.name,
		description: doc.description,
		filename: doc.filename,
		content_type: doc.contentType,
		format: doc.format,
		size: doc.size,
		width: doc.width,
		height: doc.height,
		sha256: doc.sha256,
		encrypted: doc.encrypted ? 1 : 0,
		visibility: doc.visibility,
		show_metadata: doc.showMetadata ? 1 : 0,
		category: doc.category,
		tags: JSON.stringify(doc.tags),
		views: doc.views,
		status: doc.status,
		status_reason: doc.statusReason,
		metadata: doc.metadata && JSON.stringify(doc.metadata),
		renditions: JSON.stringify(doc.renditions),
		blob: doc.blob,
		created_at: doc.createdAt,
		updated_at: doc.updatedAt,
		trashed_at: doc.trashedAt
	};
}

/** The enum-typed columns only ever hold values written from an ImageDoc. */
function fromRow(row: ImageRow): ImageDoc {
	return {
		id: row.id,
		owner: row.owner,
		ownerName: row.owner_name,
		name: row.name,
		description: row.description,
		filename: row.filename,
		contentType: row.content_type,
		format: row.format,
		size: row.size,
		width: row.width,
		height: row.height,
		sha256: row.sha256,
		encrypted: row.encrypted === 1,
		visibility: row.visibility as ImageDoc["visibility"],
		showMetadata: row.show_metadata === 1,
		category: row.category,
		tags: JSON.parse(row.tags) as Tag[],
		views: row.views,
		status: row.status as ImageDoc["status"],
		statusReason: row.status_reason,
		metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as ImageMetadata),
		renditions: JSON.parse(row.renditions) as Rendition[],
		blob: row.blob,
		createdAt: row.created_at,
		updatedAt: row.updated_at,
		trashedAt: row.trashed_at
	};
}

// ---------------------------------------------------------------------------------------------
// Images: search SQL

/** A conjunction of SQL conditions with their parameters, in placeholder order. */
interface Conditions {
	clauses: string[];
	params: SQLInputValue[];
	/** FTS5 queries of the phrases the clauses look up, the n-th as the table `matched_n` (withSql). */
	textMatches: string[];
}

const NO_CONDITIONS: Conditions = { clauses: [], params: [], textMatches: [] };

function and(conditions: Conditions, clause: string, ...params: SQLInputValue[]): Conditions {
	return { ...conditions, clauses: [...conditions.clauses, clause], params: [...conditions.params, ...params] };
}

/**
 * The phrase look-ups as materialized common table expressions: each runs once per statement,
 * however many branches (visibleBranches) use it.
 */
function withSql(conditions: Conditions): string {
	if (conditions.textMatches.length === 0) return "";
	const tables = conditions.textMatches.map((_, n) => `matched_${n} AS MATERIALIZED (SELECT rowid FROM image_text WHERE image_text MATCH ?)`);
	return `WITH ${tables.join(", ")}`;
}

function whereSql(conditions: Conditions): string {
	return conditions.clauses.length === 0 ? "" : `WHERE ${conditions.clauses.join(" AND ")}`;
}

function placeholders(count: number): string {
	return Array.from({ length: count }, () => "?").join(", ");
}

/** The highest code point: prefix + it is above every string that starts with prefix. */
const MAX_CHAR = "\u{10FFFF}";

/** Columns of the equality conditions but visibility (visibilityColumn): fixed names, never input. */
const EQUALS_COLUMNS: Record<Exclude<Extract<SearchCondition, { kind: "equals" }>["field"], "visibility">, string> = {
	category: "i.category",
	owner: "i.owner"
};

/**
 * How a search finds its rows. "narrow": one condition, the lead (leadOf), is an index lookup
 * that yields its images, the other tags, words and phrases are checked on each of those, and
 * the matches are sorted; right when few images match. "walk": the page walks the sort index in
 * order, checks each image as it passes and stops at a full page; right when many match, where
 * sorting every match would cost the library's size. The capped count decides (search).
 */
type Plan = { kind: "narrow"; lead: SearchCondition | null } | { kind: "walk" };

/** With no lead (null), every lookup lists its images and SQLite intersects the lists. */
function leads(plan: Plan, condition: SearchCondition): boolean {
	return plan.kind === "narrow" && (plan.lead === null || plan.lead === condition);
}

/** How many of the newest images (by rowid) a count of large lookups checks first (countMatches). */
const RECENT_WINDOW = 20_000;

/** The shortest phrase the trigram index can look up; shorter ones are only checked by instr. */
const MIN_INDEXED_PHRASE = 3;

function isIndexedPhrase(condition: SearchCondition): boolean {
	return (condition.kind === "phrase" || condition.kind === "fieldPhrase") && [...condition.phrase].length >= MIN_INDEXED_PHRASE;
}

/** A phrase as one FTS5 string: quotes doubled, so nothing in it is read as query syntax. */
function ftsPhrase(phrase: string): string {
	return `"${phrase.replaceAll('"', '""')}"`;
}

/**
 * The images a tag or word condition holds for, as SQL that either lists them (`i.id IN`, for
 * the lead) or checks one image (`EXISTS`, correlated, so it never lists them all).
 */
function withLookup(where: Conditions, lead: boolean, table: "image_tags" | "image_words", test: string, ...params: SQLInputValue[]): Conditions {
	return lead
		? and(where, `i.id IN (SELECT image_id FROM ${table} WHERE ${test})`, ...params)
		: and(where, `EXISTS (SELECT 1 FROM ${table} WHERE image_id = i.id AND ${test})`, ...params);
}

/** The lookup of a tag or word condition, or null for conditions without one. */
function lookupOf(condition: SearchCondition): { table: "image_tags" | "image_words"; test: string; params: SQLInputValue[] } | null {
	switch (condition.kind) {
		case "anyTag":
			return { table: "image_tags", test: `label IN (${placeholders(condition.labels.length)})`, params: condition.labels };
		case "word":
			return { table: "image_words", test: "word = ?", params: [condition.word] };
		case "wordPrefix":
			return { table: "image_words", test: "word >= ? AND word < ?", params: [condition.prefix, condition.prefix + MAX_CHAR] };
		default:
			return null;
	}
}

/**
 * instr decides (the trigram tokenizer folds case its own way, so its matches are a superset of
 * ours); as the lead, the trigram index first finds the images that contain the phrase at all.
 */
function withPhrase(where: Conditions, textSql: string, phrase: string, lead: boolean): Conditions {
	const found = and(where, `instr(${textSql}, ?) > 0`, phrase);
	if (!lead || [...phrase].length < MIN_INDEXED_PHRASE) return found;
	const indexed = and(found, `i.rowid IN matched_${where.textMatches.length}`);
	return { ...indexed, textMatches: [...where.textMatches, ftsPhrase(phrase)] };
}

/** `visibility`: the visibility column as this search may use it (visibilityColumn). */
function withCondition(where: Conditions, condition: SearchCondition, plan: Plan, visibility: string): Conditions {
	switch (condition.kind) {
		case "equals":
			return and(where, `${condition.field === "visibility" ? visibility : EQUALS_COLUMNS[condition.field]} = ?`, condition.value);
		case "trashed":
			return and(where, condition.trashed ? "i.trashed_at IS NOT NULL" : "i.trashed_at IS NULL");
		case "publicOrOwnedBy":
			return and(where, "(i.visibility = ? OR i.owner = ?)", "public", condition.owner);
		case "anyTag":
		case "word":
		case "wordPrefix": {
			const { table, test, params } = lookupOf(condition)!;
			return withLookup(where, leads(plan, condition), table, test, ...params);
		}
		case "phrase":
			return withPhrase(where, "i.search_text", condition.phrase, leads(plan, condition));
		case "fieldPhrase":
			return withPhrase(where, FIELD_TEXT[condition.field], condition.phrase, leads(plan, condition));
		case "created": {
			const from = condition.from ? and(where, "i.created_at >= ?", condition.from) : where;
			return condition.before ? and(from, "i.created_at < ?", condition.before) : from;
		}
		case "idIn":
			// One JSON parameter whatever the length of the list: primary key look-ups.
			return and(where, "i.id IN (SELECT value FROM json_each(?))", JSON.stringify(condition.ids));
	}
}

/** The rest of search_text after its first line. */
const AFTER_NAME = "substr(i.search_text, instr(i.search_text, char(10)) + 1)";

/** One field's line of search_text (FIELD_LINES: the name first, the description second). */
const FIELD_TEXT: Record<SearchableField, string> = {
	name: "substr(i.search_text, 1, instr(i.search_text, char(10)) - 1)",
	description: `substr(${AFTER_NAME}, 1, instr(${AFTER_NAME}, char(10)) - 1)`
};

function compile(conditions: SearchCondition[], plan: Plan = { kind: "walk" }): Conditions {
	const visibility = visibilityColumn(conditions);
	return conditions.reduce((where, condition) => withCondition(where, condition, plan, visibility), NO_CONDITIONS);
}

/**
 * The search as branches whose union is the result. A user's "public or mine" becomes two
 * disjoint branches, public images and the user's other ones, each an equality that leads an
 * ordered index: an OR of the two would make SQLite collect and sort every visible image.
 */
function visibleBranches(conditions: SearchCondition[], plan: Plan, visibility = visibilityColumn(conditions)): Conditions[] {
	const access = conditions.find(condition => condition.kind === "publicOrOwnedBy");
	const rest = compile(
		conditions.filter(condition => condition !== access),
		plan
	);
	if (!access) return [rest];
	// 'public' as a literal in the second branch: only then can SQLite use the images_unlisted_*
	// partial indexes, whose WHERE clause it must see implied.
	return [and(rest, `${visibility} = ?`, "public"), and(rest, "i.owner = ? AND i.visibility <> 'public'", access.owner)];
}

/**
 * The visibility column, made unusable by indexes (unary +) when a category, owner, date or id-list
 * condition can lead instead: those are always narrower than "public", but SQLite's sampled
 * statistics (PRAGMA optimize) can rate them alike and pick the visibility index.
 */
function visibilityColumn(conditions: SearchCondition[]): string {
	const narrower = conditions.some(
		condition => (condition.kind === "equals" && condition.field !== "visibility") || condition.kind === "created" || condition.kind === "idIn"
	);
	return narrower ? "+i.visibility" : "i.visibility";
}

/**
 * The branches' rows as one SELECT (UNION ALL: the branches never share a row), with the WITH
 * clause that must open the statement; `params` are in placeholder order, the WITH clause's first.
 * The branches derive from the same conditions, so they share their phrase look-ups.
 */
function unionOf(branches: Conditions[], columns: string): { withSql: string; sql: string; params: SQLInputValue[] } {
	return {
		withSql: withSql(branches[0]!),
		sql: branches.map(branch => `SELECT ${columns} FROM images i ${whereSql(branch)}`).join(" UNION ALL "),
		params: [...branches[0]!.textMatches, ...branches.flatMap(branch => branch.params)]
	};
}

/** The column of each sort field: fixed names, never input. */
const SORT_COLUMNS: Record<SortSpec["field"], string> = { createdAt: "created_at", views: "views", name: "name", trashedAt: "trashed_at" };

/** Names the result columns, which a compound SELECT can only be ordered by. */
function orderBySql(spec: SortSpec): string {
	const direction = spec.descending ? "DESC" : "ASC";
	return `ORDER BY ${SORT_COLUMNS[spec.field]} ${direction}, id ${direction}`;
}

/** Rows strictly after the cursor's row in the sort order: a row value comparison. */
function afterCursor(where: Conditions, spec: SortSpec, cursor: Cursor): Conditions {
	return and(where, `(i.${SORT_COLUMNS[spec.field]}, i.id) ${spec.descending ? "<" : ">"} (?, ?)`, cursor.value, cursor.id);
}

// ---------------------------------------------------------------------------------------------
// Images: repository

/** What each stats() grouping groups by: fixed SQL expressions, never input. */
const STAT_GROUPS = {
	byFormat: "i.format",
	byCategory: "COALESCE(i.category, 'none')",
	byVisibility: "i.visibility"
} as const;

const TOP_TAGS = 10;

/** A plain object: node:sqlite rows have a null prototype. */
function countAndBytes(row: CountAndBytes): CountAndBytes {
	return { count: row.count, bytes: row.bytes };
}

export class SqliteImageRepository implements ImageRepository {
	private readonly db: DatabaseSync;
	private readonly statements: StatementCache;

	constructor(file: string) {
		this.db = openImagesDatabase(file);
		this.statements = new StatementCache(this.db);
	}

	async insert(doc: ImageDoc): Promise<void> {
		transaction(this.db, () => this.insertRow(doc));
	}

	async insertMany(docs: ImageDoc[]): Promise<void> {
		transaction(this.db, () => {
			for (const doc of docs) this.insertRow(doc);
		});
	}

	async get(id: string): Promise<ImageDoc | null> {
		return this.find(id);
	}

	async update(id: string, patch: ImagePatch): Promise<ImageDoc | null> {
		return transaction(this.db, () => {
			const current = this.find(id);
			return current && this.save({ ...current, ...definedFields(patch), updatedAt: nowIso() });
		});
	}

	async remove(id: string, options: { onlyTrashed?: boolean } = {}): Promise<ImageDoc | null> {
		// The side tables follow through ON DELETE CASCADE.
		const onlyTrashed = options.onlyTrashed ? " AND trashed_at IS NOT NULL" : "";
		const row = this.statements.get(`DELETE FROM images WHERE id = ?${onlyTrashed} RETURNING ${IMAGE_COLUMNS}`).get(id);
		return row ? fromRow(row as unknown as ImageRow) : null;
	}

	async listByOwner(owner: string): Promise<ImageDoc[]> {
		return this.all(`SELECT ${IMAGE_COLUMNS} FROM images i WHERE i.owner = ? ORDER BY i.created_at, i.id`, [owner]);
	}

	async incrementViews(id: string, by = 1): Promise<number | null> {
		const row = this.statements.get("UPDATE images SET views = views + ? WHERE id = ? RETURNING views").get(by, id);
		return row ? (row as { views: number }).views : null;
	}

	/**
	 * Counts first, no further than COUNTED_TOTAL_LIMIT, from the narrowest index lookups. Few
	 * matches: the page sorts them. Many: the page walks the sort index and stops when full, which
	 * with that many matches is soon (see Plan). Either way no step reads more than about
	 * EXACT_TOTAL_LIMIT images, whatever the library's size.
	 */
	async search(filter: ImageFilter): Promise<SearchPage<ImageDoc>> {
		const { spec, after } = pageRequest(filter);
		const conditions = searchConditions(filter);
		const narrow: Plan = { kind: "narrow", lead: this.leadOf(conditions) };
		const counted = this.countMatches(conditions, narrow);
		const plan: Plan = counted > EXACT_TOTAL_LIMIT ? { kind: "walk" } : narrow;
		const branches = visibleBranches(conditions, plan).map(branch => (after ? afterCursor(branch, spec, after) : branch));
		const union = unionOf(branches, IMAGE_COLUMNS);
		const matches = this.all(`${union.withSql} ${union.sql} ${orderBySql(spec)} LIMIT ?`, [...union.params, filter.limit + 1]);
		return { ...pageOf(matches, filter, spec), ...totalOf(counted) };
	}

	async existingTags(labels: string[], viewer: Viewer): Promise<string[]> {
		if (labels.length === 0) return [];
		const where = and(compile(accessConditions(viewer)), `t.label IN (${placeholders(labels.length)})`, ...labels);
		const rows = this.statements.get(`SELECT DISTINCT t.label FROM image_tags t JOIN images i ON i.id = t.image_id ${whereSql(where)}`).all(...where.params);
		return (rows as unknown as { label: string }[]).map(row => row.label);
	}

	async existingSha256(digests: string[]): Promise<string[]> {
		if (digests.length === 0) return [];
		const rows = this.statements.get(`SELECT DISTINCT sha256 FROM images WHERE sha256 IN (${placeholders(digests.length)})`).all(...digests);
		return (rows as unknown as { sha256: string }[]).map(row => row.sha256);
	}

	async stats(viewer: Viewer): Promise<ImageStats> {
		const visible = compile(accessConditions(viewer));
		const totals = this.statements
			.get(`SELECT COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes, COALESCE(SUM(views), 0) AS views FROM images i ${whereSql(visible)}`)
			.get(...visible.params) as unknown as CountAndBytes & { views: number };
		const encrypted = and(visible, "i.encrypted = 1");
		const encryptedTotals = this.statements
			.get(`SELECT COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM images i ${whereSql(encrypted)}`)
			.get(...encrypted.params) as unknown as CountAndBytes;
		const topTags = this.statements
			.get(`SELECT t.label, COUNT(*) AS count FROM image_tags t JOIN images i ON i.id = t.image_id ${whereSql(visible)} GROUP BY t.label ORDER BY count DESC, t.label LIMIT ?`)
			.all(...visible.params, TOP_TAGS) as unknown as ImageStats["topTags"];
		return {
			images: countAndBytes(totals),
			byFormat: this.countsBy(STAT_GROUPS.byFormat, visible),
			byCategory: this.countsBy(STAT_GROUPS.byCategory, visible),
			byVisibility: this.countsBy(STAT_GROUPS.byVisibility, visible),
			encrypted: countAndBytes(encryptedTotals),
			totalViews: totals.views,
			topTags: topTags.map(({ label, count }) => ({ label, count }))
		};
	}

	async clearCategory(categoryId: string): Promise<number> {
		// Through save(), because the category id is part of the search index.
		return transaction(this.db, () => {
			const docs = this.all(`SELECT ${IMAGE_COLUMNS} FROM images i WHERE i.category = ?`, [categoryId]);
			const now = nowIso();
			for (const doc of docs) this.save({ ...doc, category: null, updatedAt: now });
			return docs.length;
		});
	}

	async setStatus(id: string, status: ImageStatus, reason: string | null, from?: ImageStatus[]): Promise<StatusChange | null> {
		return transaction(this.db, () => {
			const before = this.find(id);
			if (!before || (from && !from.includes(before.status))) return null;
			const after: ImageDoc = { ...before, status, statusReason: reason, updatedAt: nowIso() };
			this.statements
				.get("UPDATE images SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?")
				.run(status, reason, after.updatedAt, id);
			return { before, after };
		});
	}

	async setProcessed(id: string, metadata: ImageMetadata, renditions: Rendition[]): Promise<{ doc: ImageDoc; applied: boolean } | null> {
		return transaction(this.db, () => {
			const current = this.find(id);
			if (!current) return null;
			if (current.renditions.length > 0) return { doc: current, applied: false };
			const doc: ImageDoc = { ...current, metadata, renditions, updatedAt: nowIso() };
			this.statements
				.get("UPDATE images SET metadata = ?, renditions = ?, updated_at = ? WHERE id = ?")
				.run(JSON.stringify(metadata), JSON.stringify(renditions), doc.updatedAt, id);
			return { doc, applied: true };
		});
	}

	async resetProcessing(id: string): Promise<ImageDoc | null> {
		return transaction(this.db, () => {
			const before = this.find(id);
			if (!before) return null;
			this.statements
				.get("UPDATE images SET status = 'processing', status_reason = NULL, metadata = NULL, renditions = '[]', updated_at = ? WHERE id = ?")
				.run(nowIso(), id);
			return before;
		});
	}

	async claimStuck(before: string, limit: number): Promise<ImageDoc[]> {
		return transaction(this.db, () => {
			const stuck = this.all(
				`SELECT ${IMAGE_COLUMNS} FROM images i WHERE i.status = 'processing' AND i.updated_at < ? ORDER BY i.updated_at, i.id LIMIT ?`,
				[before, limit]
			);
			const now = nowIso();
			const touch = this.statements.get("UPDATE images SET updated_at = ? WHERE id = ?");
			for (const doc of stuck) touch.run(now, doc.id);
			return stuck.map(doc => ({ ...doc, updatedAt: now }));
		});
	}

	async trash(id: string, at: string): Promise<ImageDoc | null> {
		return this.setTrashedAt(id, at, "trashed_at IS NULL");
	}

	async restore(id: string): Promise<ImageDoc | null> {
		return this.setTrashedAt(id, null, "trashed_at IS NOT NULL");
	}

	async trashedBefore(before: string, limit: number): Promise<ImageDoc[]> {
		return this.all(`SELECT ${IMAGE_COLUMNS} FROM images i WHERE i.trashed_at IS NOT NULL AND i.trashed_at < ? ORDER BY i.trashed_at, i.id LIMIT ?`, [before, limit]);
	}

	async ping(): Promise<boolean> {
		return this.statements.get("SELECT 1 AS ok").get() !== undefined;
	}

	async close(): Promise<void> {
		closeDatabase(this.db);
	}

	/** Writes one new image with its search rows. Call inside a transaction. */
	private insertRow(doc: ImageDoc): void {
		const index = searchIndexOf(doc);
		try {
			this.statements
				.get(
					`INSERT INTO images (id, owner, owner_name, name, description, filename, content_type, format, size, width,
						height, sha256, encrypted, visibility, show_metadata, category, tags, views, status, status_reason, metadata, renditions, blob,
						created_at, updated_at, trashed_at, search_text)
					 VALUES (:id, :owner, :owner_name, :name, :description, :filename, :content_type, :format, :size, :width,
						:height, :sha256, :encrypted, :visibility, :show_metadata, :category, :tags, :views, :status, :status_reason, :metadata, :renditions, :blob,
						:created_at, :updated_at, :trashed_at, :search_text)`
				)
				.run({ ...toRow(doc), search_text: index.text });
		} catch (err) {
			if (uniqueViolationOf(err) === "images.id") throw new ConflictError(`Image ${doc.id} already exists`, "IMAGE_EXISTS");
			throw err;
		}
		this.writeSideTables(doc, index);
	}

	/**
	 * Sets trashed_at when `when` (a fixed SQL condition) holds, else leaves the image as it is:
	 * trashing twice keeps the first time. Touches nothing else, so a restore is exact.
	 */
	private setTrashedAt(id: string, at: string | null, when: "trashed_at IS NULL" | "trashed_at IS NOT NULL"): ImageDoc | null {
		this.statements.get(`UPDATE images SET trashed_at = ? WHERE id = ? AND ${when}`).run(at, id);
		return this.find(id);
	}

	/** Prepared once: every download looks its image up here, and preparing took most of that look-up's time. */
	private find(id: string): ImageDoc | null {
		const row = this.statements.get(`SELECT ${IMAGE_COLUMNS} FROM images i WHERE i.id = ?`).get(id);
		return row ? fromRow(row as unknown as ImageRow) : null;
	}

	private all(sql: string, params: SQLInputValue[]): ImageDoc[] {
		return (this.statements.get(sql).all(...params) as unknown as ImageRow[]).map(fromRow);
	}

	/**
	 * The condition a narrow search starts from: the tag or word lookup that yields the fewest
	 * images, when it yields few; else a phrase (rarer than any frequent word). Otherwise null:
	 * every lookup lists its images, and SQLite intersects them (a Bloom filter beats checking
	 * each image of one large list against the others). Decided here, by counting, because
	 * SQLite's sampled statistics cannot tell a rare word from a frequent one.
	 */
	private leadOf(conditions: SearchCondition[]): SearchCondition | null {
		const sizes = conditions.flatMap(condition => {
			const lookup = lookupOf(condition);
			if (!lookup) return [];
			const sql = `SELECT COUNT(*) AS n FROM (SELECT 1 FROM ${lookup.table} WHERE ${lookup.test} LIMIT ?)`;
			const { n } = this.statements.get(sql).get(...lookup.params, COUNTED_TOTAL_LIMIT) as { n: number };
			return [{ condition, n }];
		});
		const narrowest = sizes.reduce<(typeof sizes)[number] | null>((best, size) => (best === null || size.n < best.n ? size : best), null);
		if (narrowest && narrowest.n <= EXACT_TOTAL_LIMIT) return narrowest.condition;
		return conditions.find(isIndexedPhrase) ?? null;
	}

	/**
	 * How many images match, counting no further than COUNTED_TOTAL_LIMIT. When every lookup is
	 * large (no lead), intersecting them costs their whole length (170 ms for two frequent words
	 * in a million images) even when matches abound, so the newest RECENT_WINDOW images are
	 * checked first: enough matches among them settle it.
	 */
	private countMatches(conditions: SearchCondition[], narrow: Plan & { kind: "narrow" }): number {
		if (narrow.lead === null && conditions.some(condition => lookupOf(condition) !== null)) {
			// The rowid range leads (+i.visibility): on the visibility index, a user's count walked every
			// public image to find the recent ones (130 ms for a frequent tag at 1M images).
			const recent = visibleBranches(conditions, { kind: "walk" }, "+i.visibility").map(branch =>
				and(branch, "i.rowid > (SELECT max(rowid) FROM images) - ?", RECENT_WINDOW)
			);
			const counted = this.countUpTo(recent, COUNTED_TOTAL_LIMIT);
			if (counted > EXACT_TOTAL_LIMIT) return counted;
		}
		return this.countUpTo(visibleBranches(conditions, narrow), COUNTED_TOTAL_LIMIT);
	}

	/** How many rows the branches hold, counting no further than `limit`. */
	private countUpTo(branches: Conditions[], limit: number): number {
		const union = unionOf(branches, "1");
		const row = this.statements.get(`${union.withSql} SELECT COUNT(*) AS n FROM (${union.sql} LIMIT ?)`).get(...union.params, limit) as { n: number };
		return row.n;
	}

	/**
	 * Writes the editable fields (ImagePatch plus updatedAt) and reindexes. Never writes views:
	 * a concurrent incrementViews must not be overwritten by a stale count.
	 */
	private save(doc: ImageDoc): ImageDoc {
		const row = toRow(doc);
		const index = searchIndexOf(doc);
		this.statements
			.get(
				`UPDATE images SET name = :name, description = :description, tags = :tags, category = :category,
					visibility = :visibility, show_metadata = :show_metadata, status = :status, updated_at = :updated_at, search_text = :search_text
				 WHERE id = :id`
			)
			.run({
				id: row.id,
				name: row.name,
				description: row.description,
				tags: row.tags,
				category: row.category,
				visibility: row.visibility,
				show_metadata: row.show_metadata,
				status: row.status,
				updated_at: row.updated_at,
				search_text: index.text
			});
		this.writeSideTables(doc, index);
		return doc;
	}

	/** Replaces the image's tag and keyword rows. Call inside the transaction that writes the row. */
	private writeSideTables(doc: ImageDoc, index: SearchIndex): void {
		this.statements.get("DELETE FROM image_tags WHERE image_id = ?").run(doc.id);
		this.statements.get("DELETE FROM image_words WHERE image_id = ?").run(doc.id);
		const insertTag = this.statements.get("INSERT OR IGNORE INTO image_tags (label, image_id) VALUES (?, ?)");
		for (const tag of doc.tags) insertTag.run(tag.label, doc.id);
		const insertWord = this.statements.get("INSERT INTO image_words (word, image_id) VALUES (?, ?)");
		for (const word of index.keywords) insertWord.run(word, doc.id);
	}

	private countsBy(groupExpression: (typeof STAT_GROUPS)[keyof typeof STAT_GROUPS], where: Conditions): Record<string, CountAndBytes> {
		const rows = this.statements
			.get(`SELECT ${groupExpression} AS key, COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM images i ${whereSql(where)} GROUP BY key`)
			.all(...where.params) as unknown as ({ key: string } & CountAndBytes)[];
		return Object.fromEntries(rows.map(row => [row.key, countAndBytes(row)]));
	}
}
