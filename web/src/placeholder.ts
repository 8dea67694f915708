/**
 * Blurred placeholders: the pipeline stores a ThumbHash of each image (metadata.thumbhash, about
 * 25 bytes of base64); decoded here into a small PNG data URL shown until the thumbnail arrives.
 */
import type { PublicImage } from "../../models/images/public-image.ts";
import type { GuestImage } from "../../models/shares/share-types.ts";
import { thumbHashToDataURL } from "./vendor/thumbhash.js";

const cache = new Map<string, string>();

/** A data URL of the image's placeholder, or null when it has none (not processed yet, or older). */
export function placeholderUrl(image: Pick<PublicImage, "metadata"> | Pick<GuestImage, "metadata">): string | null {
	const hash = image.metadata?.thumbhash;
	if (!hash) return null;
	let url = cache.get(hash);
	if (!url) {
		try {
			url = thumbHashToDataURL(Uint8Array.from(atob(hash), char => char.charCodeAt(0)));
		} catch {
			return null;
		}
		cache.set(hash, url);
	}
	return url;
}

/** Shows the placeholder as the element's background (set through CSSOM: the CSP forbids style attributes). */
export function setPlaceholder(el: HTMLElement, image: Pick<PublicImage, "metadata"> | Pick<GuestImage, "metadata">): void {
	const url = placeholderUrl(image);
	el.style.backgroundImage = url ? `url("${url}")` : "";
}
