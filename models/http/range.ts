/** HTTP Range header parsing (RFC 9110 §14), single byte ranges only. */
import type { ByteRange } from "../storage/blob-store.ts";

/**
 * Returns the inclusive range to send, null to send the whole body (no header, or a form we do
 * not serve partially, such as multiple ranges: ignoring Range is always allowed), or
 * "unsatisfiable" for a range that starts past the end.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null | "unsatisfiable" {
	if (!header || !header.startsWith("bytes=") || header.includes(",")) return null;
	const spec = header.slice("bytes=".length).trim();
	const dash = spec.indexOf("-");
	if (dash < 0) return null;
	const first = spec.slice(0, dash);
	const last = spec.slice(dash + 1);
	if (!/^\d*$/.test(first) || !/^\d*$/.test(last) || (first === "" && last === "")) return null;
	if (first === "") {
		// Suffix range: the last N bytes.
		const length = Math.min(Number(last), size);
		return length === 0 ? "unsatisfiable" : { start: size - length, end: size - 1 };
	}
	const start = Number(first);
	const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
	if (start >= size) return "unsatisfiable";
	if (end < start) return null;
	return { start, end };
}
