/**
 * What the API shows of share links: to their owner (never the token's hash nor the password's),
 * and to guests the images a link opens, with nothing of the owner's account and, unless the
 * owner allowed metadata, neither the uploaded file name nor what the camera recorded.
 */
import type { PublicImage } from "../images/public-image.ts";
import type { ShareDoc } from "./share.ts";
import type { GuestImage, GuestShare, OwnerShare, ShareGrant } from "./share-types.ts";

export function isExpired(share: Pick<ShareDoc, "expiresAt">, now = Date.now()): boolean {
	return share.expiresAt !== null && Date.parse(share.expiresAt) <= now;
}

export function grantOf(share: ShareDoc): ShareGrant {
	return { showMetadata: share.showMetadata, allowDownload: share.allowDownload };
}

export function toOwnerShare(share: ShareDoc): OwnerShare {
	return {
		id: share.id,
		owner: share.owner,
		kind: share.albumId === null ? "image" : "album",
		imageId: share.imageId,
		albumId: share.albumId,
		expiresAt: share.expiresAt,
		expired: isExpired(share),
		hasPassword: share.passwordHash !== null,
		allowDownload: share.allowDownload,
		showMetadata: share.showMetadata,
		createdAt: share.createdAt,
		updatedAt: share.updatedAt
	};
}

export function toGuestShare(share: ShareDoc): GuestShare {
	return { kind: share.albumId === null ? "image" : "album", expiresAt: share.expiresAt, ...grantOf(share) };
}

/**
 * An image as a link's guest sees it: nothing of the owner's account. The images service already
 * applied the one metadata rule to it (its `imageView`: `<id>.<ext>` and no camera details unless
 * the image or the link shows metadata); without it, of the metadata only what displaying needs
 * (size, format, the placeholder) is kept, not even whether it has a position.
 */
export function toGuestImage(image: PublicImage, grant: ShareGrant): GuestImage {
	const { id, name, description, filename, contentType, format, size, width, height, tags, renditions, createdAt, metadata } = image;
	const shown = { id, name, description, filename, contentType, format, size, width, height, tags, renditions, createdAt };
	if (grant.showMetadata || image.showMetadata) return { ...shown, metadata };
	return { ...shown, metadata: metadata && { width: metadata.width, height: metadata.height, format: metadata.format, thumbhash: metadata.thumbhash } };
}
