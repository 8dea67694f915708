/**
 * An image search (the typed filter of GET /images plus the parsed `q`) as a backend-neutral list
 * of conditions that must all hold. Each repository only compiles these into its own query
 * language, so what a search means, the access rule included, is decided once, here.
 */
import { accessScope, type Viewer } from "../shared/access.ts";
import type { ImageFilter } from "./image.ts";
import type { SearchableField } from "./search-query.ts";

export type SearchCondition =
	/** The field equals the value (owner is the owner's account id). */
	| { kind: "equals"; field: "visibility" | "category" | "owner"; value: string }
	/** In the trash (true) or not (false). */
	| { kind: "trashed"; trashed: boolean }
	/** Public, or owned by `owner`: what a signed-in user who is not an admin may see. */
	| { kind: "publicOrOwnedBy"; owner: string }
	/** At least one of these tag labels. */
	| { kind: "anyTag"; labels: string[] }
	/** This keyword is indexed for the image. */
	| { kind: "word"; word: string }
	/** Some indexed keyword starts with this. */
	| { kind: "wordPrefix"; prefix: string }
	/** The normalized text contains this normalized phrase. */
	| { kind: "phrase"; phrase: string }
	/** The normalized text of one field (its line in the index, FIELD_LINES) contains the phrase. */
	| { kind: "fieldPhrase"; field: SearchableField; phrase: string }
	/** Created at or after `from`, and before `before` (ISO times); either may be absent. */
	| { kind: "created"; from?: string; before?: string }
	/** One of these images (ImageFilter.ids). */
	| { kind: "idIn"; ids: string[] };

/** Everything of the filter except the cursor (that is also what a page's `total` counts). */
export function searchConditions(filter: ImageFilter): SearchCondition[] {
	const trashed = filter.trashed ?? false;
	const where: SearchCondition[] = filter.ids ? [trashCondition(trashed), { kind: "idIn", ids: filter.ids }] : accessConditions(filter.viewer, trashed);
	if (filter.visibility) where.push({ kind: "equals", field: "visibility", value: filter.visibility });
	if (filter.category !== undefined) where.push({ kind: "equals", field: "category", value: filter.category });
	if (filter.owner !== undefined) where.push({ kind: "equals", field: "owner", value: filter.owner });
	if (filter.tags && filter.tags.length > 0) where.push({ kind: "anyTag", labels: filter.tags });
	if (filter.query) where.push(...queryConditions(filter.query));
	return where;
}

/** The usernames a search names as owner (`?owner=` and `owner:` in `q`), each once. */
export function ownerNamesOf(ownerParam: string | undefined, query: ImageFilter["query"]): string[] {
	return [...new Set([ownerParam, query?.ownerName].filter((name): name is string => name !== undefined))];
}

/**
 * The owner filter from the account ids those names have now (null: no such account): undefined
 * when no owner was named, null when no image can match (an unknown name, or two accounts).
 */
export function ownerIdOf(ids: readonly (string | null)[]): string | null | undefined {
	if (ids.length === 0) return undefined;
	if (ids.includes(null) || new Set(ids).size > 1) return null;
	return ids[0]!;
}

/**
 * What a viewer may see at all (the one access rule, models/shared/access.ts), and never what is
 * in the trash, unless the trash itself (`trashed`) is listed.
 */
export function accessConditions(viewer: Viewer, trashed = false): SearchCondition[] {
	const bin = trashCondition(trashed);
	const scope = accessScope(viewer);
	if (scope.all) return [bin];
	if (scope.owner === null) return [bin, { kind: "equals", field: "visibility", value: "public" }];
	return [bin, { kind: "publicOrOwnedBy", owner: scope.owner }];
}

/** In the trash (true: listing the trash) or, everywhere else, not. */
function trashCondition(trashed: boolean): SearchCondition {
	return { kind: "trashed", trashed };
}

function queryConditions(query: NonNullable<ImageFilter["query"]>): SearchCondition[] {
	// `owner:` names an account, whose id only the users service knows: the caller resolves it
	// into filter.owner (images.list, ownerIdOf). Searching the stored name instead would hand a
	// deleted account's images to whoever registers its name next.
	if (query.ownerName !== undefined) throw new Error("owner: must be resolved to an account id (filter.owner) before searching");
	// Likewise `album:`, whose images and who may see them only the albums service knows.
	if (query.album !== undefined) throw new Error("album: must be resolved to image ids (filter.ids) before searching");
	const where: SearchCondition[] = query.words.map(word => ({ kind: "word", word }));
	if (query.prefix) where.push({ kind: "wordPrefix", prefix: query.prefix });
	for (const phrase of query.phrases) where.push({ kind: "phrase", phrase }, ...keywordsInPhrase(phrase));
	for (const { field, phrase } of query.fieldPhrases) where.push({ kind: "fieldPhrase", field, phrase }, ...keywordsInPhrase(phrase));
	for (const labels of query.tagGroups) where.push({ kind: "anyTag", labels });
	if (query.category !== undefined) where.push({ kind: "equals", field: "category", value: query.category });
	if (query.createdFrom || query.createdBefore) where.push({ kind: "created", from: query.createdFrom, before: query.createdBefore });
	return where;
}

/** Whole keywords a phrase adds at most (keywordsInPhrase). */
const MAX_WHOLE_KEYWORDS_PER_PHRASE = 2;
/** Splits text into runs of letters and digits, the characters keywords are made of (keywordsOf). */
const NOT_KEYWORD = /[^\p{L}\p{N}]+/u;

/**
 * What a phrase says about the keywords of any image that contains it, as conditions the
 * backends' keyword indexes can look up (the phrase condition itself needs the text): a run of
 * letters and digits with other characters on both sides within the phrase is a whole keyword;
 * the last run, with one before it, starts a keyword. The first run may end a longer keyword and
 * a single run may sit inside one: they imply nothing an index can find. Only the longest whole
 * keywords (the likeliest to be rare) are kept, so a long phrase adds few look-ups.
 */
function keywordsInPhrase(phrase: string): SearchCondition[] {
	const runs = phrase.split(NOT_KEYWORD);
	if (runs.length < 2) return [];
	const whole: SearchCondition[] = [...new Set(runs.slice(1, -1).filter(run => run !== ""))]
		.sort((a, b) => b.length - a.length)
		.slice(0, MAX_WHOLE_KEYWORDS_PER_PHRASE)
		.map(word => ({ kind: "word", word }));
	const last = runs.at(-1)!;
	return last === "" ? whole : [...whole, { kind: "wordPrefix", prefix: last }];
}
