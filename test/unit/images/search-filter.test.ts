import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { searchConditions } from "../../../models/images/search-filter.ts";
import { parseSearchQuery } from "../../../models/images/search-query.ts";

const ADMIN = { id: "u-admin", role: "admin" } as const;

/** The conditions of `q` for an admin (no access condition), in order, after the one that leaves out the trash. */
function conditionsOf(q: string) {
	const [bin, ...rest] = searchConditions({ viewer: ADMIN, query: parseSearchQuery(q), sort: "-createdAt", limit: 10 });
	assert.deepEqual(bin, { kind: "trashed", trashed: false });
	return rest;
}

describe("search conditions", () => {
	it("adds to a phrase the keywords any image containing it has, for keyword indexes to narrow on", () => {
		assert.deepEqual(conditionsOf('"old red car park"'), [
			{ kind: "phrase", phrase: "old red car park" },
			{ kind: "word", word: "red" },
			{ kind: "word", word: "car" },
			{ kind: "wordPrefix", prefix: "park" }
		]);
	});

	it("keeps only the two longest whole keywords of a long phrase", () => {
		assert.deepEqual(conditionsOf('"a bb c dddd ee fff g"'), [
			{ kind: "phrase", phrase: "a bb c dddd ee fff g" },
			{ kind: "word", word: "dddd" },
			{ kind: "word", word: "fff" },
			{ kind: "wordPrefix", prefix: "g" }
		]);
	});

	it("implies nothing of the runs that may be parts of longer words", () => {
		assert.deepEqual(conditionsOf('"ed ca"'), [{ kind: "phrase", phrase: "ed ca" }, { kind: "wordPrefix", prefix: "ca" }]);
		assert.deepEqual(conditionsOf('"carpark"'), [{ kind: "phrase", phrase: "carpark" }]);
		assert.deepEqual(conditionsOf('"car,"'), [{ kind: "phrase", phrase: "car," }]);
	});

	it("reads punctuation as a bound like spaces, and does the same for name: and desc: phrases", () => {
		assert.deepEqual(conditionsOf('",red-car."'), [
			{ kind: "phrase", phrase: ",red-car." },
			{ kind: "word", word: "red" },
			{ kind: "word", word: "car" }
		]);
		assert.deepEqual(conditionsOf('name:"Café au lait"'), [
			{ kind: "fieldPhrase", field: "name", phrase: "cafe au lait" },
			{ kind: "word", word: "au" },
			{ kind: "wordPrefix", prefix: "lait" }
		]);
	});
});
