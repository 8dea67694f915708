/**
 * Image metadata: the document shape and the backend-neutral repository contract. SQLite
 * implements it now (sqlite-repository.ts); MongoDB implements the same interface for
 * distributed mode, and one contract test suite runs against every implementation.
 */
import type { Viewer } from "../shared/access.ts";
import type { SearchQuery } from "./search-query.ts";

export type Visibility = "private" | "public";
export type ImageStatus = "processing" | "ready" | "failed";
export type TagSource = "user" | "hashtag" | "auto";

export interface Tag {
	label: string;
	source: TagSource;
	score?: number;
	model?: string;
}

/** A derived image made by the ingest pipeline (models/pipeline/renditions.ts). */
export interface Rendition {
	/** "240", "720": the length of the shortest edge it was made for. */
	name: string;
	width: number;
	height: number;
	format: string;
	size: number;
	/** Storage key of the bytes; internal like ImageDoc.blob, never sent to clients. */
	blob: string;
}

/** What the pipeline read from the original. Dimensions are after auto-orientation. */
export interface ImageMetadata {
	width: number;
	height: number;
	format: string;
	/** EXIF orientation tag (1-8), or null when absent. */
	orientation: number | null;
	/** Colour space as libvips names it ("srgb", "cmyk", "b-w", ...). */
	space: string;
	hasAlpha: boolean;
	/** Pixels per inch, when the file says. */
	density: number | null;
	cameraMake: string | null;
	cameraModel: string | null;
	/** EXIF DateTimeOriginal as written (local time of the camera, no zone): "2024-05-01T12:30:00". */
	takenAt: string | null;
	/** The original carries GPS coordinates (they never reach a rendition). */
	hasGps: boolean;
}

export interface ImageDoc {
	id: string;
	/** User id of the owner. */
	owner: string;
	/** Username of the owner (usernames never change, so this copy cannot go stale). */
	ownerName: string;
	name: string;
	description: string;
	/** The client's file name, kept only as metadata: it never names a file on disk. */
	filename: string;
	contentType: string;
	format: string;
	size: number;
	width: number;
	height: number;
	sha256: string;
	encrypted: boolean;
	visibility: Visibility;
	/** Category id (its slug), or null. */
	category: string | null;
	tags: Tag[];
	views: number;
	status: ImageStatus;
	/** Why the status is "failed", or what a "ready" image lacks (e.g. automatic tags that could not be made); null otherwise. */
	statusReason: string | null;
	/** Set by the pipeline; null until then. */
	metadata: ImageMetadata | null;
	/** Empty until the pipeline stored them. */
	renditions: Rendition[];
	/** Storage key of the original bytes; internal, never sent to clients. */
	blob: string;
	createdAt: string;
	updatedAt: string;
}

/** Fields an owner or admin may change. */
/** Every field of an ImageDoc but its id, for stores that map records field by field. */
export const IMAGE_FIELDS = [
	"owner", "ownerName", "name", "description", "filename", "contentType", "format", "size", "width", "height", "sha256",
	"encrypted", "visibility", "category", "tags", "views", "status", "statusReason", "metadata", "renditions", "blob", "createdAt", "updatedAt"
] as const satisfies readonly (keyof ImageDoc)[];

export type ImagePatch = Partial<Pick<ImageDoc, "name" | "description" | "tags" | "category" | "visibility" | "status">>;

export type SortKey = "createdAt" | "-createdAt" | "views" | "-views" | "name";

export interface ImageFilter {
	/** Who is asking: decides which private images are visible. */
	viewer: Viewer;
	query?: SearchQuery;
	/** Any of these tags (lower-case labels). */
	tags?: string[];
	category?: string;
	/** Owner username. */
	ownerName?: string;
	visibility?: Visibility;
	sort: SortKey;
	limit: number;
	/** Opaque cursor from a previous page. */
	cursor?: string;
}

export interface Page<T> {
	items: T[];
	nextCursor: string | null;
	total: number;
}

export interface CountAndBytes {
	count: number;
	bytes: number;
}

export interface ImageStats {
	images: CountAndBytes;
	byFormat: Record<string, CountAndBytes>;
	/** Keyed by category id; images without a category count under "none". */
	byCategory: Record<string, CountAndBytes>;
	byVisibility: Record<string, CountAndBytes>;
	encrypted: CountAndBytes;
	totalViews: number;
	/** The 10 most used tag labels, most used first, ties in label order. */
	topTags: { label: string; count: number }[];
}

export interface ImageRepository {
	insert(doc: ImageDoc): Promise<void>;
	get(id: string): Promise<ImageDoc | null>;
	update(id: string, patch: ImagePatch): Promise<ImageDoc | null>;
	remove(id: string): Promise<ImageDoc | null>;
	listByOwner(owner: string): Promise<ImageDoc[]>;
	/** Atomically adds `by` to the view count; returns the new count, or null if no such image. */
	incrementViews(id: string, by?: number): Promise<number | null>;
	search(filter: ImageFilter): Promise<Page<ImageDoc>>;
	stats(): Promise<ImageStats>;
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
	/** True when the backend answers. */
	ping(): Promise<boolean>;
	close(): Promise<void>;
}

export interface StatusChange {
	before: ImageDoc;
	after: ImageDoc;
}
