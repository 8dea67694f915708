/**
 * Conditional requests and the caching headers of image bytes. An image id's bytes never change,
 * so every answer carries a strong ETag and may be cached; who asks decides who may keep a copy
 * and for how long (the images service's cacheScope).
 */

/**
 * Who may keep a copy of an answer: `public`, shared caches too, for an hour; `private`, the
 * caller's browser, for an hour; `revalidate`, the caller's browser, asking again before each use
 * (a 304 while access lasts), for answers whose access can end at any moment (a share link, an
 * album membership).
 */
export type CacheScope = "public" | "private" | "revalidate";

const CACHE_CONTROL: Record<CacheScope, string> = {
	public: "public, max-age=3600",
	private: "private, max-age=3600",
	revalidate: "private, no-cache"
};

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
export function deliveryHeaders(scope: CacheScope, etag: string, filename: string): Record<string, string | number> {
	return {
		ETag: `"${etag}"`,
		"Cache-Control": CACHE_CONTROL[scope],
		"Content-Disposition": `inline; filename*=UTF-8''${encodeURIComponent(filename)}`
	};
}
