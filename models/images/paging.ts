/**
 * Sort orders and keyset cursors of image searches, shared by every ImageRepository backend so
 * that a cursor means the same thing whatever stores the images. A cursor is the last item's sort
 * position, so a page starts right after that item wherever it now is: inserts and deletes
 * elsewhere never shift the next page.
 */
import { BadRequestError } from "../shared/errors.ts";
import type { ImageDoc, SortKey } from "./image.ts";

export interface SortSpec {
	field: "createdAt" | "views" | "name";
	descending: boolean;
	/** The type of the field: cursors carrying anything else are rejected. */
	valueType: "string" | "number";
}

/** The only sort orders, each tie-broken by id in the same direction. */
const SORTS: Record<SortKey, SortSpec> = {
	createdAt: { field: "createdAt", descending: false, valueType: "string" },
	"-createdAt": { field: "createdAt", descending: true, valueType: "string" },
	views: { field: "views", descending: false, valueType: "number" },
	"-views": { field: "views", descending: true, valueType: "number" },
	name: { field: "name", descending: false, valueType: "string" }
};

export function sortSpecOf(sort: SortKey): SortSpec {
	if (!Object.hasOwn(SORTS, sort)) throw new BadRequestError(`Unknown sort "${String(sort)}"`, "INVALID_SORT");
	return SORTS[sort];
}

export function checkLimit(limit: number): void {
	if (!Number.isInteger(limit) || limit < 1) throw new BadRequestError("limit must be a positive integer", "INVALID_LIMIT");
}

export interface Cursor {
	sort: SortKey;
	value: string | number;
	id: string;
}

export function encodeCursor(sort: SortKey, spec: SortSpec, doc: ImageDoc): string {
	const cursor: Cursor = { sort, value: doc[spec.field], id: doc.id };
	return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

/** Rejects anything a repository did not produce for this sort order. */
export function decodeCursor(text: string, sort: SortKey, spec: SortSpec): Cursor {
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

/** Patches may carry keys set to undefined (absent request fields): those change nothing. */
export function definedFields<T extends object>(patch: T): Partial<T> {
	return Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined)) as Partial<T>;
}
