/**
 * What the API says about share links, to their owners and to guests: pure type declarations
 * that the web app imports too (type-only) and compiles without Node's types, so this file
 * imports nothing but other pure-type files.
 */
import type { ImageMetadata } from "../images/image-types.ts";
import type { PublicImage } from "../images/public-image.ts";

/** What a link lets a guest have; the images service reads it as ctx.meta.grant. */
export interface ShareGrant {
	showMetadata: boolean;
	allowDownload: boolean;
}

export type ShareKind = "image" | "album";

/** A link as its owner sees it (GET /api/shares); `url` only in the answer that made it. */
export interface OwnerShare extends ShareGrant {
	id: string;
	owner: string;
	kind: ShareKind;
	imageId: string | null;
	albumId: string | null;
	expiresAt: string | null;
	expired: boolean;
	hasPassword: boolean;
	createdAt: string;
	updatedAt: string;
	url?: string;
}

/** What GET /s/<token> says of the link itself. */
export interface GuestShare extends ShareGrant {
	kind: ShareKind;
	expiresAt: string | null;
}

/** An image as a link's guest sees it: nothing of the owner's account, metadata only if allowed. */
export type GuestImage = Pick<PublicImage, "id" | "name" | "description" | "filename" | "contentType" | "format" | "size" | "width" | "height" | "tags" | "renditions" | "createdAt"> & {
	metadata: Partial<ImageMetadata> | null;
};

/** GET /s/<token>: an image link's image, or a page of an album link's images. */
export type OpenedShare = { share: GuestShare; image: GuestImage } | { share: GuestShare; items: GuestImage[]; nextCursor: string | null };
