/**
 * Share links: the stored shape and the backend-neutral repository contract, implemented on SQLite
 * (sqlite-repository.ts, in the images database) and MongoDB (mongo-repository.ts). A link opens
 * one image or one album to whoever holds its token, until it expires or its owner deletes it.
 *
 * Only the SHA-256 of a token is stored, as a password's hash is: whoever reads the database (a
 * backup, a leaked dump) gets no working link, and a token is found by looking its hash up, never
 * by comparing secrets. The price: a link's URL is shown once, when it is made (docs/sharing.md).
 */
import { createHash, randomBytes } from "node:crypto";
import { BadRequestError } from "../shared/errors.ts";

export interface ShareDoc {
	id: string;
	/** User id of the owner: the one who made the link and may change or delete it. */
	owner: string;
	/** What the link opens: exactly one of the two is set. */
	imageId: string | null;
	albumId: string | null;
	/** SHA-256 (hex) of the token in the link's URL; the token itself is never stored. */
	tokenHash: string;
	/** scrypt hash (models/users/password.ts) of the link's password, or null for none. */
	passwordHash: string | null;
	/** ISO time after which the link answers 410; null: it never expires. */
	expiresAt: string | null;
	/** False: only renditions, never the original's bytes. */
	allowDownload: boolean;
	/** True: guests get the EXIF/XMP/IPTC/GPS and the uploaded file name too. */
	showMetadata: boolean;
	createdAt: string;
	updatedAt: string;
}

/** What an owner may change; undefined leaves a field as it is, null clears expiry or password. */
export type SharePatch = Partial<Pick<ShareDoc, "passwordHash" | "expiresAt" | "allowDownload" | "showMetadata">>;

/** Every field of a ShareDoc but its id, for stores that map records field by field. */
export const SHARE_FIELDS = [
	"owner",
	"imageId",
	"albumId",
	"tokenHash",
	"passwordHash",
	"expiresAt",
	"allowDownload",
	"showMetadata",
	"createdAt",
	"updatedAt"
] as const satisfies readonly (keyof ShareDoc)[];

export interface SharePage {
	items: ShareDoc[];
	nextCursor: string | null;
}

/** The links a deleted image or album takes with it. */
export type ShareTarget = { imageId: string } | { albumId: string };

export interface ShareRepository {
	/** Throws ConflictError when the id or the token hash is taken. */
	insert(share: ShareDoc): Promise<void>;
	get(id: string): Promise<ShareDoc | null>;
	findByTokenHash(tokenHash: string): Promise<ShareDoc | null>;
	/** The owner's links, newest first, in keyset pages (`cursor` is a page's nextCursor). */
	listByOwner(owner: string, limit: number, cursor?: string): Promise<SharePage>;
	update(id: string, patch: SharePatch): Promise<ShareDoc | null>;
	remove(id: string): Promise<boolean>;
	/** Deletes every link to an image or an album (it was deleted); answers how many. */
	removeByTarget(target: ShareTarget): Promise<number>;
	/** Deletes every link an account made (the account was deleted); answers how many. */
	removeByOwner(owner: string): Promise<number>;
	ping(): Promise<boolean>;
	close(): Promise<void>;
}

/** 32 random bytes (256 bits), URL-safe: unguessable, and long enough that a hash lookup is all it takes. */
export function newShareToken(): string {
	return randomBytes(32).toString("base64url");
}

export function tokenHashOf(token: string): string {
	return createHash("sha256").update(token).digest("hex");
}

/** A share's position in its owner's list (newest first): where the next page starts. */
interface ShareCursor {
	createdAt: string;
	id: string;
}

export function encodeShareCursor(share: ShareDoc): string {
	const cursor: ShareCursor = { createdAt: share.createdAt, id: share.id };
	return Buffer.from(JSON.stringify(cursor)).toString("base64url");
}

/** Rejects anything listByOwner did not produce. */
export function decodeShareCursor(text: string): ShareCursor {
	let cursor: Partial<ShareCursor> | null = null;
	try {
		cursor = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as Partial<ShareCursor> | null;
	} catch {
		// Not JSON: refused below like any other malformed cursor.
	}
	if (cursor === null || typeof cursor !== "object" || typeof cursor.createdAt !== "string" || typeof cursor.id !== "string") {
		throw new BadRequestError("Invalid cursor: pass nextCursor from the previous page", "INVALID_CURSOR");
	}
	return { createdAt: cursor.createdAt, id: cursor.id };
}

/** A page from the first `limit + 1` matches: one more than asked tells whether a next page exists. */
export function sharePageOf(matches: ShareDoc[], limit: number): SharePage {
	const items = matches.slice(0, limit);
	return { items, nextCursor: matches.length > limit ? encodeShareCursor(items.at(-1)!) : null };
}
