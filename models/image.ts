/**
 * Image metadata: the document shape and the backend-neutral repository contract. SQLite
 * implements it now (sqlite-image-repository.ts); MongoDB implements the same interface for
 * distributed mode, and one contract test suite runs against every implementation.
 */
import type { SearchQuery } from "./search-query.ts";

export type Visibility = "private" | "public";
export type ImageStatus = "processing" | "ready" | "failed";
export type TagSource = "user" | "hashtag" | "auto";
export type Role = "user" | "admin";

export interface Tag {
	label: string;
	source: TagSource;
	score?: number;
	model?: string;
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
	/** Storage key of the original bytes; internal, never sent to clients. */
	blob: string;
	createdAt: string;
	updatedAt: string;
}

/** Fields an owner or admin may change. */
export type ImagePatch = Partial<Pick<ImageDoc, "name" | "description" | "tags" | "category" | "visibility" | "status">>;

/** Who is asking: decides which private images are visible. null = anonymous. */
export type Viewer = { id: string; role: Role } | null;

export type SortKey = "createdAt" | "-createdAt" | "views" | "-views" | "name";

export interface ImageFilter {
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

export interface Category {
	/** URL-safe slug derived from the name at creation; never changes. */
	id: string;
	name: string;
	description: string;
	createdAt: string;
	updatedAt: string;
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
	/** True when the backend answers. */
	ping(): Promise<boolean>;
	close(): Promise<void>;
}

export interface CategoryRepository {
	list(): Promise<Category[]>;
	get(id: string): Promise<Category | null>;
	/** Throws ConflictError when the id or name is taken. */
	insert(category: Category): Promise<void>;
	update(id: string, patch: Partial<Pick<Category, "name" | "description">>): Promise<Category | null>;
	remove(id: string): Promise<boolean>;
	ping(): Promise<boolean>;
	close(): Promise<void>;
}
