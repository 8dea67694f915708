/**
 * Sort orders and keyset cursors of image searches, shared by every ImageRepository backend so
 * that a cursor means the same thing whatever stores the images. A cursor is the last item's sort
 * position, so a page starts right after that item wherever it now is: inserts and deletes
 * elsewhere never shift the next page.
 */
import { BadRequestError } from "../shared/errors.ts";
import type { ImageDoc, ImageFilter, Page, SearchPage, SearchSort } from "./image.ts";

export interface SortSpec {
	field: "createdAt" | "views" | "name" | "trashedAt";
	descending: boolean;
	/** The type of the field: cursors carrying anything else are rejected. */
	valueType: "string" | "number";
}

/** The only sort orders, each tie-broken by id in the same direction. */
const SORTS: Record<SearchSort, SortSpec> = {
	createdAt: { field: "createdAt", descending: false, valueType: "string" },
	"-createdAt": { field: "createdAt", descending: true, valueType: "string" },
	views: { field: "views", descending: false, valueType: "number" },
	"-views": { field: "views", descending: true, valueType: "number" },
	name: { field: "name", descending: false, valueType: "string" },
	// Only for the trash, whose images all have a trashedAt.
	"-trashedAt": { field: "trashedAt", descending: true, valueType: "string" }
};

function sortSpecOf(sort: SearchSort): SortSpec {
	if (!Object.hasOwn(SORTS, sort)) throw new BadRequestError(`Unknown sort "${String(sort)}"`, "INVALID_SORT");
	return SORTS[sort];
}

function checkLimit(limit: number): void {
	if (!Number.isInteger(limit) || limit < 1) throw new BadRequestError("limit must be a positive integer", "INVALID_LIMIT");
}

export interface Cursor {
	sort: SearchSort;
	value: string | number;
	id: string;
}

function encodeCursor(sort: SearchSort, spec: SortSpec, doc: ImageDoc): string {
	// trashedAt is null only outside the trash, which its sort never lists.
	const cursor: Cursor = { sort, value: doc[spec.field]!, id: doc.id };
	return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

/** Rejects anything a repository did not produce for this sort order. */
function decodeCursor(text: string, sort: SearchSort, spec: SortSpec): Cursor {
	let cursor: Partial<Cursor> | null = null;
	try {
		cursor = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as Partial<Cursor> | null;
	} catch {
		// Not JSON: rejected below like any other malformed cursor.
	}
	const valid =
		cursor !== null &&
		typeof cursor === "object" &&
		cursor.sort === sort &&
		typeof cursor.id === "string" &&
		typeof cursor.value === spec.valueType &&
		(spec.valueType === "string" || Number.isFinite(cursor.value));
	if (!valid) throw new BadRequestError("Invalid cursor: pass nextCursor from a page of the same sort order", "INVALID_CURSOR");
	return cursor as Cursor;
}

/** The sort order of a search and the position its page continues from, checked. */
export function pageRequest(filter: ImageFilter): { spec: SortSpec; after: Cursor | null } {
	checkLimit(filter.limit);
	const spec = sortSpecOf(filter.sort);
	return { spec, after: filter.cursor ? decodeCursor(filter.cursor, filter.sort, spec) : null };
}

/**
 * A page from the first `limit + 1` matches in sort order: backends fetch one more than asked,
 * which tells whether a next page exists.
 */
export function pageOf(matches: ImageDoc[], filter: ImageFilter, spec: SortSpec): Omit<Page<ImageDoc>, "total"> {
	const hasMore = matches.length > filter.limit;
	const items = hasMore ? matches.slice(0, filter.limit) : matches;
	return { items, nextCursor: hasMore ? encodeCursor(filter.sort, spec, items.at(-1)!) : null };
}

/**
 * Totals are exact up to this many matches. Counting every match costs as much as the matches
 * (775 ms for a million), so beyond it counting stops and the page says so (totalIsEstimate).
 */
export const EXACT_TOTAL_LIMIT = 1000;
/** How far backends count: one past the exact limit tells that more match. */
export const COUNTED_TOTAL_LIMIT = EXACT_TOTAL_LIMIT + 1;

/** The total of a page from a count stopped at COUNTED_TOTAL_LIMIT. */
export function totalOf(counted: number): Pick<SearchPage<ImageDoc>, "total" | "totalIsEstimate"> {
	return counted > EXACT_TOTAL_LIMIT ? { total: EXACT_TOTAL_LIMIT, totalIsEstimate: true } : { total: counted, totalIsEstimate: false };
}
