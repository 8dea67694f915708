/**
 * ImageRepository on MongoDB (distributed mode), behaving exactly like the SQLite one: the same
 * contract suite runs against both.
 *
 * An image document is the ImageDoc (id as _id) plus what search needs, recomputed by every write
 * from searchIndexOf: `keywords` (distinct keywords), `searchText` (normalized text for phrases),
 * `tagLabels` (distinct tag labels), and `rev`, a revision number for optimistic concurrency.
 * Only the portable query subset is used (equality, $in, ranges, anchored or literal $regex,
 * $inc, $group/$unwind/$sort aggregation), so FerretDB v1 serves it as well as MongoDB 7.
 * Values reach queries only as strings and numbers (the typed filter, checked cursors), never
 * as objects, so no value can be read as an operator; literal text in a $regex is escaped. Plain
 * equality rather than $eq: FerretDB v1 hands only that to SQLite's indexes.
 */
import type { Collection, Document, Filter, Sort } from "mongodb";
import { ConflictError } from "../shared/errors.ts";
import { nowIso } from "../shared/ids.ts";
import {
	IMAGE_FIELDS,
	type 	CountAndBytes,
	type ImageDoc,
	type ImageFilter,
	type ImageMetadata,
	type ImageStatus,
	type ImagePatch,
	type ImageRepository,
	type ImageStats,
	type Rendition,
	type SearchPage,
	type StatusChange,
	type Tag
} from "./image.ts";
import { definedFields, pick } from "../shared/fields.ts";
import { COUNTED_TOTAL_LIMIT, type Cursor, pageOf, pageRequest, type SortSpec, totalOf } from "./paging.ts";
import { accessConditions, searchConditions, type SearchCondition } from "./search-filter.ts";
import type { Viewer } from "../shared/access.ts";
import { KeyedLock } from "../shared/keyed-lock.ts";
import { isDuplicateKey, literalPattern, MongoBackend, type MongoOptions } from "../db/mongo.ts";
import { FIELD_LINES, searchIndexOf } from "./search-query.ts";

/** What a write may change: everything but the id, and the views (only incrementViews counts them). */
type Change = Partial<Omit<ImageDoc, "id" | "views">>;

interface ImageRecord extends Omit<ImageDoc, "id"> {
	_id: string;
	keywords: string[];
	searchText: string;
	tagLabels: string[];
	rev: number;
}

/** The search fields of a document, kept in step with the fields they derive from. */
function searchFieldsOf(doc: ImageDoc): Pick<ImageRecord, "keywords" | "searchText" | "tagLabels"> {
	const index = searchIndexOf(doc);
	return { keywords: index.keywords, searchText: index.text, tagLabels: [...new Set(doc.tags.map(tag => tag.label))] };
}

function toRecord(doc: ImageDoc): ImageRecord {
	const { id, ...fields } = doc;
	return { _id: id, ...fields, ...searchFieldsOf(doc), rev: 0 };
}

/**
 * Field by field, so nothing of the search fields (nor anything unknown) leaks out. Documents
 * stored before the trash existed have no trashedAt: they are not in it; those stored before
 * showMetadata existed lack it: false, the private default.
 */
function fromRecord(record: ImageRecord): ImageDoc {
	return { id: record._id, ...pick(record, IMAGE_FIELDS), showMetadata: record.showMetadata ?? false, tags: record.tags.map(tagOf), trashedAt: record.trashedAt ?? null };
}

function tagOf(tag: Tag): Tag {
	const copy: Tag = { label: tag.label, source: tag.source };
	if (tag.score !== undefined) copy.score = tag.score;
	if (tag.model !== undefined) copy.model = tag.model;
	return copy;
}

// ---------------------------------------------------------------------------------------------
// Search filters

type Conditions = Filter<ImageRecord>[];

/**
 * One filter of all the conditions: those on distinct fields side by side at the top level, the
 * rest (operators such as `$or`, a field named twice) under `$and`. The same query to MongoDB; but
 * FerretDB v1 pushes only top-level field conditions down to its backend, and a filter wholly
 * under `$and` made it decode every document of the collection (an owner page on PostgreSQL:
 * 175 ms flat, 7 s under `$and`, 5,000 images).
 */
function matchAll(conditions: Conditions): Filter<ImageRecord> {
	const flat: Filter<ImageRecord> = {};
	const rest: Conditions = [];
	for (const condition of conditions) {
		const keys = Object.keys(condition);
		if (keys.some(key => key.startsWith("$") || key in flat)) rest.push(condition);
		else Object.assign(flat, condition);
	}
	return rest.length === 0 ? flat : { ...flat, $and: rest };
}

function compiled(condition: SearchCondition): Filter<ImageRecord> {
	switch (condition.kind) {
		case "equals":
			return { [condition.field]: condition.value };
		case "trashed":
			// null also matches a missing field: the documents stored before the trash existed.
			return { trashedAt: condition.trashed ? { $ne: null } : null };
		case "publicOrOwnedBy":
			return { $or: [{ visibility: "public" }, { owner: condition.owner }] };
		case "anyTag":
			return { tagLabels: { $in: condition.labels } };
		case "word":
			return { keywords: condition.word };
		case "wordPrefix":
			// An anchored literal regex rather than a $gte/$lt pair: on an array both bounds could be
			// met by different elements, and an anchored prefix still uses the keywords index.
			return { keywords: { $regex: `^${literalPattern(condition.prefix)}` } };
		case "phrase":
			return { searchText: { $regex: literalPattern(condition.phrase) } };
		case "fieldPhrase":
			// Skip the lines of the fields before it (FIELD_LINES), then match within its line.
			return { searchText: { $regex: `^(?:[^\n]*\n){${FIELD_LINES[condition.field]}}[^\n]*${literalPattern(condition.phrase)}` } };
		case "created":
			return { createdAt: { ...(condition.from && { $gte: condition.from }), ...(condition.before && { $lt: condition.before }) } };
		case "idIn":
			return { _id: { $in: condition.ids } };
	}
}

function compile(conditions: SearchCondition[]): Conditions {
	return conditions.map(compiled);
}

function sortOf(spec: SortSpec): Sort {
	const direction = spec.descending ? -1 : 1;
	return { [spec.field]: direction, _id: direction };
}

/** Documents strictly after the cursor's document in the sort order. */
function afterCursor(spec: SortSpec, cursor: Cursor): Filter<ImageRecord> {
	const beyond = spec.descending ? "$lt" : "$gt";
	return {
		$or: [{ [spec.field]: { [beyond]: cursor.value } }, { [spec.field]: cursor.value, _id: { [beyond]: cursor.id } }]
	} as Filter<ImageRecord>;
}

// ---------------------------------------------------------------------------------------------
// Images: repository

const TOP_TAGS = 10;

/**
 * stats() groups once by every combination of the fields it breaks down by, and folds the groups
 * into the totals here. One accumulator per $group: FerretDB v1 computes only the first one.
 */
const STATS_KEY = { format: "$format", category: "$category", visibility: "$visibility", encrypted: "$encrypted" };

interface StatsGroup {
	_id: { format: string; category: string | null; visibility: string; encrypted: boolean };
	value: number;
}

function add(totals: Record<string, CountAndBytes>, key: string, count: number, bytes: number): void {
	const entry = (totals[key] ??= { count: 0, bytes: 0 });
	entry.count += count;
	entry.bytes += bytes;
}

function statsOf(counts: StatsGroup[], bytes: StatsGroup[]): Omit<ImageStats, "totalViews" | "topTags"> {
	const keyOf = (group: StatsGroup) => JSON.stringify(Object.values(group._id));
	const bytesByKey = new Map(bytes.map(group => [keyOf(group), group.value]));
	const all: Record<string, CountAndBytes> = {};
	const byFormat: Record<string, CountAndBytes> = {};
	const byCategory: Record<string, CountAndBytes> = {};
	const byVisibility: Record<string, CountAndBytes> = {};
	for (const group of counts) {
		const size = bytesByKey.get(keyOf(group)) ?? 0;
		const { format, category, visibility, encrypted } = group._id;
		add(all, "images", group.value, size);
		add(all, "encrypted", encrypted ? group.value : 0, encrypted ? size : 0);
		add(byFormat, format, group.value, size);
		// Images without a category count under "none", as in every backend.
		add(byCategory, category ?? "none", group.value, size);
		add(byVisibility, visibility, group.value, size);
	}
	const none = { count: 0, bytes: 0 };
	return { images: all.images ?? none, byFormat, byCategory, byVisibility, encrypted: all.encrypted ?? none };
}

export class MongoImageRepository extends MongoBackend implements ImageRepository {
	private readonly images: Collection<ImageRecord>;
	/**
	 * Serializes this process's read-modify-writes of one image. MongoDB needs none of it ($inc and
	 * conditional updates are atomic), but FerretDB v1 runs them as a read then a whole-document
	 * write, so concurrent increments would lose counts (see docs/distributed.md, "MongoDB and GridFS").
	 */
	private readonly writes = new KeyedLock();

	constructor(options: MongoOptions) {
		super(options, "The image metadata store");
		this.images = this.db.collection<ImageRecord>("images");
	}

	protected async prepare(): Promise<void> {
		// Sort indexes end with _id, the tie-breaker, so keyset pages are index range scans.
		await this.ensureIndexes(this.images, [
			{ key: { createdAt: 1, _id: 1 } },
			{ key: { views: 1, _id: 1 } },
			{ key: { name: 1, _id: 1 } },
			{ key: { owner: 1, createdAt: 1, _id: 1 } },
			// The reconciler's claimStuck.
			{ key: { status: 1, updatedAt: 1 } },
			{ key: { visibility: 1, createdAt: 1, _id: 1 } },
			{ key: { visibility: 1, views: 1, _id: 1 } },
			{ key: { visibility: 1, name: 1, _id: 1 } },
			{ key: { category: 1, createdAt: 1, _id: 1 } },
			{ key: { ownerName: 1 } },
			{ key: { sha256: 1 } },
			// The trash's page and the retention sweep.
			{ key: { trashedAt: 1, _id: 1 } },
			{ key: { tagLabels: 1 } },
			{ key: { keywords: 1 } }
		]);
	}

	async insert(doc: ImageDoc): Promise<void> {
		await this.run(async () => {
			try {
				await this.images.insertOne(toRecord(doc));
			} catch (err) {
				if (isDuplicateKey(err)) throw new ConflictError(`Image ${doc.id} already exists`, "IMAGE_EXISTS");
				throw err;
			}
		});
	}

	async insertMany(docs: ImageDoc[]): Promise<void> {
		if (docs.length === 0) return;
		await this.run(async () => {
			try {
				await this.images.insertMany(docs.map(toRecord));
			} catch (err) {
				if (isDuplicateKey(err)) throw new ConflictError("An image with one of these ids already exists", "IMAGE_EXISTS");
				throw err;
			}
		});
	}

	async get(id: string): Promise<ImageDoc | null> {
		return this.run(async () => {
			const record = await this.images.findOne({ _id: id });
			return record && fromRecord(record);
		});
	}

	async update(id: string, patch: ImagePatch): Promise<ImageDoc | null> {
		return this.run(async () => (await this.modify(id, () => ({ ...definedFields(patch), updatedAt: nowIso() })))?.after ?? null);
	}

	async remove(id: string, options: { onlyTrashed?: boolean } = {}): Promise<ImageDoc | null> {
		return this.run(async () => {
			// In the image's lock: FerretDB v1 reads, then deletes, and a restore must not fall in between.
			const record = await this.writes.run(id, () => this.images.findOneAndDelete(options.onlyTrashed ? { _id: id, trashedAt: { $ne: null } } : { _id: id }));
			return record && fromRecord(record);
		});
	}

	async listByOwner(owner: string): Promise<ImageDoc[]> {
		return this.run(async () => {
			const records = await this.images.find({ owner: owner }).sort({ createdAt: 1, _id: 1 }).toArray();
			return records.map(fromRecord);
		});
	}

	async incrementViews(id: string, by = 1): Promise<number | null> {
		return this.run(async () => {
			const record = await this.writes.run(id, () =>
				this.images.findOneAndUpdate({ _id: id }, { $inc: { views: by } }, { returnDocument: "after" })
			);
			return record ? record.views : null;
		});
	}

	async search(filter: ImageFilter): Promise<SearchPage<ImageDoc>> {
		const { spec, after } = pageRequest(filter);
		const matching = compile(searchConditions(filter));
		const page = after ? [...matching, afterCursor(spec, after)] : matching;
		return this.run(async () => {
			const [records, total] = await Promise.all([
				this.images.find(matchAll(page)).sort(sortOf(spec)).limit(filter.limit + 1).toArray(),
				this.images.countDocuments(matchAll(matching), { limit: COUNTED_TOTAL_LIMIT })
			]);
			return { ...pageOf(records.map(fromRecord), filter, spec), ...totalOf(total) };
		});
	}

	async existingTags(labels: string[], viewer: Viewer): Promise<string[]> {
		if (labels.length === 0) return [];
		return this.run(async () => {
			const found: string[] = await this.images.distinct("tagLabels", matchAll([...compile(accessConditions(viewer)), { tagLabels: { $in: labels } }]));
			// distinct lists every label of the matching images: keep the ones asked about.
			return found.filter(label => labels.includes(label));
		});
	}

	async existingSha256(digests: string[]): Promise<string[]> {
		if (digests.length === 0) return [];
		return this.run(() => this.images.distinct("sha256", { sha256: { $in: digests } }));
	}

	async stats(viewer: Viewer): Promise<ImageStats> {
		const visible = { $match: matchAll(compile(accessConditions(viewer))) };
		return this.run(async () => {
			const sum = <T extends Document>(key: unknown, value: unknown) => this.images.aggregate<T>([visible, { $group: { _id: key, value: { $sum: value } } }]).toArray();
			const [counts, bytes, views, topTags] = await Promise.all([
				sum<StatsGroup>(STATS_KEY, 1),
				sum<StatsGroup>(STATS_KEY, "$size"),
				sum<{ value: number }>(null, "$views"),
				this.images
					.aggregate<{ _id: string; count: number }>([
						visible,
						{ $unwind: "$tagLabels" },
						{ $group: { _id: "$tagLabels", count: { $sum: 1 } } },
						{ $sort: { count: -1, _id: 1 } },
						{ $limit: TOP_TAGS }
					])
					.toArray()
			]);
			return {
				...statsOf(counts, bytes),
				totalViews: views[0]?.value ?? 0,
				topTags: topTags.map(tag => ({ label: tag._id, count: tag.count }))
			};
		});
	}

	async clearCategory(categoryId: string): Promise<number> {
		// Document by document, because the category id is part of the search fields.
		return this.run(async () => {
			const ids = await this.images.distinct("_id", { category: categoryId });
			const now = nowIso();
			let changed = 0;
			for (const id of ids) {
				const result = await this.modify(id, current => (current.category === categoryId ? { category: null, updatedAt: now } : null));
				if (result?.after) changed++;
			}
			return changed;
		});
	}

	async setStatus(id: string, status: ImageStatus, reason: string | null, from?: ImageStatus[]): Promise<StatusChange | null> {
		return this.run(async () => {
			const result = await this.modify(id, current =>
				from && !from.includes(current.status) ? null : { status, statusReason: reason, updatedAt: nowIso() }
			);
			return result?.after ? { before: result.before, after: result.after } : null;
		});
	}

	async setProcessed(id: string, metadata: ImageMetadata, renditions: Rendition[]): Promise<{ doc: ImageDoc; applied: boolean } | null> {
		return this.run(async () => {
			const result = await this.modify(id, current => (current.renditions.length > 0 ? null : { metadata, renditions, updatedAt: nowIso() }));
			if (!result) return null;
			return result.after ? { doc: result.after, applied: true } : { doc: result.before, applied: false };
		});
	}

	async resetProcessing(id: string): Promise<ImageDoc | null> {
		return this.run(async () => {
			const result = await this.modify(id, () => ({ status: "processing", statusReason: null, metadata: null, renditions: [], updatedAt: nowIso() }));
			return result?.before ?? null;
		});
	}

	async claimStuck(before: string, limit: number): Promise<ImageDoc[]> {
		return this.run(async () => {
			const stuck = await this.images
				.find({ status: "processing", updatedAt: { $lt: before } })
				.sort({ updatedAt: 1, _id: 1 })
				.limit(limit)
				.toArray();
			const now = nowIso();
			const claimed: ImageDoc[] = [];
			for (const { _id } of stuck) {
				// Still stuck when written: another reconciler may have claimed it since the query.
				const result = await this.modify(_id, current => (current.status === "processing" && current.updatedAt < before ? { updatedAt: now } : null));
				if (result?.after) claimed.push(result.after);
			}
			return claimed;
		});
	}

	async trash(id: string, at: string): Promise<ImageDoc | null> {
		return this.run(async () => {
			const result = await this.modify(id, current => (current.trashedAt === null ? { trashedAt: at } : null));
			return result && (result.after ?? result.before);
		});
	}

	async restore(id: string): Promise<ImageDoc | null> {
		return this.run(async () => {
			const result = await this.modify(id, current => (current.trashedAt === null ? null : { trashedAt: null }));
			return result && (result.after ?? result.before);
		});
	}

	async trashedBefore(before: string, limit: number): Promise<ImageDoc[]> {
		return this.run(async () => {
			const records = await this.images
				.find({ trashedAt: { $ne: null, $lt: before } })
				.sort({ trashedAt: 1, _id: 1 })
				.limit(limit)
				.toArray();
			return records.map(fromRecord);
		});
	}

	/**
	 * Read, change, write back if nobody wrote in between (else read again): the search fields
	 * always match the fields they come from. `change` returns the fields to set, or null to leave
	 * the document as it is (then `after` is null); null when there is no such image. Never writes
	 * views, so a concurrent incrementViews is never overwritten.
	 */
	private modify(id: string, change: (current: ImageDoc) => Change | null): Promise<{ before: ImageDoc; after: ImageDoc | null } | null> {
		return this.writes.run(id, () => this.modifyUnlocked(id, change));
	}

	private async modifyUnlocked(id: string, change: (current: ImageDoc) => Change | null): Promise<{ before: ImageDoc; after: ImageDoc | null } | null> {
		for (;;) {
			const record = await this.images.findOne({ _id: id });
			if (!record) return null;
			const before = fromRecord(record);
			const fields = change(before);
			if (!fields) return { before, after: null };
			const written = await this.images.findOneAndUpdate(
				{ _id: id, rev: record.rev },
				{ $set: { ...fields, ...searchFieldsOf({ ...before, ...fields }) }, $inc: { rev: 1 } },
				{ returnDocument: "after" }
			);
			if (written) return { before, after: fromRecord(written) };
		}
	}
}
