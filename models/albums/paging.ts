/**
 * Keyset pages of an album's images, shared by both AlbumRepository backends so that a cursor
 * means the same thing whatever stores the album. A cursor is the last entry's sort position, so
 * adding or removing images elsewhere in the album never shifts the next page.
 */
import { BadRequestError } from "../shared/errors.ts";
import { ALBUM_SORTS, type AlbumEntry, type AlbumPageRequest, type AlbumSort } from "./album.ts";

export interface AlbumSortSpec {
	field: "addedAt" | "takenAt";
	descending: boolean;
}

export interface AlbumCursor {
	sort: AlbumSort;
	value: string;
	imageId: string;
}

export function albumSortSpec(sort: AlbumSort): AlbumSortSpec {
	if (!ALBUM_SORTS.includes(sort)) throw new BadRequestError(`Unknown sort "${String(sort)}"`, "INVALID_SORT");
	return { field: sort.endsWith("takenAt") ? "takenAt" : "addedAt", descending: sort.startsWith("-") };
}

/** The sort order and the position a page continues from, checked. */
export function albumPageRequest(request: AlbumPageRequest): { spec: AlbumSortSpec; after: AlbumCursor | null } {
	if (!Number.isInteger(request.limit) || request.limit < 1) throw new BadRequestError("limit must be a positive integer", "INVALID_LIMIT");
	const spec = albumSortSpec(request.sort);
	return { spec, after: request.cursor ? decodeCursor(request.cursor, request.sort) : null };
}

/** Rejects anything a repository did not produce for this sort order. */
function decodeCursor(text: string, sort: AlbumSort): AlbumCursor {
	let cursor: Partial<AlbumCursor> | null = null;
	try {
		cursor = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as Partial<AlbumCursor> | null;
	} catch {
		// Not JSON: rejected below like any other malformed cursor.
	}
	const valid = cursor !== null && typeof cursor === "object" && cursor.sort === sort && typeof cursor.value === "string" && typeof cursor.imageId === "string";
	if (!valid) throw new BadRequestError("Invalid cursor: pass nextCursor from a page of the same sort order", "INVALID_CURSOR");
	return cursor as AlbumCursor;
}

/** A page from the first `limit + 1` entries in sort order (one more tells whether a next page exists). */
export function albumPageOf(matches: AlbumEntry[], request: AlbumPageRequest, spec: AlbumSortSpec): { items: AlbumEntry[]; nextCursor: string | null } {
	const hasMore = matches.length > request.limit;
	const items = hasMore ? matches.slice(0, request.limit) : matches;
	const last = items.at(-1);
	const cursor: AlbumCursor | null = hasMore && last ? { sort: request.sort, value: last[spec.field], imageId: last.imageId } : null;
	return { items, nextCursor: cursor && Buffer.from(JSON.stringify(cursor)).toString("base64url") };
}
