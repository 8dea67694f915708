/**
 * Albums: the stored shapes and the backend-neutral repository contract, implemented on SQLite
 * (sqlite-repository.ts, in the images database) and MongoDB (mongo-repository.ts). An album is
 * a list of image ids with an owner and members; it never owns the images, so removing an album
 * (or an image from it) leaves every image as it was. The web app imports these types (type-only)
 * and compiles this file without Node's types: import nothing here that needs them.
 */

/** What a member may do: viewers read; contributors also add and remove their own images. */
export type MemberRole = "viewer" | "contributor";
/** The caller's role in an album; administrators act as owners. */
export type AlbumRole = "owner" | MemberRole;

export interface Album {
	id: string;
	/** User id of the owner. */
	owner: string;
	/** Username of the owner (usernames never change, so this copy cannot go stale). */
	ownerName: string;
	name: string;
	description: string;
	createdAt: string;
	updatedAt: string;
}

export interface AlbumMember {
	userId: string;
	username: string;
	role: MemberRole;
	addedAt: string;
}

/** An image in an album. */
export interface AlbumEntry {
	imageId: string;
	/** The image's owner (never changes): contributors remove only their own images. */
	imageOwner: string;
	/** Who put it in the album. */
	addedBy: string;
	addedAt: string;
	/**
	 * The sort key of `sort=takenAt`: the EXIF DateTimeOriginal the pipeline read, else the upload
	 * time (refreshed when the pipeline finishes an image added while it was processing).
	 */
	takenAt: string;
}

/** An album as a user's list shows it: their role, how many images and members, and a cover. */
export interface AlbumSummary extends Album {
	role: AlbumRole;
	imageCount: number;
	memberCount: number;
	/** The image added last (and not in the trash), or null for an album with none. */
	cover: string | null;
}

/** Orders of an album's images, each tie-broken by image id in the same direction. */
export const ALBUM_SORTS = ["-addedAt", "addedAt", "-takenAt", "takenAt"] as const;
export type AlbumSort = (typeof ALBUM_SORTS)[number];

export interface AlbumPageRequest {
	sort: AlbumSort;
	limit: number;
	/** Opaque cursor from a previous page of the same sort order. */
	cursor?: string;
}

export interface AlbumRepository {
	insert(album: Album): Promise<void>;
	get(id: string): Promise<Album | null>;
	update(id: string, patch: Partial<Pick<Album, "name" | "description">>): Promise<Album | null>;
	/** Removes the album, its entries and memberships (never the images); false when there was none. */
	remove(id: string): Promise<boolean>;
	/** The albums a user owns or is a member of, newest first, with role, counts and cover (the trash left out). */
	listFor(userId: string): Promise<AlbumSummary[]>;
	/** The user's member role in the album, or null (the owner is no member). */
	memberRole(albumId: string, userId: string): Promise<MemberRole | null>;
	/** Members in the order they were added. */
	members(albumId: string): Promise<AlbumMember[]>;
	/** Adds the member, or changes the role of one already there. */
	setMember(albumId: string, member: AlbumMember): Promise<void>;
	removeMember(albumId: string, userId: string): Promise<boolean>;
	/** Adds the entries not in the album yet (an image is in an album once); returns how many were new. */
	addImages(albumId: string, entries: AlbumEntry[]): Promise<number>;
	/** Removes these images from the album; returns how many were in it. */
	removeImages(albumId: string, imageIds: string[]): Promise<number>;
	/** The album's entries for these image ids (those in it). */
	entries(albumId: string, imageIds: string[]): Promise<AlbumEntry[]>;
	/** A keyset page of the album's entries (see paging.ts), those in the trash left out. */
	imagePage(albumId: string, request: AlbumPageRequest): Promise<{ items: AlbumEntry[]; nextCursor: string | null }>;
	/** Every image id in the album but those in the trash, the one added last first. */
	imageIds(albumId: string): Promise<string[]>;
	/** Whether some album holding the image is owned by the user or has them as a member. */
	grantsView(imageId: string, userId: string): Promise<boolean>;
	/** Sets the takenAt sort key of the image in every album; returns how many entries changed. */
	setTakenAt(imageId: string, takenAt: string): Promise<number>;
	/**
	 * Marks the image's entries in the trash, or out of it: an entry of an image in the trash keeps
	 * its place in its albums but counts nowhere (not in counts, covers, pages nor imageIds) until
	 * its restore. Returns how many entries changed.
	 */
	setTrashed(imageId: string, trashed: boolean): Promise<number>;
	/** Drops the image from every album (it was deleted); returns how many entries went. */
	removeImageEverywhere(imageId: string): Promise<number>;
	/** Removes the user's albums and memberships (their account is gone); returns how many albums went. */
	removeUser(userId: string): Promise<number>;
	ping(): Promise<boolean>;
	close(): Promise<void>;
}
