/**
 * The behaviour every ImageRepository / CategoryRepository backend must have. A backend's test
 * file calls imageRepositoryContract with a factory for fresh, empty repositories; every test
 * gets its own.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { BadRequestError, ConflictError } from "../../models/shared/errors.ts";
import type { Category, CategoryRepository } from "../../models/categories/category.ts";
import type {
	ImageDoc,
	ImageFilter,
	ImageMetadata,
	ImageRepository,
	ImageStats,
	Rendition,
	SortKey,
	Tag
} from "../../models/images/image.ts";
import type { Viewer } from "../../models/shared/access.ts";
import { EXACT_TOTAL_LIMIT } from "../../models/images/paging.ts";
import { parseSearchQuery } from "../../models/images/search-query.ts";

export interface ContractFixture {
	images: ImageRepository;
	categories: CategoryRepository;
	/** Removes what the repositories were stored in, once the contract has closed them. */
	cleanup(): Promise<void>;
}

const ALICE: Viewer = { id: "u-alice", role: "user" };
const BOB: Viewer = { id: "u-bob", role: "user" };
const ADMIN: Viewer = { id: "u-admin", role: "admin" };

const T0 = Date.UTC(2024, 0, 1);
let sequence = 0;

/**
 * A valid document; each call is one minute newer than the previous one and has an id that
 * sorts after it, so "createdAt" order is creation order.
 */
function image(overrides: Partial<ImageDoc> = {}): ImageDoc {
	sequence++;
	const createdAt = new Date(T0 + sequence * 60_000).toISOString();
	return {
		id: `img-${String(sequence).padStart(6, "0")}`,
		owner: "u-alice",
		ownerName: "alice",
		name: `pic ${sequence}`,
		description: "",
		filename: "photo.png",
		contentType: "image/png",
		format: "png",
		size: 100,
		width: 10,
		height: 10,
		sha256: "0".repeat(64),
		encrypted: false,
		visibility: "public",
		showMetadata: false,
		category: null,
		tags: [],
		views: 0,
		status: "ready",
		statusReason: null,
		metadata: null,
		renditions: [],
		blob: `blob-${sequence}`,
		createdAt,
		updatedAt: createdAt,
		trashedAt: null,
		...overrides
	};
}

function tags(...labels: string[]): Tag[] {
	return labels.map(label => ({ label, source: "user" }));
}

function category(id: string, name: string): Category {
	return { id, name, description: `About ${name}`, createdAt: "2024-01-01T00:00:00.000Z", updatedAt: "2024-01-01T00:00:00.000Z" };
}

export function imageRepositoryContract(name: string, make: () => Promise<ContractFixture>): void {
	describe(`${name}: image & category repository contract`, () => {
		let fixture: ContractFixture;
		let images: ImageRepository;
		let categories: CategoryRepository;

		beforeEach(async () => {
			fixture = await make();
			({ images, categories } = fixture);
		});
		afterEach(async () => {
			await images.close();
			await categories.close();
			await fixture.cleanup();
		});

		async function insert(...docs: ImageDoc[]): Promise<ImageDoc[]> {
			for (const doc of docs) await images.insert(doc);
			return docs;
		}

		/** Ids found by a search; admin, oldest first, one page unless told otherwise. */
		async function found(filter: Partial<ImageFilter>): Promise<string[]> {
			const page = await images.search({ viewer: ADMIN, sort: "createdAt", limit: 100, ...filter });
			return page.items.map(doc => doc.id);
		}

		const byQuery = (q: string) => found({ query: parseSearchQuery(q) });
		const idsOf = (...docs: ImageDoc[]) => docs.map(doc => doc.id);

		/** Every page of a search, following nextCursor; `between` runs before each later page. */
		async function walk(filter: Omit<ImageFilter, "cursor">, between: (pageNumber: number) => Promise<void> = async () => {}) {
			const seen: string[] = [];
			const totals: number[] = [];
			let cursor: string | undefined;
			for (let pageNumber = 1; ; pageNumber++) {
				if (pageNumber > 1) await between(pageNumber);
				const page = await images.search({ ...filter, cursor });
				assert.ok(page.items.length <= filter.limit);
				seen.push(...page.items.map(doc => doc.id));
				totals.push(page.total);
				if (page.nextCursor === null) return { seen, totals, pages: pageNumber };
				cursor = page.nextCursor;
			}
		}

		describe("documents", () => {
			it("stores and returns a document unchanged", async () => {
				const doc = image({
					description: "With everything set",
					encrypted: true,
					visibility: "private",
					showMetadata: true,
					category: "nature",
					tags: [
						{ label: "tree", source: "user" },
						{ label: "forest", source: "auto", score: 0.87, model: "mobilenet" }
					],
					views: 7,
					status: "processing"
				});
				await images.insert(doc);
				assert.deepEqual(await images.get(doc.id), doc);
				assert.equal(await images.get("missing"), null);
			});

			it("inserts many documents at once, and rejects a taken id among them", async () => {
				const docs = [image({ name: "Bulk one" }), image({ name: "Bulk two", visibility: "private" })];
				await images.insertMany(docs);
				await images.insertMany([]);
				assert.deepEqual(await Promise.all(docs.map(doc => images.get(doc.id))), docs);
				assert.deepEqual(await byQuery('"bulk t"'), idsOf(docs[1]!));
				await assert.rejects(images.insertMany([image(), { ...docs[0]!, name: "other" }]), ConflictError);
				assert.equal((await images.get(docs[0]!.id))?.name, "Bulk one");
			});

			it("rejects a second document with the same id", async () => {
				const [doc] = await insert(image());
				await assert.rejects(images.insert({ ...doc!, name: "other" }), ConflictError);
				assert.equal((await images.get(doc!.id))?.name, doc!.name);
			});

			it("updates only the patched fields, ignoring undefined ones, and keeps the view count", async () => {
				const [doc] = await insert(image({ name: "Old", description: "Kept" }));
				await images.incrementViews(doc!.id, 3);
				const updated = await images.update(doc!.id, { name: "New", description: undefined, visibility: "private", showMetadata: true });
				assert.ok(updated);
				assert.ok(updated.updatedAt > doc!.updatedAt, "updatedAt moves forward");
				assert.deepEqual(updated, { ...doc!, name: "New", visibility: "private", showMetadata: true, views: 3, updatedAt: updated.updatedAt });
				assert.deepEqual(await images.get(doc!.id), updated);
				assert.equal(await images.update("missing", { name: "x" }), null);
			});

			it("keeps search in step with updates", async () => {
				const [doc] = await insert(image({ name: "Old barn", tags: tags("farm") }));
				await images.update(doc!.id, { name: "Red tractor", tags: tags("machine") });
				assert.deepEqual(await byQuery("barn"), []);
				assert.deepEqual(await byQuery('"old barn"'), []);
				assert.deepEqual(await found({ tags: ["farm"] }), []);
				assert.deepEqual(await byQuery("tractor"), [doc!.id]);
				assert.deepEqual(await byQuery('"red tractor"'), [doc!.id]);
				assert.deepEqual(await found({ tags: ["machine"] }), [doc!.id]);
			});

			it("removes a document and forgets it everywhere", async () => {
				const [doc, other] = await insert(image({ name: "Gone", tags: tags("bye") }), image());
				assert.deepEqual(await images.remove(doc!.id), doc);
				assert.equal(await images.get(doc!.id), null);
				assert.deepEqual(await byQuery("gone"), []);
				assert.deepEqual(await found({ tags: ["bye"] }), []);
				assert.deepEqual(await found({}), [other!.id]);
				assert.deepEqual((await images.stats(ADMIN)).topTags, []);
				assert.equal(await images.remove(doc!.id), null);
			});

			it("lists an owner's images, private ones included, oldest first", async () => {
				const mine = await insert(image(), image({ visibility: "private" }));
				await insert(image({ owner: "u-bob", ownerName: "bob" }));
				mine.push(...(await insert(image())));
				assert.deepEqual(idsOf(...(await images.listByOwner("u-alice"))), idsOf(...mine));
				assert.deepEqual(await images.listByOwner("u-nobody"), []);
			});

			it("answers ping", async () => {
				assert.equal(await images.ping(), true);
			});
		});

		describe("access rules", () => {
			it("shows anonymous viewers public images, users theirs too, admins everything", async () => {
				const alicePublic = image();
				const alicePrivate = image({ visibility: "private" });
				const bobPublic = image({ owner: "u-bob", ownerName: "bob" });
				const bobPrivate = image({ owner: "u-bob", ownerName: "bob", visibility: "private" });
				await insert(alicePublic, alicePrivate, bobPublic, bobPrivate);

				assert.deepEqual(await found({ viewer: null }), idsOf(alicePublic, bobPublic));
				assert.deepEqual(await found({ viewer: ALICE }), idsOf(alicePublic, alicePrivate, bobPublic));
				assert.deepEqual(await found({ viewer: BOB }), idsOf(alicePublic, bobPublic, bobPrivate));
				assert.deepEqual(await found({ viewer: ADMIN }), idsOf(alicePublic, alicePrivate, bobPublic, bobPrivate));
			});

			it("intersects the visibility filter with the access rule", async () => {
				const alicePrivate = image({ visibility: "private" });
				const bobPrivate = image({ owner: "u-bob", ownerName: "bob", visibility: "private" });
				const bobPublic = image({ owner: "u-bob", ownerName: "bob" });
				await insert(alicePrivate, bobPrivate, bobPublic);

				assert.deepEqual(await found({ viewer: null, visibility: "private" }), []);
				assert.deepEqual(await found({ viewer: ALICE, visibility: "private" }), idsOf(alicePrivate));
				assert.deepEqual(await found({ viewer: ADMIN, visibility: "private" }), idsOf(alicePrivate, bobPrivate));
				assert.deepEqual(await found({ viewer: ALICE, visibility: "public" }), idsOf(bobPublic));
			});

			it("applies the access rule to the total as well", async () => {
				await insert(image(), image({ visibility: "private" }), image({ owner: "u-bob", visibility: "private" }));
				const totalFor = async (viewer: Viewer) => (await images.search({ viewer, sort: "createdAt", limit: 1 })).total;
				assert.equal(await totalFor(null), 1);
				assert.equal(await totalFor(ALICE), 2);
				assert.equal(await totalFor(ADMIN), 3);
			});
		});

		describe("filters", () => {
			it("matches free words as whole words and the last one as a prefix, case-insensitively", async () => {
				const sunsetBeach = image({ name: "Sunset at the BEACH" });
				const sunny = image({ description: "A sunny afternoon", tags: tags("beach party") });
				const inCategory = image({ category: "sunsets" });
				const mountain = image({ name: "Mountain" });
				await insert(sunsetBeach, sunny, inCategory, mountain);

				assert.deepEqual(await byQuery("SUN"), idsOf(sunsetBeach, sunny, inCategory));
				assert.deepEqual(await byQuery("sunset"), idsOf(sunsetBeach, inCategory));
				assert.deepEqual(await byQuery("sun beach"), [], "a word before the last must match whole");
				assert.deepEqual(await byQuery("beach sun"), idsOf(sunsetBeach, sunny));
				assert.deepEqual(await byQuery("sunset at the"), idsOf(sunsetBeach));
				assert.deepEqual(await byQuery("party"), idsOf(sunny), "tag labels are searched");
				assert.deepEqual(await byQuery("sunsets"), idsOf(inCategory), "the category is searched");
				assert.deepEqual(await byQuery("mount"), idsOf(mountain));
				assert.deepEqual(await byQuery("mountains"), []);
				assert.deepEqual(await byQuery("mountain beach"), [], "all words must match");
			});

			it("matches phrases as case-insensitive substrings within one field", async () => {
				const red = image({ name: "A RED car, parked" });
				const apart = image({ description: "red big car" });
				const acrossFields = image({ name: "Red", description: "car" });
				const inTag = image({ tags: tags("old red car") });
				await insert(red, apart, acrossFields, inTag);

				assert.deepEqual(await byQuery('"red car"'), idsOf(red, inTag));
				assert.deepEqual(await byQuery('"Red   CAR,"'), idsOf(red));
				assert.deepEqual(await byQuery('"d car" "old"'), idsOf(inTag));
				assert.deepEqual(await byQuery('"big car'), idsOf(apart));
			});

			it("matches phrases with punctuation, accents, parts of words and look-alikes of index syntax literally", async () => {
				const code = image({ name: 'Using C++ (beta)* with "AND" NOT ^near' });
				const cafe = image({ name: "Breakfast", description: "Café au lait, Zürich" });
				const cart = image({ name: "bored carts" });
				const short = image({ name: "x2 model" });
				await insert(code, cafe, cart, short);

				assert.deepEqual(await byQuery('"c++ (beta)*"'), idsOf(code));
				assert.deepEqual(await byQuery('"and" "not ^near"'), idsOf(code), "operators are text, not syntax");
				assert.deepEqual(await byQuery('"and" "not near"'), []);
				assert.deepEqual(await byQuery('"with "and'), idsOf(code));
				assert.deepEqual(await byQuery('"* with"'), idsOf(code));
				assert.deepEqual(await byQuery('"cafe au lait, zur"'), idsOf(cafe));
				assert.deepEqual(await byQuery('"ed car"'), idsOf(cart), "a phrase may start and end inside words");
				assert.deepEqual(await byQuery('"x2"'), idsOf(short), "phrases shorter than the index's trigrams still match");
				assert.deepEqual(await byQuery('"2 m"'), idsOf(short));
				assert.deepEqual(await byQuery('name:"(beta)"'), idsOf(code));
				assert.deepEqual(await byQuery('desc:"au lait"'), idsOf(cafe));
				assert.deepEqual(await byQuery('name:"au lait"'), []);
			});

			it("forgets the phrases of removed and changed images, also when a new image takes the old one's place", async () => {
				const first = image({ name: "Lighthouse at night" });
				await insert(first);
				await images.remove(first.id);
				const second = image({ name: "Windmill by day" });
				await insert(second);
				assert.deepEqual(await byQuery('"lighthouse at"'), []);
				assert.deepEqual(await byQuery('"windmill by"'), idsOf(second));
				await images.update(second.id, { name: "Harbour crane" });
				assert.deepEqual(await byQuery('"windmill by"'), []);
				assert.deepEqual(await byQuery('"harbour cr"'), idsOf(second));
				await images.clearCategory("none-such");
				assert.deepEqual(await byQuery('name:"harbour"'), idsOf(second));
			});

			it("matches name: and desc: phrases in that field only", async () => {
				const beachName = image({ name: "Beach at dawn", description: "quiet" });
				const beachText = image({ name: "Dawn", description: "On the BEACH, in the park" });
				const beachTag = image({ name: "x", tags: tags("beach") });
				await insert(beachName, beachText, beachTag);

				assert.deepEqual(await byQuery("name:beach"), idsOf(beachName));
				assert.deepEqual(await byQuery("desc:beach"), idsOf(beachText));
				assert.deepEqual(await byQuery('desc:"in the park" name:dawn'), idsOf(beachText));
				assert.deepEqual(await byQuery("name:quiet"), [], "the description is not the name");
				assert.deepEqual(await byQuery("desc:dawn"), [], "nor the name the description");
			});

			it("tells which tag labels exist among the images a viewer may see", async () => {
				await insert(
					image({ owner: "u-alice", visibility: "private", tags: tags("golden retriever", "secret plan") }),
					image({ owner: "u-bob", ownerName: "bob", visibility: "public", tags: tags("golden retriever") })
				);
				const asked = ["golden retriever", "secret plan", "no such label"];
				assert.deepEqual((await images.existingTags(asked, ALICE)).sort(), ["golden retriever", "secret plan"]);
				assert.deepEqual(await images.existingTags(asked, null), ["golden retriever"], "another's private labels stay unknown");
				assert.deepEqual(await images.existingTags([], ADMIN), []);
			});

			it("tells which SHA-256 digests some image's original has, private ones included", async () => {
				const [a, b] = ["a".repeat(64), "b".repeat(64)];
				await insert(image({ sha256: a, visibility: "private" }), image({ sha256: a }), image({ sha256: b, owner: "u-bob", ownerName: "bob" }));
				assert.deepEqual((await images.existingSha256([a, b, "c".repeat(64)])).sort(), [a, b]);
				assert.deepEqual(await images.existingSha256([]), []);
			});

			it("matches any of the filter's tags, and every tag group of the query", async () => {
				const cat = image({ tags: tags("cat") });
				const dog = image({ tags: tags("dog") });
				const both = image({ tags: tags("cat", "dog") });
				await insert(cat, dog, both, image());

				assert.deepEqual(await found({ tags: ["cat", "bird"] }), idsOf(cat, both));
				assert.deepEqual(await found({ tags: ["dog", "cat"] }), idsOf(cat, dog, both));
				assert.deepEqual(await byQuery("tag:cat,bird"), idsOf(cat, both));
				assert.deepEqual(await byQuery("tag:cat tag:dog"), idsOf(both));
				assert.deepEqual(await found({ tags: ["dog"], query: parseSearchQuery("tag:cat") }), idsOf(both));
				assert.deepEqual(await found({ tags: ["do"] }), [], "tags match whole labels");
			});

			it("filters by category, from the filter or the query, and by owner id", async () => {
				const nature = image({ category: "nature" });
				const bobs = image({ owner: "u-bob", ownerName: "bob", category: "city" });
				await insert(nature, bobs, image());

				assert.deepEqual(await found({ category: "nature" }), idsOf(nature));
				assert.deepEqual(await byQuery("category:Nature"), idsOf(nature));
				assert.deepEqual(await found({ category: "nature", query: parseSearchQuery("category:city") }), []);
				assert.deepEqual(await found({ owner: "u-bob" }), idsOf(bobs));
				assert.deepEqual(await found({ owner: "u-bo" }), []);
			});

			it("filters on the owner's account id, never on the reusable username", async () => {
				// A deleted account's images, left behind, and a new account given the same username.
				const former = image({ owner: "u-alice-deleted", ownerName: "alice" });
				const current = image({ owner: "u-alice", ownerName: "alice" });
				await insert(former, current);
				assert.deepEqual(await found({ owner: "u-alice" }), idsOf(current));
				assert.deepEqual(await found({ owner: "alice" }), [], "a username is no owner id");
			});

			it("refuses a query whose owner: name was not resolved to an account id", async () => {
				await insert(image());
				await assert.rejects(byQuery("owner:alice"), /owner/);
			});

			it("finds exactly the listed ids, whatever their owner and visibility (an album authorised them), with the other conditions", async () => {
				const bobsPrivate = image({ owner: "u-bob", ownerName: "bob", visibility: "private", category: "nature" });
				const alicesPublic = image({ category: "nature" });
				const unlisted = image({ owner: "u-bob", ownerName: "bob", visibility: "private", category: "nature" });
				await insert(bobsPrivate, alicesPublic, unlisted);
				const ids = [bobsPrivate.id, alicesPublic.id, "img-missing"];
				for (const viewer of [ALICE, null, ADMIN]) {
					assert.deepEqual(await found({ viewer, ids }), idsOf(bobsPrivate, alicesPublic), `viewer ${viewer?.id ?? "anonymous"}`);
				}
				assert.deepEqual(await found({ viewer: ALICE, ids, visibility: "private" }), idsOf(bobsPrivate));
				assert.deepEqual(await found({ viewer: ALICE, ids, query: parseSearchQuery("category:nature") }), idsOf(bobsPrivate, alicesPublic));
				assert.deepEqual(await found({ viewer: ALICE, ids: [] }), []);
				const page = await images.search({ viewer: ALICE, ids, sort: "-createdAt", limit: 1 });
				assert.deepEqual([page.items.map(doc => doc.id), page.total], [[alicesPublic.id], 2]);
			});

			it("refuses a query whose album: was not resolved to image ids", async () => {
				await insert(image());
				await assert.rejects(byQuery("album:abc"), /album/);
			});

			it("filters by creation date ranges, whole days inclusive", async () => {
				const at = (iso: string) => image({ createdAt: iso, updatedAt: iso });
				const lastOf2023 = at("2023-12-31T23:59:59.999Z");
				const firstOf2024 = at("2024-01-01T00:00:00.000Z");
				const leapDay = at("2024-02-29T12:00:00.000Z");
				const march = at("2024-03-01T00:00:00.000Z");
				const lastOf2024 = at("2024-12-31T23:59:59.999Z");
				const firstOf2025 = at("2025-01-01T00:00:00.000Z");
				await insert(lastOf2023, firstOf2024, leapDay, march, lastOf2024, firstOf2025);

				assert.deepEqual(await byQuery("date:2024"), idsOf(firstOf2024, leapDay, march, lastOf2024));
				assert.deepEqual(await byQuery("date:02-2024"), idsOf(leapDay));
				assert.deepEqual(await byQuery("date:29-02-2024"), idsOf(leapDay));
				assert.deepEqual(await byQuery("date:2024-03-01"), idsOf(march));
				assert.deepEqual(await byQuery("from:2024-03"), idsOf(march, lastOf2024, firstOf2025));
				assert.deepEqual(await byQuery("to:02-2024"), idsOf(lastOf2023, firstOf2024, leapDay));
				assert.deepEqual(await byQuery("from:01-01-2024 to:29-02-2024"), idsOf(firstOf2024, leapDay));
				assert.deepEqual(await byQuery("date:2023 date:2024"), []);
			});

			it("combines every kind of condition", async () => {
				const match = image({ name: "Harbour lights", tags: tags("night"), category: "city", createdAt: "2024-05-05T20:00:00.000Z" });
				await insert(
					match,
					image({ name: "Harbour lights", tags: tags("night"), category: "city", visibility: "private", owner: "u-bob" }),
					image({ name: "Harbour lights", tags: tags("day"), category: "city", createdAt: "2024-05-05T10:00:00.000Z" }),
					image({ name: "Harbour lights", tags: tags("night"), category: "city", createdAt: "2023-05-05T20:00:00.000Z" })
				);
				const query = parseSearchQuery('harbour lig "bour lights" tag:night category:city date:05-2024');
				assert.deepEqual(await found({ viewer: ALICE, query, visibility: "public", tags: ["night", "x"], owner: "u-alice" }), idsOf(match));
			});
		});

		describe("sorting and pagination", () => {
			// Ties on every sort key, so the id tie-break is exercised.
			const sortFixture = () => {
				const oldest = image({ id: "s-0", name: "c", views: 9, createdAt: "2024-01-01T00:00:00.000Z" });
				const middle = image({ id: "s-1", name: "b", views: 5, createdAt: "2024-01-02T00:00:00.000Z" });
				const newestA = image({ id: "s-2", name: "a", views: 5, createdAt: "2024-01-03T00:00:00.000Z" });
				const newestB = image({ id: "s-3", name: "b", views: 1, createdAt: "2024-01-03T00:00:00.000Z" });
				return { oldest, middle, newestA, newestB };
			};

			it("sorts by each key, breaking ties by id", async () => {
				const { oldest, middle, newestA, newestB } = sortFixture();
				await insert(newestB, middle, oldest, newestA);
				const expected: Record<SortKey, ImageDoc[]> = {
					createdAt: [oldest, middle, newestA, newestB],
					"-createdAt": [newestB, newestA, middle, oldest],
					views: [newestB, middle, newestA, oldest],
					"-views": [oldest, newestA, middle, newestB],
					name: [newestA, middle, newestB, oldest]
				};
				for (const [sort, docs] of Object.entries(expected)) {
					assert.deepEqual(await found({ sort: sort as SortKey }), idsOf(...docs), sort);
				}
			});

			it("walks every page of every sort without duplicates or gaps", async () => {
				const docs = Array.from({ length: 11 }, (_, i) => image({ name: `n${i % 4}`, views: i % 3 }));
				await insert(...docs);
				for (const sort of ["createdAt", "-createdAt", "views", "-views", "name"] as const) {
					const all = await found({ sort });
					assert.equal(all.length, docs.length);
					const { seen, totals, pages } = await walk({ viewer: ADMIN, sort, limit: 3 });
					assert.deepEqual(seen, all, sort);
					assert.equal(pages, 4);
					assert.deepEqual(totals, [11, 11, 11, 11], `${sort}: total ignores the cursor`);
				}
			});

			it("returns no cursor when the last page is exactly full", async () => {
				await insert(image(), image(), image(), image());
				const { seen, pages } = await walk({ viewer: ADMIN, sort: "createdAt", limit: 2 });
				assert.equal(seen.length, 4);
				assert.equal(pages, 2);
			});

			it("keeps newest-first pages stable while images are added and removed", async () => {
				const docs = await insert(...Array.from({ length: 10 }, () => image()));
				const { seen } = await walk({ viewer: ADMIN, sort: "-createdAt", limit: 3 }, async pageNumber => {
					await insert(image(), image());
					// Deleting an image already shown must not shift the next page.
					if (pageNumber === 2) await images.remove(docs.at(-1)!.id);
				});
				assert.deepEqual(seen, idsOf(...docs).reverse());
			});

			it("keeps oldest-first pages stable while images are added, showing new ones at the end", async () => {
				const docs = await insert(...Array.from({ length: 10 }, () => image()));
				const added: ImageDoc[] = [];
				const { seen } = await walk({ viewer: ADMIN, sort: "createdAt", limit: 4 }, async pageNumber => {
					if (pageNumber <= 3) added.push(...(await insert(image())));
					if (pageNumber === 2) await images.remove(docs[0]!.id);
				});
				assert.deepEqual(seen, idsOf(...docs, ...added));
			});

			it("rejects malformed cursors and cursors of another sort order", async () => {
				await insert(image({ views: 1 }), image({ views: 2 }));
				const base64url = (text: string) => Buffer.from(text).toString("base64url");
				const { nextCursor } = await images.search({ viewer: ADMIN, sort: "-views", limit: 1 });
				assert.ok(nextCursor);
				const malformed = [
					"not a cursor!",
					base64url("hello"),
					base64url("[1, 2]"),
					base64url("null"),
					base64url('{"$where": "1"}'),
					base64url(JSON.stringify({ sort: "-views", value: "' OR 1=1 --", id: "x" }))
				];
				for (const cursor of malformed) {
					await assert.rejects(images.search({ viewer: ADMIN, sort: "-views", limit: 1, cursor }), BadRequestError, cursor);
				}
				await assert.rejects(images.search({ viewer: ADMIN, sort: "views", limit: 1, cursor: nextCursor }), BadRequestError);
				await assert.rejects(images.search({ viewer: ADMIN, sort: "name", limit: 1, cursor: nextCursor }), BadRequestError);
			});
		});

		describe("totals of large results", () => {
			/**
			 * One more public image of Bob's than an exact total counts, every third of them private,
			 * plus a few of Alice's: all named, tagged and described alike, so every kind of condition
			 * matches more than the limit.
			 */
			async function bulk(): Promise<ImageDoc[]> {
				const docs = Array.from({ length: EXACT_TOTAL_LIMIT + 2 }, (_, i) =>
					image({
						owner: i % 100 === 7 ? "u-alice" : "u-bob",
						ownerName: i % 100 === 7 ? "alice" : "bob",
						visibility: i % 3 === 0 ? "private" : "public",
						name: `Harbour crane ${i}`,
						tags: tags("port"),
						views: i % 5
					})
				);
				await images.insertMany(docs);
				return docs;
			}

			const visibleTo = (viewer: Viewer, docs: ImageDoc[]) =>
				docs.filter(doc => doc.visibility === "public" || viewer?.role === "admin" || doc.owner === viewer?.id);
			const newestFirst = (docs: ImageDoc[]) => [...docs].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));

			it("counts the total exactly up to EXACT_TOTAL_LIMIT matches, then stops and says the total is an estimate", async () => {
				const docs = await bulk();
				const page = (filter: Partial<ImageFilter>) => images.search({ viewer: ADMIN, sort: "-createdAt", limit: 5, ...filter });
				const all = await page({});
				assert.deepEqual({ total: all.total, totalIsEstimate: all.totalIsEstimate }, { total: EXACT_TOTAL_LIMIT, totalIsEstimate: true });
				assert.ok(docs.length > EXACT_TOTAL_LIMIT);
				const few = await page({ viewer: BOB, visibility: "private" });
				const bobPrivate = docs.filter(doc => doc.owner === "u-bob" && doc.visibility === "private");
				assert.deepEqual({ total: few.total, totalIsEstimate: few.totalIsEstimate }, { total: bobPrivate.length, totalIsEstimate: false });
				const none = await page({ query: parseSearchQuery("nothing") });
				assert.deepEqual({ total: none.total, totalIsEstimate: none.totalIsEstimate }, { total: 0, totalIsEstimate: false });
			});

			it("finds the same first page of a large result through every kind of condition, for each viewer", async () => {
				const docs = await bulk();
				for (const viewer of [null, ALICE, BOB, ADMIN]) {
					const visible = newestFirst(visibleTo(viewer, docs));
					const expectedFirst = visible.slice(0, 7).map(doc => doc.id);
					for (const q of ["harbour", "harbour cra", '"bour crane"', "tag:port", 'name:"crane"', "date:2024"]) {
						const result = await images.search({ viewer, query: parseSearchQuery(q), sort: "-createdAt", limit: 7 });
						assert.deepEqual(result.items.map(doc => doc.id), expectedFirst, `${q} as ${viewer?.id ?? "anonymous"}`);
						assert.equal(result.totalIsEstimate, visible.length > EXACT_TOTAL_LIMIT);
					}
					const mostViewed = await images.search({ viewer, sort: "-views", limit: 7 });
					const byViews = [...visible].sort((a, b) => b.views - a.views || (a.id < b.id ? 1 : -1));
					assert.deepEqual(mostViewed.items.map(doc => doc.id), byViews.slice(0, 7).map(doc => doc.id));
				}
			});

			it("walks a user's pages across public and own private images without gaps, in every sort", async () => {
				const docs = Array.from({ length: 17 }, (_, i) =>
					image({ owner: i % 3 === 0 ? "u-alice" : "u-bob", visibility: i % 2 === 0 ? "private" : "public", name: `n${i % 4}`, views: i % 3 })
				);
				await insert(...docs);
				const visible = visibleTo(ALICE, docs).map(doc => doc.id);
				for (const sort of ["createdAt", "-createdAt", "views", "-views", "name"] as const) {
					const everything = await found({ sort });
					const { seen, totals } = await walk({ viewer: ALICE, sort, limit: 2 });
					assert.deepEqual(seen, everything.filter(id => visible.includes(id)), sort);
					assert.ok(totals.every(total => total === visible.length));
				}
			});
		});

		describe("views", () => {
			it("counts concurrent increments exactly", async () => {
				const [doc] = await insert(image());
				const results = await Promise.all(Array.from({ length: 1000 }, () => images.incrementViews(doc!.id)));
				assert.equal((await images.get(doc!.id))?.views, 1000);
				// Each increment saw its own new count.
				assert.deepEqual(
					results.map(Number).sort((a, b) => a - b),
					Array.from({ length: 1000 }, (_, i) => i + 1)
				);
				assert.equal(await images.incrementViews(doc!.id, 5), 1005);
			});

			it("returns null for a missing image", async () => {
				assert.equal(await images.incrementViews("missing"), null);
			});
		});

		describe("stats and categories of images", () => {
			it("reports zeros for an empty repository", async () => {
				const empty: ImageStats = {
					images: { count: 0, bytes: 0 },
					byFormat: {},
					byCategory: {},
					byVisibility: {},
					encrypted: { count: 0, bytes: 0 },
					totalViews: 0,
					topTags: []
				};
				assert.deepEqual(await images.stats(ADMIN), empty);
				assert.deepEqual(await images.stats(null), empty);
			});

			it("sums counts, bytes and views by format, category, visibility and encryption", async () => {
				// Twelve labels: t00 on one image, t01 on two, t02 on three, t03...t11 on all four.
				const labels = Array.from({ length: 12 }, (_, i) => `t${String(i).padStart(2, "0")}`);
				const tagsOf = (first: number) => tags(...labels.slice(first));
				await insert(
					image({ format: "png", size: 100, category: "nature", views: 1, tags: tagsOf(0) }),
					image({ format: "png", size: 200, category: null, views: 2, encrypted: true, tags: tagsOf(1) }),
					image({ format: "jpeg", size: 300, category: "nature", views: 3, visibility: "private", tags: tagsOf(2) }),
					image({ format: "webp", size: 400, category: "city", views: 4, encrypted: true, visibility: "private", tags: tagsOf(3) })
				);
				const stats = await images.stats(ADMIN);
				assert.deepEqual(stats, {
					images: { count: 4, bytes: 1000 },
					byFormat: { png: { count: 2, bytes: 300 }, jpeg: { count: 1, bytes: 300 }, webp: { count: 1, bytes: 400 } },
					byCategory: { nature: { count: 2, bytes: 400 }, none: { count: 1, bytes: 200 }, city: { count: 1, bytes: 400 } },
					byVisibility: { public: { count: 2, bytes: 300 }, private: { count: 2, bytes: 700 } },
					encrypted: { count: 2, bytes: 600 },
					totalViews: 10,
					// The ten most used, most used first, ties in label order.
					topTags: [...labels.slice(3).map(label => ({ label, count: 4 })), { label: "t02", count: 3 }]
				} satisfies ImageStats);
			});

			it("counts only what the viewer may see", async () => {
				await insert(
					image({ owner: "u-alice", size: 100, visibility: "public", tags: tags("shared") }),
					image({ owner: "u-alice", size: 200, visibility: "private", tags: tags("alice only") }),
					image({ owner: "u-bob", ownerName: "bob", size: 400, visibility: "private", encrypted: true, tags: tags("bob only"), views: 7 })
				);
				const labelsOf = (stats: ImageStats) => stats.topTags.map(tag => tag.label).sort();
				const forAlice = await images.stats(ALICE);
				assert.deepEqual(forAlice.images, { count: 2, bytes: 300 });
				assert.deepEqual(forAlice.encrypted, { count: 0, bytes: 0 });
				assert.equal(forAlice.totalViews, 0);
				assert.deepEqual(labelsOf(forAlice), ["alice only", "shared"], "no label of bob's private image");
				assert.deepEqual(Object.keys(forAlice.byVisibility).sort(), ["private", "public"]);
				const forAnyone = await images.stats(null);
				assert.deepEqual(forAnyone.images, { count: 1, bytes: 100 });
				assert.deepEqual(labelsOf(forAnyone), ["shared"]);
				assert.deepEqual((await images.stats(BOB)).images, { count: 2, bytes: 500 });
				assert.deepEqual((await images.stats(ADMIN)).images, { count: 3, bytes: 700 });
			});

			it("clears a category from its images only, and from search", async () => {
				const first = image({ category: "nature" });
				const second = image({ category: "nature" });
				const city = image({ category: "city" });
				await insert(first, second, city, image());

				assert.equal(await images.clearCategory("nature"), 2);
				assert.equal((await images.get(first.id))?.category, null);
				assert.equal((await images.get(second.id))?.category, null);
				assert.equal((await images.get(city.id))?.category, "city");
				assert.deepEqual(await found({ category: "nature" }), []);
				assert.deepEqual(await byQuery("nature"), []);
				assert.equal((await images.stats(ADMIN)).byCategory["none"]?.count, 3);
				assert.equal(await images.clearCategory("nature"), 0);
			});
		});

		describe("categories", () => {
			it("inserts, lists by name, gets, updates and removes", async () => {
				await categories.insert(category("zoo", "Zoo"));
				await categories.insert(category("animals", "animals"));
				await categories.insert(category("birds", "Birds"));
				assert.deepEqual(
					(await categories.list()).map(c => c.id),
					["animals", "birds", "zoo"]
				);
				assert.deepEqual(await categories.get("zoo"), category("zoo", "Zoo"));
				assert.equal(await categories.get("missing"), null);

				const updated = await categories.update("zoo", { name: "The Zoo", description: undefined });
				assert.ok(updated);
				assert.ok(updated.updatedAt > "2024-01-01T00:00:00.000Z");
				assert.deepEqual(updated, { ...category("zoo", "Zoo"), name: "The Zoo", updatedAt: updated.updatedAt });
				assert.deepEqual(await categories.get("zoo"), updated);
				assert.equal(await categories.update("missing", { name: "x" }), null);

				assert.equal(await categories.remove("zoo"), true);
				assert.equal(await categories.remove("zoo"), false);
				assert.deepEqual(
					(await categories.list()).map(c => c.id),
					["animals", "birds"]
				);
			});

			it("rejects a taken id or a name taken in any letter case", async () => {
				await categories.insert(category("nature", "Nature"));
				await categories.insert(category("city", "City"));
				await assert.rejects(categories.insert(category("nature", "Other")), ConflictError);
				await assert.rejects(categories.insert(category("nature-2", "NATURE")), ConflictError);
				await categories.insert(category("ete", "Été"));
				await assert.rejects(categories.insert(category("ete-2", "ÉTÉ")), ConflictError, "beyond ASCII too");
				await assert.rejects(categories.update("city", { name: "nature" }), ConflictError);
				assert.equal((await categories.get("city"))?.name, "City");
				assert.equal((await categories.update("city", { name: "CITY" }))?.name, "CITY", "a case change of its own name is allowed");
			});
		});

		describe("processing state", () => {
			const metadata: ImageMetadata = {
				width: 10,
				height: 10,
				format: "png",
				orientation: 6,
				space: "srgb",
				hasAlpha: true,
				density: 72,
				cameraMake: "Canon",
				cameraModel: "EOS 5D",
				takenAt: "2024-05-01T12:30:00",
				hasGps: true
			};
			const rendition = (name: string, blob: string): Rendition => ({ name, width: 240, height: 160, format: "webp", size: 99, blob });

			it("stores metadata, renditions and the reason of a failure", async () => {
				const doc = image({ status: "failed", statusReason: "corrupt", metadata, renditions: [rendition("240", "r1")] });
				await images.insert(doc);
				assert.deepEqual(await images.get(doc.id), doc);
			});

			it("changes the status only from the statuses given, and reports before and after", async () => {
				const [doc] = await insert(image({ status: "processing" }));
				assert.equal(await images.setStatus(doc!.id, "ready", null, ["failed"]), null);
				const change = await images.setStatus(doc!.id, "failed", "bad pixels", ["processing"]);
				assert.equal(change?.before.status, "processing");
				assert.equal(change?.after.status, "failed");
				assert.equal(change?.after.statusReason, "bad pixels");
				assert.deepEqual(await images.get(doc!.id), change?.after);
				assert.equal(await images.setStatus("missing", "ready", null), null);
			});

			it("records processing results once: a second run changes nothing", async () => {
				const [doc] = await insert(image({ status: "processing" }));
				const first = await images.setProcessed(doc!.id, metadata, [rendition("240", "a"), rendition("720", "b")]);
				assert.equal(first?.applied, true);
				const second = await images.setProcessed(doc!.id, { ...metadata, width: 1 }, [rendition("240", "c")]);
				assert.equal(second?.applied, false);
				assert.deepEqual(second?.doc.renditions.map(r => r.blob), ["a", "b"]);
				const stored = await images.get(doc!.id);
				assert.deepEqual(stored?.metadata, metadata);
				assert.equal(stored?.status, "processing", "recording results does not finish the pipeline");
				assert.equal(await images.setProcessed("missing", metadata, []), null);
			});

			it("resets an image for reprocessing and returns what it had", async () => {
				const doc = image({ status: "failed", statusReason: "x", metadata, renditions: [rendition("240", "a")] });
				await images.insert(doc);
				assert.deepEqual(await images.resetProcessing(doc.id), doc);
				const reset = await images.get(doc.id);
				assert.deepEqual([reset?.status, reset?.statusReason, reset?.metadata, reset?.renditions], ["processing", null, null, []]);
			});

			it("hands each stuck image to one reconciler, oldest first", async () => {
				const old1 = image({ status: "processing", updatedAt: "2024-01-01T00:00:00.000Z" });
				const old2 = image({ status: "processing", updatedAt: "2024-01-01T00:00:01.000Z" });
				const fresh = image({ status: "processing", updatedAt: "2999-01-01T00:00:00.000Z" });
				const done = image({ status: "ready", updatedAt: "2024-01-01T00:00:00.000Z" });
				await insert(old2, old1, fresh, done);
				const cutoff = "2025-01-01T00:00:00.000Z";
				assert.deepEqual((await images.claimStuck(cutoff, 1)).map(doc => doc.id), [old1.id]);
				assert.deepEqual((await images.claimStuck(cutoff, 10)).map(doc => doc.id), [old2.id]);
				assert.deepEqual(await images.claimStuck(cutoff, 10), [], "claimed images count as fresh");
			});
		});

		describe("trash", () => {
			const AT = "2025-06-01T10:00:00.000Z";
			const LATER = "2025-06-02T10:00:00.000Z";

			it("stores a trashed document unchanged", async () => {
				const doc = image({ trashedAt: AT });
				await images.insert(doc);
				assert.deepEqual(await images.get(doc.id), doc);
			});

			it("trashes an image: get() still has it, no listing, search, count, stats or tag look-up does", async () => {
				const [doc, other] = await insert(image({ name: "Binned", tags: tags("bin"), size: 5, views: 3 }), image({ size: 7 }));
				const trashed = await images.trash(doc!.id, AT);
				assert.deepEqual(trashed, { ...doc!, trashedAt: AT });
				assert.deepEqual(await images.get(doc!.id), trashed, "its bytes' owner still finds it");
				for (const viewer of [ADMIN, ALICE, null]) {
					const page = await images.search({ viewer, sort: "-createdAt", limit: 10 });
					assert.deepEqual(page.items.map(item => item.id), [other!.id]);
					assert.equal(page.total, 1);
					assert.deepEqual((await images.stats(viewer)).images, { count: 1, bytes: 7 });
					assert.equal((await images.stats(viewer)).totalViews, 0);
					assert.deepEqual(await images.existingTags(["bin"], viewer), []);
				}
				assert.deepEqual(await byQuery("binned"), []);
				assert.deepEqual(await found({ tags: ["bin"] }), []);
				assert.deepEqual(await found({ owner: "u-alice" }), [other!.id]);
				assert.deepEqual(await images.existingSha256([doc!.sha256]), [doc!.sha256], "a trashed image keeps its bytes");
			});

			it("trashes once (the first time stays) and restores exactly as it was", async () => {
				const [doc] = await insert(image({ name: "Back", tags: tags("again"), visibility: "private" }));
				await images.incrementViews(doc!.id, 2);
				const kept = { ...doc!, views: 2 };
				await images.trash(doc!.id, AT);
				assert.deepEqual(await images.trash(doc!.id, LATER), { ...kept, trashedAt: AT }, "trashing again changes nothing");
				assert.deepEqual(await images.restore(doc!.id), kept);
				assert.deepEqual(await images.get(doc!.id), kept);
				assert.deepEqual(await images.restore(doc!.id), kept, "restoring again changes nothing");
				assert.deepEqual(await byQuery("back"), [doc!.id]);
				assert.deepEqual(await found({ tags: ["again"] }), [doc!.id]);
				assert.equal(await images.trash("missing", AT), null);
				assert.equal(await images.restore("missing"), null);
			});

			it("lists the trash, most recently trashed first, by owner or all of it, in keyset pages", async () => {
				const [a, b, c, live] = await insert(image(), image({ owner: "u-bob", ownerName: "bob", visibility: "private" }), image({ visibility: "private" }), image());
				await images.trash(a!.id, "2025-06-01T10:00:00.000Z");
				await images.trash(b!.id, "2025-06-01T11:00:00.000Z");
				await images.trash(c!.id, "2025-06-01T12:00:00.000Z");
				const trash = (filter: Partial<ImageFilter>) => found({ trashed: true, sort: "-trashedAt", ...filter });
				assert.deepEqual(await trash({}), idsOf(c!, b!, a!));
				assert.deepEqual(await trash({ viewer: ALICE, owner: "u-alice" }), idsOf(c!, a!));
				assert.deepEqual(await trash({ viewer: BOB, owner: "u-bob" }), idsOf(b!));
				assert.ok(!(await trash({})).includes(live!.id));
				const walked = await walk({ viewer: ADMIN, trashed: true, sort: "-trashedAt", limit: 2 });
				assert.deepEqual(walked.seen, idsOf(c!, b!, a!));
				assert.deepEqual(walked.totals, [3, 3]);
			});

			it("removes only a trashed image when asked to, so a purge never takes an image restored meanwhile", async () => {
				const [doc] = await insert(image());
				assert.equal(await images.remove(doc!.id, { onlyTrashed: true }), null);
				assert.deepEqual(await images.get(doc!.id), doc);
				await images.trash(doc!.id, AT);
				assert.deepEqual(await images.remove(doc!.id, { onlyTrashed: true }), { ...doc!, trashedAt: AT });
				assert.equal(await images.get(doc!.id), null);
				assert.equal(await images.remove(doc!.id, { onlyTrashed: true }), null);
			});

			it("hands out the images trashed before a time, oldest first", async () => {
				const [a, b, c] = await insert(image(), image(), image());
				await images.trash(a!.id, "2025-06-03T00:00:00.000Z");
				await images.trash(b!.id, "2025-06-01T00:00:00.000Z");
				await images.trash(c!.id, "2025-06-09T00:00:00.000Z");
				await insert(image());
				assert.deepEqual(idsOf(...(await images.trashedBefore("2025-06-05T00:00:00.000Z", 10))), idsOf(b!, a!));
				assert.deepEqual(idsOf(...(await images.trashedBefore("2025-06-05T00:00:00.000Z", 1))), idsOf(b!));
				assert.deepEqual(await images.trashedBefore("2025-01-01T00:00:00.000Z", 10), []);
			});
		});

		describe("hostile values", () => {
			it("stores SQL and operator look-alikes literally and finds them only literally", async () => {
				const hostile = image({
					name: "Robert'); DROP TABLE images;--",
					description: '" OR 1=1 --',
					owner: "x' OR 'x'='x",
					category: "a'b",
					tags: tags("' or '1'='1", "$where", "%", "_")
				});
				const plain = image({ ownerName: "bob", tags: tags("abc") });
				await insert(hostile, plain);

				assert.deepEqual(await images.get(hostile.id), hostile);
				assert.deepEqual(await found({ owner: "x' OR 'x'='x" }), idsOf(hostile));
				assert.deepEqual(await found({ owner: "' OR '1'='1" }), []);
				assert.deepEqual(await found({ owner: '{"$gt": ""}' }), []);
				assert.deepEqual(await found({ category: "a'b" }), idsOf(hostile));
				assert.deepEqual(await found({ tags: ["' or '1'='1"] }), idsOf(hostile));
				assert.deepEqual(await found({ tags: ["$where"] }), idsOf(hostile));
				assert.deepEqual(await found({ tags: ["%"] }), idsOf(hostile), "% is no wildcard");
				assert.deepEqual(await found({ tags: ["_"] }), idsOf(hostile), "_ is no wildcard");
				assert.deepEqual(await byQuery('"); drop table images;--"'), idsOf(hostile));
				assert.deepEqual(await byQuery('"robert%"'), [], "% is no wildcard in phrases");
				assert.deepEqual(await byQuery("robert drop"), idsOf(hostile));
				assert.deepEqual(await found({ viewer: null }), idsOf(hostile, plain), "nothing was dropped");
			});
		});
	});
}
