/**
 * Image metadata: the document shape (declared in image-types.ts, re-exported here) and the
 * backend-neutral repository contract. SQLite implements it now (sqlite-repository.ts); MongoDB
 * implements the same interface for distributed mode, and one contract test suite runs against
 * every implementation.
 */
import type { Viewer } from "../shared/access.ts";
import type { ImageDoc, ImageMetadata, ImageStats, ImageStatus, Rendition, SearchPage, SortKey, Visibility } from "./image-types.ts";
import type { SearchQuery } from "./search-query.ts";

// The document and API shapes are declared once, in the pure-type image-types.ts (the web app
// imports that file, so it cannot depend on search-query.ts and the server runtime behind it).
export type { CountAndBytes, ImageDoc, ImageMetadata, ImageStats, ImageStatus, Page, Rendition, SearchPage, SortKey, Tag, TagSource, Visibility } from "./image-types.ts";

/** Every field of an ImageDoc but its id, for stores that map records field by field. */
export const IMAGE_FIELDS = [
	"owner", "ownerName", "name", "description", "filename", "contentType", "format", "size", "width", "height", "sha256",
	"encrypted", "visibility", "showMetadata", "category", "tags", "views", "status", "statusReason", "metadata", "renditions", "blob", "createdAt", "updatedAt",
	"trashedAt"
] as const satisfies readonly (keyof ImageDoc)[];

/** The orders of searches: the API's, and the trash's (most recently trashed first). */
export type SearchSort = SortKey | "-trashedAt";

/** Fields an owner or admin may change. */
export type ImagePatch = Partial<Pick<ImageDoc, "name" | "description" | "tags" | "category" | "visibility" | "showMetadata" | "status">>;

export interface ImageFilter {
	/** Who is asking: decides which private images are visible. */
	viewer: Viewer;
	query?: SearchQuery;
	/** Any of these tags (lower-case labels). */
	tags?: string[];
	category?: string;
	/**
	 * Owner account id. Never a username: names are freed when an account is deleted and can be
	 * taken again, so the service resolves `owner:` names to the current account's id first.
	 */
	owner?: string;
	visibility?: Visibility;
	/**
	 * Exactly these images (an album's, `album:` in a search): the caller authorised them, so this
	 * replaces the access rule instead of narrowing it (the trash is still left out).
	 */
	ids?: string[];
	/** True: the trash (trashed images only); otherwise trashed images are left out. */
	trashed?: boolean;
	sort: SearchSort;
	limit: number;
	/** Opaque cursor from a previous page. */
	cursor?: string;
}

export interface ImageRepository {
	insert(doc: ImageDoc): Promise<void>;
	/**
	 * Inserts many new images at once (bulk loads: benchmarks, migrations), faster than one by one.
	 * A taken id fails with ConflictError, as insert does; the images before it may be stored.
	 */
	insertMany(docs: ImageDoc[]): Promise<void>;
	get(id: string): Promise<ImageDoc | null>;
	update(id: string, patch: ImagePatch): Promise<ImageDoc | null>;
	/** Deletes the image and returns it; with `onlyTrashed`, only if it is in the trash. Null if nothing was deleted. */
	remove(id: string, options?: { onlyTrashed?: boolean }): Promise<ImageDoc | null>;
	listByOwner(owner: string): Promise<ImageDoc[]>;
	/** Atomically adds `by` to the view count; returns the new count, or null if no such image. */
	incrementViews(id: string, by?: number): Promise<number | null>;
	search(filter: ImageFilter): Promise<SearchPage<ImageDoc>>;
	/** Which of these tag labels some image the viewer may see carries (for multi-word `tag:`). */
	existingTags(labels: string[], viewer: Viewer): Promise<string[]>;
	/** Which of these SHA-256 digests some image's original has, whoever may see it (the garbage collector's question). */
	existingSha256(digests: string[]): Promise<string[]>;
	/** Counts, bytes, views and top tags of the images the viewer may see (admins: all of them). */
	stats(viewer: Viewer): Promise<ImageStats>;
	/** Sets category to null on every image of that category; returns how many changed. */
	clearCategory(categoryId: string): Promise<number>;
	/**
	 * Sets status and reason (why it failed, or what a ready image lacks). With `from`, only when the current status is
	 * one of those. Returns the image before and after, or null if there is no such image (or
	 * `from` did not match).
	 */
	setStatus(id: string, status: ImageStatus, reason: string | null, from?: ImageStatus[]): Promise<StatusChange | null>;
	/**
	 * Records the pipeline's results once: when the image already has renditions nothing changes
	 * and `applied` is false (a duplicate run lost the race). Null if there is no such image.
	 */
	setProcessed(id: string, metadata: ImageMetadata, renditions: Rendition[]): Promise<{ doc: ImageDoc; applied: boolean } | null>;
	/** Back to `processing` with no metadata and no renditions; returns the image as it was. */
	resetProcessing(id: string): Promise<ImageDoc | null>;
	/**
	 * Images in `processing` not updated since `before` (ISO time), oldest first: their job was
	 * lost. Each returned image gets updatedAt = now, so concurrent reconcilers do not both take it.
	 */
	claimStuck(before: string, limit: number): Promise<ImageDoc[]>;
	/**
	 * Puts the image in the trash at `at` (ISO time); one already there keeps its time. Nothing
	 * else changes. Returns the image as it is now, or null if there is no such image.
	 */
	trash(id: string, at: string): Promise<ImageDoc | null>;
	/** Takes the image out of the trash exactly as it was; null if there is no such image. */
	restore(id: string): Promise<ImageDoc | null>;
	/** Images trashed before `before` (ISO time), oldest first: what the trash's retention purges. */
	trashedBefore(before: string, limit: number): Promise<ImageDoc[]>;
	/** True when the backend answers. */
	ping(): Promise<boolean>;
	close(): Promise<void>;
}

export interface StatusChange {
	before: ImageDoc;
	after: ImageDoc;
}
