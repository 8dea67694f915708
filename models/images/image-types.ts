/**
 * The image document and what the API reports about images: pure type declarations, with no
 * runtime code and no imports but other pure-type files. The web app imports them (type-only)
 * and compiles them without Node's types, so they must stay this way; image.ts re-exports them
 * next to the repository contract for the server.
 */

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
	/**
	 * ThumbHash of the image (base64, ~25 bytes): the blurred placeholder the web app shows while
	 * the thumbnail loads. Absent on images processed before placeholders existed.
	 */
	thumbhash?: string;
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
	/**
	 * Whether guests (anyone who does not manage the image) get it as uploaded: the original with
	 * its EXIF/XMP and the uploaded file name. False (the default): they get a stripped copy and
	 * `<id>.<ext>` (docs/sharing.md).
	 */
	showMetadata: boolean;
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
	/**
	 * When the image went to the trash (ISO time); null when it is not there. A trashed image is
	 * in no listing and answers 404 to every read, yet keeps its bytes until it is purged.
	 */
	trashedAt: string | null;
}

export type SortKey = "createdAt" | "-createdAt" | "views" | "-views" | "name";

export interface Page<T> {
	items: T[];
	nextCursor: string | null;
	total: number;
}

/** A page of an image search, whose total is only counted so far (see EXACT_TOTAL_LIMIT in paging.ts). */
export interface SearchPage<T> extends Page<T> {
	/** When true, counting stopped: more than `total` images match. When false, `total` is exact. */
	totalIsEstimate: boolean;
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
