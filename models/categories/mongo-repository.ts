/** CategoryRepository on MongoDB (distributed mode); the same contract as the SQLite one. */
import type { Collection } from "mongodb";
import { isDuplicateKey, MongoBackend, type MongoOptions } from "../db/mongo.ts";
import { definedFields, pick } from "../shared/fields.ts";
import { ConflictError } from "../shared/errors.ts";
import { nowIso } from "../shared/ids.ts";
import { CATEGORY_FIELDS, type Category, type CategoryRepository } from "./category.ts";


interface CategoryRecord extends Omit<Category, "id"> {
	_id: string;
	/** name.toLowerCase(): unique, so names differing only in letter case conflict. */
	nameKey: string;
}

function categoryFromRecord(record: CategoryRecord): Category {
	return { id: record._id, ...pick(record, CATEGORY_FIELDS) };
}

function nameTaken(category: Category): ConflictError {
	return new ConflictError(`A category named "${category.name}" already exists`, "CATEGORY_EXISTS", { name: category.name });
}

export class MongoCategoryRepository extends MongoBackend implements CategoryRepository {
	private readonly categories: Collection<CategoryRecord>;

	constructor(options: MongoOptions) {
		super(options, "The category store");
		this.categories = this.db.collection<CategoryRecord>("categories");
	}

	protected async prepare(): Promise<void> {
		await this.ensureIndexes(this.categories, [{ key: { nameKey: 1 }, unique: true }]);
	}

	async list(): Promise<Category[]> {
		return this.run(async () => {
			const records = await this.categories.find({}).sort({ nameKey: 1, _id: 1 }).toArray();
			return records.map(categoryFromRecord);
		});
	}

	async get(id: string): Promise<Category | null> {
		return this.run(async () => {
			const record = await this.categories.findOne({ _id: id });
			return record && categoryFromRecord(record);
		});
	}

	async insert(category: Category): Promise<void> {
		await this.run(async () => {
			const { id, ...fields } = category;
			try {
				await this.categories.insertOne({ _id: id, ...fields, nameKey: category.name.toLowerCase() });
			} catch (err) {
				if (!isDuplicateKey(err)) throw err;
				// FerretDB's duplicate key error names neither the index nor the key: ask which is taken.
				if (!(await this.categories.findOne({ _id: id }))) throw nameTaken(category);
				throw new ConflictError(`Category "${id}" already exists`, "CATEGORY_EXISTS", { id });
			}
		});
	}

	async update(id: string, patch: Partial<Pick<Category, "name" | "description">>): Promise<Category | null> {
		return this.run(async () => {
			const record = await this.categories.findOne({ _id: id });
			if (!record) return null;
			const next: Category = { ...categoryFromRecord(record), ...definedFields(patch), updatedAt: nowIso() };
			// Checked first because FerretDB v1 reports a unique index violated by an update as a
			// generic error; the index still settles a race on MongoDB.
			const nameKey = next.name.toLowerCase();
			if (await this.categories.findOne({ nameKey: nameKey, _id: { $ne: id } })) throw nameTaken(next);
			try {
				const { matchedCount } = await this.categories.updateOne(
					{ _id: id },
					{ $set: { name: next.name, nameKey, description: next.description, updatedAt: next.updatedAt } }
				);
				return matchedCount === 1 ? next : null;
			} catch (err) {
				// Its own id exists: only the name can be taken.
				if (isDuplicateKey(err)) throw nameTaken(next);
				throw err;
			}
		});
	}

	async remove(id: string): Promise<boolean> {
		return this.run(async () => (await this.categories.deleteOne({ _id: id })).deletedCount === 1);
	}
}
