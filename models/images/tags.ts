/** Tag labels: how user input becomes the normalized labels that are stored and searched. */

/** The longest tag label, in characters. */
export const MAX_LABEL = 50;
const MAX_TAGS = 50;

export function normalizeLabel(raw: string): string {
	return raw.trim().replace(/\s+/g, " ").toLowerCase().slice(0, MAX_LABEL);
}

/** A comma-separated string or a list of labels -> distinct normalized labels. */
export function tagList(input: string | string[] | undefined): string[] {
	if (input === undefined) return [];
	const parts = Array.isArray(input) ? input : input.split(",");
	const labels = parts.map(normalizeLabel).filter(Boolean);
	return [...new Set(labels)].slice(0, MAX_TAGS);
}

/** `#hashtags` in free text (letters, digits, `_` and `-`), as normalized labels. */
export function hashtagsOf(text: string): string[] {
	// One linear pass; the character class cannot backtrack.
	const found = text.matchAll(/#([\p{L}\p{N}_-]{1,50})/gu);
	return [...new Set([...found].map(match => normalizeLabel(match[1]!)))].slice(0, MAX_TAGS);
}
