/**
 * Conditional requests and the caching headers of image bytes. An image id's bytes never change,
 * so every answer carries a strong ETag and may be cached; the image's visibility decides who
 * may keep a copy (shared caches only for public images).
 */
import type { Visibility } from "../images/image.ts";

/** If-None-Match uses the weak comparison (RFC 9110 §13.1.2): a `W/` prefix does not matter. */
export function etagMatches(header: string | undefined, etag: string): boolean {
	if (!header) return false;
	return header.trim() === "*" || header.split(",").some(candidate => candidate.trim().replace(/^W\//, "") === etag);
}

/**
 * Headers of any bytes derived from an image (the original or a variant), named `filename`,
 * whose extension must be that of the bytes' real format. nosniff and the policy that keeps
 * them from running as a page are the gateway's, on every answer (models/http/gateway.ts).
 */
export function deliveryHeaders(visibility: Visibility, etag: string, filename: string): Record<string, string | number> {
	return {
		ETag: `"${etag}"`,
		"Cache-Control": visibility === "public" ? "public, max-age=3600" : "private, max-age=3600",
		"Content-Disposition": `inline; filename*=UTF-8''${encodeURIComponent(filename)}`
	};
}
