import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BadRequestError } from "../../../models/shared/errors.ts";
import { MAX_QUERY_LENGTH, MAX_QUERY_TERMS, keywordsOf, multiWordTagCandidates, parseSearchQuery, phraseTextOf, searchIndexOf } from "../../../models/images/search-query.ts";
import type { SearchQuery } from "../../../models/images/search-query.ts";

const NOTHING: SearchQuery = {
	words: [],
	prefix: undefined,
	phrases: [],
	fieldPhrases: [],
	tagGroups: [],
	category: undefined,
	ownerName: undefined,
	album: undefined,
	createdFrom: undefined,
	createdBefore: undefined
};

function assertParses(input: string, expected: Partial<SearchQuery>, knownLabels?: ReadonlySet<string>): void {
	assert.deepEqual(parseSearchQuery(input, knownLabels), { ...NOTHING, ...expected });
}

/** Asserts a 400 INVALID_SEARCH_QUERY whose message contains `mentions`. */
function assertRejected(input: string, mentions: string): void {
	assert.throws(
		() => parseSearchQuery(input),
		(err: unknown) => {
			assert.ok(err instanceof BadRequestError);
			assert.equal(err.code, 400);
			assert.equal(err.type, "INVALID_SEARCH_QUERY");
			assert.ok(err.message.includes(mentions), `"${err.message}" should mention "${mentions}"`);
			return true;
		}
	);
}

/** The range a date term resolves to. */
function rangeOf(input: string): Pick<SearchQuery, "createdFrom" | "createdBefore"> {
	const { createdFrom, createdBefore } = parseSearchQuery(input);
	return { createdFrom, createdBefore };
}

const day = (iso: string) => `${iso}T00:00:00.000Z`;

describe("keywordsOf", () => {
	it("lower-cases and splits on everything but letters and digits", () => {
		assert.deepEqual(keywordsOf("Black-and-White photo_2024 (v2.1)!"), ["black", "and", "white", "photo", "2024", "v2", "1"]);
	});

	it("keeps the letters of any script and folds accents", () => {
		assert.deepEqual(keywordsOf("Café Ünïcode Москва 東京 ℌİ"), ["cafe", "unicode", "москва", "東京", "hi"]);
	});

	it("returns nothing for punctuation only, and keeps repeats in order", () => {
		assert.deepEqual(keywordsOf(" -- ;; "), []);
		assert.deepEqual(keywordsOf("b a b"), ["b", "a", "b"]);
	});
});

describe("phraseTextOf and searchIndexOf", () => {
	it("normalizes phrases like keywords but keeps punctuation, one space between words", () => {
		assert.equal(phraseTextOf("  Red,\t\n  CAFÉ  car "), "red, cafe car");
	});

	it("indexes name, description, tag labels and category, one line per field", () => {
		const index = searchIndexOf({
			name: "Sunset Beach",
			description: "Warm  evening",
			tags: [{ label: "beach", source: "user" }, { label: "new york", source: "auto" }],
			category: "travel-photos"
		});
		assert.deepEqual(index.keywords, ["sunset", "beach", "warm", "evening", "new", "york", "travel", "photos"]);
		assert.equal(index.text, "sunset beach\nwarm evening\nbeach\nnew york\ntravel-photos");
	});

	it("indexes a missing category as an empty line", () => {
		assert.equal(searchIndexOf({ name: "A", description: "", tags: [], category: null }).text, "a\n\n");
	});
});

describe("parseSearchQuery: words", () => {
	it("parses an empty or blank query as no conditions", () => {
		assertParses("", {});
		assertParses(" \t\n ", {});
	});

	it("makes the last free word a prefix and the others whole words", () => {
		assertParses("Sunset  BEACH", { words: ["sunset"], prefix: "beach" });
		assertParses("sun", { prefix: "sun" });
	});

	it("splits words the way keywordsOf does, and drops repeats", () => {
		assertParses("black-and-white cat cat", { words: ["black", "and", "white", "cat"], prefix: "cat" });
	});

	it("keeps the last free word the prefix even when terms follow it", () => {
		assertParses("sun tag:beach", { prefix: "sun", tagGroups: [["beach"]] });
	});

	it("treats unknown keys as words", () => {
		assertParses("foo:bar http://example.com", { words: ["foo", "bar", "http", "example"], prefix: "com" });
	});
});

describe("parseSearchQuery: terms", () => {
	it("reads tag lists as one any-of group, each repetition as another required group", () => {
		assertParses("tag:Cat,dog tag:bird", { tagGroups: [["cat", "dog"], ["bird"]] });
	});

	it("keeps spaces and commas inside quoted values", () => {
		assertParses('tag:"New  York",paris,"a,b"', { tagGroups: [["new york", "paris", "a,b"]] });
		assertParses('tag:"new york', { tagGroups: [["new york"]] });
	});

	it("matches keys case-insensitively", () => {
		assertParses("TAG:x Category:y OWNER:z", { tagGroups: [["x"]], category: "y", ownerName: "z" });
	});

	it("lower-cases category ids, keeps owner names as typed, and lets the last repetition win", () => {
		assertParses("category:Nature owner:Alice", { category: "nature", ownerName: "Alice" });
		assertParses("category:a category:b owner:x owner:y", { category: "b", ownerName: "y" });
	});

	it("keeps album ids as typed (they are case-sensitive), the last repetition winning", () => {
		assertParses("album:AbC-_9 beach", { album: "AbC-_9", prefix: "beach" });
		assertParses("ALBUM:one album:Two", { album: "Two" });
		assertParses("album:", {});
	});

	it("ignores keys with empty values, as while the user is still typing", () => {
		assertParses("tag: category: owner: date: from: to: tag:,,", {});
		assertParses("tag: sunset", { prefix: "sunset" });
		assertParses("name: desc: tags:", {});
	});

	it("takes tags: as tag:, the way stock-image sites spell it", () => {
		assertParses("tags:Cat,dog", { tagGroups: [["cat", "dog"]] });
	});

	it("reads name: and desc: as phrases in that field alone", () => {
		assertParses('name:Beach desc:"In  the PARK" desc:in the', {
			fieldPhrases: [
				{ field: "name", phrase: "beach" },
				{ field: "description", phrase: "in the park" },
				{ field: "description", phrase: "in" }
			],
			prefix: "the"
		});
	});
});

describe("parseSearchQuery: multi-word tags typed without quotes", () => {
	it("names the labels a tag: and the words after it could spell", () => {
		assert.deepEqual(multiWordTagCandidates("tag:Golden retriever dog"), ["golden retriever", "golden retriever dog"]);
		assert.deepEqual(multiWordTagCandidates('tag:a,b c tag:"x" y "z"'), ["x y"], "a list of tags, or a phrase, does not continue a label");
		assert.deepEqual(multiWordTagCandidates("retriever tag:golden"), []);
	});

	it("reads the longest known label, and the words after it as words", () => {
		const known = new Set(["golden retriever", "golden retriever puppy"]);
		assertParses("tag:golden retriever", { tagGroups: [["golden"]], prefix: "retriever" });
		assertParses("tag:golden retriever", { tagGroups: [["golden retriever"]] }, known);
		assertParses("tag:golden retriever puppy sunny", { tagGroups: [["golden retriever puppy"]], prefix: "sunny" }, known);
		assertParses("tag:golden retriever sunny", { tagGroups: [["golden retriever"]], prefix: "sunny" }, known);
	});

	it("never lets a run of words grow past the longest label", () => {
		const a40 = "a".repeat(40);
		assert.deepEqual(multiWordTagCandidates(`tag:${a40} bbbb cccc dddd`), [`${a40} bbbb`, `${a40} bbbb cccc`], "50 characters at most");
		assert.deepEqual(multiWordTagCandidates(`tag:${"a".repeat(45)} bbbbb`), []);
	});

});

describe("parseSearchQuery: dates", () => {
	it("resolves every date form to an inclusive-start, exclusive-end range in UTC", () => {
		assert.deepEqual(rangeOf("date:2024"), { createdFrom: day("2024-01-01"), createdBefore: day("2025-01-01") });
		assert.deepEqual(rangeOf("date:03-2024"), { createdFrom: day("2024-03-01"), createdBefore: day("2024-04-01") });
		assert.deepEqual(rangeOf("date:3-2024"), { createdFrom: day("2024-03-01"), createdBefore: day("2024-04-01") });
		assert.deepEqual(rangeOf("date:2024-03"), { createdFrom: day("2024-03-01"), createdBefore: day("2024-04-01") });
		assert.deepEqual(rangeOf("date:15-03-2024"), { createdFrom: day("2024-03-15"), createdBefore: day("2024-03-16") });
		assert.deepEqual(rangeOf("date:2024-03-15"), { createdFrom: day("2024-03-15"), createdBefore: day("2024-03-16") });
	});

	it("rolls over month and year ends", () => {
		assert.deepEqual(rangeOf("date:12-2024"), { createdFrom: day("2024-12-01"), createdBefore: day("2025-01-01") });
		assert.deepEqual(rangeOf("date:31-12-2024"), { createdFrom: day("2024-12-31"), createdBefore: day("2025-01-01") });
		assert.deepEqual(rangeOf("date:30-04-2024"), { createdFrom: day("2024-04-30"), createdBefore: day("2024-05-01") });
		assert.deepEqual(rangeOf("date:28-02-2023"), { createdFrom: day("2023-02-28"), createdBefore: day("2023-03-01") });
	});

	it("knows leap days", () => {
		assert.deepEqual(rangeOf("date:29-02-2024"), { createdFrom: day("2024-02-29"), createdBefore: day("2024-03-01") });
		assert.deepEqual(rangeOf("date:2000-02-29"), { createdFrom: day("2000-02-29"), createdBefore: day("2000-03-01") });
		assert.deepEqual(rangeOf("date:28-02-2024"), { createdFrom: day("2024-02-28"), createdBefore: day("2024-02-29") });
		assertRejected("date:29-02-2023", "date:29-02-2023");
		assertRejected("date:1900-02-29", "date:1900-02-29");
	});

	it("rejects impossible days and months, naming the term", () => {
		assertRejected("date:31-02-2024", '"date:31-02-2024"');
		assertRejected("cats date:31-04-2024", '"date:31-04-2024"');
		assertRejected("date:13-2024", "no month 13");
		assertRejected("from:00-2024", "no month 0");
		assertRejected("to:00-01-2024", "no day 0");
	});

	it("rejects values that are no date form", () => {
		for (const value of ["yesterday", "24", "20240", "2024/03", "2024-03-15T10:00", "-", "2024--03", "123-2024", "+2024", "٢٠٢٤"]) {
			assertRejected(`date:${value}`, `date:${value}`);
		}
	});

	it("bounds only the start with from: and only the end with to:, both inclusive", () => {
		assert.deepEqual(rangeOf("from:15-03-2024"), { createdFrom: day("2024-03-15"), createdBefore: undefined });
		assert.deepEqual(rangeOf("to:15-03-2024"), { createdFrom: undefined, createdBefore: day("2024-03-16") });
		assert.deepEqual(rangeOf("from:2023 to:03-2024"), { createdFrom: day("2023-01-01"), createdBefore: day("2024-04-01") });
	});

	it("intersects several date terms", () => {
		assert.deepEqual(rangeOf("date:2024 from:2024-06-10 to:2030"), { createdFrom: day("2024-06-10"), createdBefore: day("2025-01-01") });
		assert.deepEqual(rangeOf("to:2030 date:03-2024 from:2020"), { createdFrom: day("2024-03-01"), createdBefore: day("2024-04-01") });
		// Disjoint terms leave an empty range, which matches nothing.
		assert.deepEqual(rangeOf("date:2023 date:2024"), { createdFrom: day("2024-01-01"), createdBefore: day("2024-01-01") });
	});

	it("leaves the end open past year 9999 and writes early years with four digits", () => {
		assert.deepEqual(rangeOf("date:9999"), { createdFrom: day("9999-01-01"), createdBefore: undefined });
		assert.deepEqual(rangeOf("to:31-12-9999"), { createdFrom: undefined, createdBefore: undefined });
		assert.deepEqual(rangeOf("date:0050"), { createdFrom: day("0050-01-01"), createdBefore: day("0051-01-01") });
	});
});

describe("parseSearchQuery: phrases", () => {
	it("normalizes quoted phrases and keeps them apart from words", () => {
		assertParses('"Red  Car" sunset "a-b"', { prefix: "sunset", phrases: ["red car", "a-b"] });
	});

	it("runs an unterminated phrase to the end of the input", () => {
		assertParses('cat "black  dog tag:x', { prefix: "cat", phrases: ["black dog tag:x"] });
	});

	it("ends a word at a quote, ignores empty phrases and drops repeats", () => {
		assertParses('cat"black dog" "" "  " "black dog"', { prefix: "cat", phrases: ["black dog"] });
	});
});

describe("parseSearchQuery: limits and hostile input", () => {
	it(`accepts ${MAX_QUERY_LENGTH} characters and rejects more`, () => {
		assertParses("a".repeat(MAX_QUERY_LENGTH), { prefix: "a".repeat(MAX_QUERY_LENGTH) });
		assertRejected("a".repeat(MAX_QUERY_LENGTH + 1), String(MAX_QUERY_LENGTH));
	});

	it(`accepts ${MAX_QUERY_TERMS} terms and rejects more`, () => {
		const words = (count: number) => Array.from({ length: count }, (_, i) => `w${i}`).join(" ");
		assert.equal(parseSearchQuery(words(MAX_QUERY_TERMS)).words.length, MAX_QUERY_TERMS - 1);
		assertRejected(words(MAX_QUERY_TERMS + 1), String(MAX_QUERY_TERMS));
		assertRejected(`tag:${Array.from({ length: MAX_QUERY_TERMS + 1 }, (_, i) => `t${i}`).join(",")}`, String(MAX_QUERY_TERMS));
	});

	it("counts a repeated word once", () => {
		assertParses("spam ".repeat(100), { words: ["spam"], prefix: "spam" });
	});

	it("parses SQL and operator look-alikes as plain words and values", () => {
		assertParses("'; DROP TABLE images; --", { words: ["drop", "table"], prefix: "images" });
		assertParses('{"$where": "sleep(1000)"} $ne', { phrases: ["$where", "sleep(1000)"], prefix: "ne" });
		assertParses("owner:$where category:' tag:%,_", {
			ownerName: "$where",
			category: "'",
			tagGroups: [["%", "_"]]
		});
		assertParses("x' OR '1'='1", { words: ["x", "or", "1"], prefix: "1" });
	});

	it("parses adversarial strings of the maximum length", () => {
		const adversarial = [
			'"'.repeat(MAX_QUERY_LENGTH),
			'a"'.repeat(MAX_QUERY_LENGTH / 2),
			":".repeat(MAX_QUERY_LENGTH),
			"tag:".repeat(MAX_QUERY_LENGTH / 4),
			`tag:${",".repeat(MAX_QUERY_LENGTH - 4)}`,
			`tag:${'"'.repeat(MAX_QUERY_LENGTH - 4)}`,
			"-".repeat(MAX_QUERY_LENGTH),
			"\u0000\u202e".repeat(MAX_QUERY_LENGTH / 2),
			"\u{1F600}".repeat(MAX_QUERY_LENGTH / 2),
			"é".normalize("NFD").repeat(MAX_QUERY_LENGTH / 2)
		];
		for (const input of adversarial) assert.doesNotThrow(() => parseSearchQuery(input), `input: ${input.slice(0, 20)}...`);
	});
});
