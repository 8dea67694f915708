/**
 * The search language of `q` (GET /images?q=...), and the text normalization that both the index
 * and the queries go through, so that what is stored and what is asked always agree.
 *
 *   sunset beach            free words: all must match; the last one also matches as a prefix
 *   "red car"               phrase: a case-insensitive substring
 *   tag:cat,dog             any of these tags (repeat `tag:` to require several); `tags:` is the same
 *   tag:"new york"          quotes keep spaces and commas inside a value
 *   tag:golden retriever    a tag followed by words: the longest known label they spell wins
 *                           (see multiWordTagCandidates); otherwise tag:golden and the word
 *   name:beach  desc:"in the park"   a phrase in the name, or in the description, only
 *   category:nature  owner:alice
 *   album:<id>              the images of an album the caller owns or is a member of
 *   date:2024  date:03-2024  date:2024-03  date:15-03-2024  date:2024-03-15
 *   from:03-2024  to:2024   inclusive whole days in UTC; all date terms intersect
 *
 * Unknown `key:` prefixes are plain words, an unterminated quote runs to the end of the input, and
 * a known key with an empty value is ignored (the user is still typing it).
 */
import { BadRequestError } from "../shared/errors.ts";
import type { ImageDoc } from "./image.ts";
import { MAX_LABEL, normalizeLabel } from "./tags.ts";

export const MAX_QUERY_LENGTH = 500;
/** Bounds the size of the database query one search can produce. */
export const MAX_QUERY_TERMS = 32;

export interface SearchQuery {
	/** Keywords (see keywordsOf) that must each equal an indexed keyword. */
	words: string[];
	/** The last free keyword: must be the start of some indexed keyword (search as you type). */
	prefix?: string;
	/** Normalized phrases (see phraseTextOf) that must each occur in the indexed text. */
	phrases: string[];
	/** Normalized phrases that must each occur in one field: the name or the description. */
	fieldPhrases: FieldPhrase[];
	/** Lower-case tag labels: an image needs at least one label of every group. */
	tagGroups: string[][];
	/** Category id; when repeated, the last one counts. */
	category?: string;
	/** Owner username; when repeated, the last one counts. */
	ownerName?: string;
	/** Album id, as typed (ids are case-sensitive); when repeated, the last one counts. */
	album?: string;
	/** Inclusive lower bound on createdAt (ISO timestamp). */
	createdFrom?: string;
	/** Exclusive upper bound on createdAt (ISO timestamp). */
	createdBefore?: string;
}

export interface FieldPhrase {
	field: SearchableField;
	phrase: string;
}

/** The fields `name:` and `desc:` search, in the order searchIndexOf writes them (line 1 and 2). */
export const FIELD_LINES = { name: 0, description: 1 } as const;
export type SearchableField = keyof typeof FIELD_LINES;

/** What a backend stores to make an image findable. */
export interface SearchIndex {
	/** Distinct keywords of the searchable fields. */
	keywords: string[];
	/** The searchable fields as normalized text, one field per line, for phrase matching. */
	text: string;
}

/**
 * Drops accents (NFKD, then combining marks) and lower-cases, so "Café" is found by "cafe".
 * In this order because NFKD can produce capitals ("ℌ" -> "H") and lower-casing can produce marks
 * ("İ" -> "i" + dot).
 */
function fold(text: string): string {
	return text.normalize("NFKD").replace(/\p{M}+/gu, "").toLowerCase();
}

/** The words of a text, in order and with repeats: folded runs of Unicode letters and digits. */
export function keywordsOf(text: string): string[] {
	return fold(text)
		.split(/[^\p{L}\p{N}]+/u)
		.filter(word => word !== "");
}

/** Folded text with every run of whitespace made one space, for substring matching. */
export function phraseTextOf(text: string): string {
	return fold(text)
		.split(/\s+/u)
		.filter(part => part !== "")
		.join(" ");
}

/**
 * The searchable fields of an image (name, description, tag labels, category id) as an index.
 * The text holds one field per line, name first and description second (FIELD_LINES).
 */
export function searchIndexOf(doc: Pick<ImageDoc, "name" | "description" | "tags" | "category">): SearchIndex {
	const fields = [doc.name, doc.description, ...doc.tags.map(tag => tag.label), doc.category ?? ""];
	return {
		keywords: [...new Set(fields.flatMap(keywordsOf))],
		// Normalized phrases hold no line breaks, so a phrase never matches across two fields.
		text: fields.map(phraseTextOf).join("\n")
	};
}

/**
 * The query `input` stands for. `knownLabels` are the multi-word tag labels that exist (see
 * multiWordTagCandidates): `tag:golden retriever` means the label "golden retriever" when it is
 * one of them, else the tag "golden" and the word "retriever".
 */
export function parseSearchQuery(input: string, knownLabels: ReadonlySet<string> = new Set()): SearchQuery {
	const tokens = tokensOf(input);
	const builder = new QueryBuilder();
	for (let i = 0; i < tokens.length; i++) {
		const run = tagRunAt(tokens, i).findLast(candidate => knownLabels.has(candidate.label));
		if (run) {
			builder.addTagLabel(run.label);
			i += run.words;
		} else {
			builder.add(tokens[i]!);
		}
	}
	return builder.build();
}

/**
 * The labels that a `tag:` followed by words could mean ("tag:golden retriever dog" ->
 * "golden retriever", "golden retriever dog"), for the caller to ask which exist.
 */
export function multiWordTagCandidates(input: string): string[] {
	const tokens = tokensOf(input);
	return [...new Set(tokens.flatMap((_, i) => tagRunAt(tokens, i).map(candidate => candidate.label)))];
}

/** Longest run of words after a `tag:` that can still spell a label. */
const MAX_TAG_WORDS = 4;

/** At a single-valued `tag:` term: each label it makes with the 1, 2, ... words that follow it. */
function tagRunAt(tokens: Token[], i: number): { label: string; words: number }[] {
	const token = tokens[i]!;
	if (token.kind !== "term" || token.key !== "tag" || token.values.length !== 1) return [];
	const runs: { label: string; words: number }[] = [];
	const parts = [token.values[0]!];
	for (let k = 1; k <= MAX_TAG_WORDS && tokens[i + k]?.kind === "word"; k++) {
		parts.push((tokens[i + k] as { text: string }).text);
		const text = parts.join(" ");
		if (text.length > MAX_LABEL) break;
		runs.push({ label: normalizeLabel(text), words: k });
	}
	return runs;
}

function tokensOf(input: string): Token[] {
	if (input.length > MAX_QUERY_LENGTH) {
		throw invalidQuery(`Search query is longer than ${MAX_QUERY_LENGTH} characters`, { maxLength: MAX_QUERY_LENGTH });
	}
	const tokens: Token[] = [];
	const scanner = new Scanner(input);
	for (let token = scanner.next(); token; token = scanner.next()) tokens.push(token);
	return tokens;
}

function invalidQuery(message: string, data: Record<string, unknown>): BadRequestError {
	return new BadRequestError(message, "INVALID_SEARCH_QUERY", data);
}

// ---------------------------------------------------------------------------------------------
// Scanner: one left-to-right pass; every loop advances the position, so the work is linear.

const KEYS = ["tag", "category", "owner", "album", "name", "desc", "date", "from", "to"] as const;
type Key = (typeof KEYS)[number];
/** Other spellings of a key: `tags:`, as stock-image sites write it. */
const KEY_ALIASES: Readonly<Record<string, Key>> = { tags: "tag" };

type Token =
	| { kind: "word"; text: string }
	| { kind: "phrase"; text: string }
	/** `values`: the value split on commas outside quotes, quotes removed. `raw`: as typed. */
	| { kind: "term"; key: Key; values: string[]; raw: string };

const QUOTE = '"';
const WHITESPACE = /\s/u;

/** Tested on one character at a time: nothing to backtrack over. */
function isSpace(char: string): boolean {
	return WHITESPACE.test(char);
}

function asKey(text: string): Key | undefined {
	const lower = text.toLowerCase();
	return KEYS.find(key => key === lower) ?? (Object.hasOwn(KEY_ALIASES, lower) ? KEY_ALIASES[lower] : undefined);
}

class Scanner {
	private readonly input: string;
	private pos = 0;

	constructor(input: string) {
		this.input = input;
	}

	next(): Token | null {
		while (this.pos < this.input.length && isSpace(this.peek())) this.pos++;
		if (this.pos >= this.input.length) return null;
		if (this.peek() === QUOTE) return { kind: "phrase", text: this.readQuoted() };
		return this.readBare();
	}

	private peek(): string {
		return this.input[this.pos]!;
	}

	private atTokenEnd(): boolean {
		return this.pos >= this.input.length || isSpace(this.peek());
	}

	/** At a quote: the text up to the closing quote (or the end of input), consuming both quotes. */
	private readQuoted(): string {
		const start = this.pos + 1;
		const close = this.input.indexOf(QUOTE, start);
		const end = close === -1 ? this.input.length : close;
		this.pos = close === -1 ? end : end + 1;
		return this.input.slice(start, end);
	}

	/** `key:value` when the text before the first colon is a known key; otherwise a word. */
	private readBare(): Token {
		const start = this.pos;
		while (!this.atTokenEnd() && this.peek() !== QUOTE && this.peek() !== ":") this.pos++;
		const key = this.peek() === ":" ? asKey(this.input.slice(start, this.pos)) : undefined;
		if (key) {
			this.pos++;
			const values = this.readValues();
			return { kind: "term", key, values, raw: this.input.slice(start, this.pos) };
		}
		// A quote ends a word: `cat"black dog"` is the word cat and a phrase.
		while (!this.atTokenEnd() && this.peek() !== QUOTE) this.pos++;
		return { kind: "word", text: this.input.slice(start, this.pos) };
	}

	private readValues(): string[] {
		const values: string[] = [];
		let value = "";
		while (!this.atTokenEnd()) {
			const char = this.peek();
			if (char === QUOTE) {
				value += this.readQuoted();
				continue;
			}
			this.pos++;
			if (char === ",") {
				values.push(value);
				value = "";
			} else {
				value += char;
			}
		}
		values.push(value);
		return values;
	}
}

// ---------------------------------------------------------------------------------------------
// Builder: turns tokens into a SearchQuery.

class QueryBuilder {
	private readonly keywords: string[] = [];
	private readonly phrases = new Set<string>();
	private readonly fieldPhrases: FieldPhrase[] = [];
	private readonly tagGroups: string[][] = [];
	private category?: string;
	private ownerName?: string;
	private album?: string;
	private createdFrom?: string;
	private createdBefore?: string;

	add(token: Token): void {
		if (token.kind === "word") this.keywords.push(...keywordsOf(token.text));
		else if (token.kind === "phrase") this.addPhrase(phraseTextOf(token.text));
		else this.addTerm(token.key, token.values, token.raw);
	}

	build(): SearchQuery {
		const prefix = this.keywords.at(-1);
		const query: SearchQuery = {
			words: [...new Set(this.keywords.slice(0, -1))],
			prefix,
			phrases: [...this.phrases],
			fieldPhrases: this.fieldPhrases,
			tagGroups: this.tagGroups,
			category: this.category,
			ownerName: this.ownerName,
			album: this.album,
			createdFrom: this.createdFrom,
			createdBefore: this.createdBefore
		};
		const terms = countTerms(query);
		if (terms > MAX_QUERY_TERMS) {
			throw invalidQuery(`Search query has ${terms} terms; at most ${MAX_QUERY_TERMS} are allowed`, { maxTerms: MAX_QUERY_TERMS });
		}
		return query;
	}

	private addPhrase(phrase: string): void {
		if (phrase) this.phrases.add(phrase);
	}

	/** A tag label a `tag:` and the words after it spell (see parseSearchQuery). */
	addTagLabel(label: string): void {
		this.tagGroups.push([label]);
	}

	private addTerm(key: Key, values: string[], raw: string): void {
		if (key === "tag") return this.addTagGroup(values);
		const value = values.join(",").trim();
		if (!value) return;
		if (key === "name" || key === "desc") this.addFieldPhrase(key === "name" ? "name" : "description", phraseTextOf(value));
		else if (key === "category") this.category = value.toLowerCase();
		else if (key === "owner") this.ownerName = value;
		else if (key === "album") this.album = value;
		else this.addDateRange(key, dateSpanOf(value, raw));
	}

	private addFieldPhrase(field: SearchableField, phrase: string): void {
		if (phrase && !this.fieldPhrases.some(known => known.field === field && known.phrase === phrase)) this.fieldPhrases.push({ field, phrase });
	}

	private addTagGroup(values: string[]): void {
		const labels = [...new Set(values.map(normalizeLabel).filter(label => label !== ""))];
		if (labels.length > 0) this.tagGroups.push(labels);
	}

	/** `date:` bounds both ends, `from:` only the start, `to:` only the end; bounds only narrow. */
	private addDateRange(key: "date" | "from" | "to", span: DateSpan): void {
		if (key !== "to") this.createdFrom = later(this.createdFrom, isoStartOf(span.first));
		const end = endOf(span);
		if (key !== "from" && end) this.createdBefore = earlier(this.createdBefore, isoStartOf(end));
	}
}

function countTerms(query: SearchQuery): number {
	const optional = [query.prefix, query.category, query.ownerName, query.album, query.createdFrom, query.createdBefore];
	return (
		query.words.length +
		query.phrases.length +
		query.fieldPhrases.length +
		query.tagGroups.reduce((sum, group) => sum + group.length, 0) +
		optional.filter(value => value !== undefined).length
	);
}

// ISO timestamps of one format compare correctly as strings.
function later(a: string | undefined, b: string): string {
	return a === undefined || b > a ? b : a;
}

function earlier(a: string | undefined, b: string): string {
	return a === undefined || b < a ? b : a;
}

// ---------------------------------------------------------------------------------------------
// Dates: hand-parsed digit groups; timestamps are formatted by hand rather than through Date,
// which maps years 0-99 to 1900-1999 and writes years past 9999 with a sign.

interface Day {
	year: number;
	month: number;
	day: number;
}

/** A whole year, month or day starting at `first`. */
interface DateSpan {
	first: Day;
	unit: "year" | "month" | "day";
}

const DATE_FORMS = "YYYY, MM-YYYY, DD-MM-YYYY, YYYY-MM or YYYY-MM-DD";

function dateSpanOf(value: string, token: string): DateSpan {
	const groups = value.split("-");
	const [a = 0, b = 0, c = 0] = groups.map(Number);
	switch (groups.map(shapeOf).join("-")) {
		case "Y":
			return { first: checkedDay(token, a, 1, 1), unit: "year" };
		case "Y-N":
			return { first: checkedDay(token, a, b, 1), unit: "month" };
		case "N-Y":
			return { first: checkedDay(token, b, a, 1), unit: "month" };
		case "Y-N-N":
			return { first: checkedDay(token, a, b, c), unit: "day" };
		case "N-N-Y":
			return { first: checkedDay(token, c, b, a), unit: "day" };
		default:
			throw invalidQuery(`Invalid date in "${token}": use ${DATE_FORMS}`, { token });
	}
}

/** Y = a four-digit year, N = a one- or two-digit day or month, ? = anything else. */
function shapeOf(group: string): string {
	if (!isDigits(group)) return "?";
	if (group.length === 4) return "Y";
	return group.length <= 2 ? "N" : "?";
}

function isDigits(text: string): boolean {
	if (text === "") return false;
	for (const char of text) if (char < "0" || char > "9") return false;
	return true;
}

function checkedDay(token: string, year: number, month: number, day: number): Day {
	if (month < 1 || month > 12) throw invalidQuery(`Invalid date in "${token}": there is no month ${month}`, { token });
	const days = daysInMonth(year, month);
	if (day < 1 || day > days) {
		throw invalidQuery(`Invalid date in "${token}": ${pad(month, 2)}-${pad(year, 4)} has no day ${day}`, { token });
	}
	return { year, month, day };
}

function daysInMonth(year: number, month: number): number {
	if (month === 2) return isLeapYear(year) ? 29 : 28;
	return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

function isLeapYear(year: number): boolean {
	return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** The first day after the span, or null past year 9999, where no ISO timestamp can be. */
function endOf(span: DateSpan): Day | null {
	const { year, month, day } = span.first;
	let next: Day;
	if (span.unit === "day" && day < daysInMonth(year, month)) next = { year, month, day: day + 1 };
	else if (span.unit !== "year" && month < 12) next = { year, month: month + 1, day: 1 };
	else next = { year: year + 1, month: 1, day: 1 };
	return next.year > 9999 ? null : next;
}

function isoStartOf(day: Day): string {
	return `${pad(day.year, 4)}-${pad(day.month, 2)}-${pad(day.day, 2)}T00:00:00.000Z`;
}

function pad(n: number, width: number): string {
	return String(n).padStart(width, "0");
}
