/** CategoryRepository on node:sqlite (embedded mode), in the images database and schema. */
import type { DatabaseSync } from "node:sqlite";
import { closeDatabase, transaction, uniqueViolationOf } from "../db/sqlite.ts";
import { definedFields } from "../shared/fields.ts";
import { openImagesDatabase } from "../images/sqlite-repository.ts";
import { ConflictError } from "../shared/errors.ts";
import { nowIso } from "../shared/ids.ts";
import type { Category, CategoryRepository } from "./category.ts";


interface CategoryRow {
	id: string;
	name: string;
	description: string;
	created_at: string;
	updated_at: string;
}

const CATEGORY_COLUMNS = "id, name, description, created_at, updated_at";

function categoryFromRow(row: CategoryRow): Category {
	return { id: row.id, name: row.name, description: row.description, createdAt: row.created_at, updatedAt: row.updated_at };
}

function categoryParams(category: Category): Record<string, string> {
	return {
		id: category.id,
		name: category.name,
		name_key: category.name.toLowerCase(),
		description: category.description,
		created_at: category.createdAt,
		updated_at: category.updatedAt
	};
}

/** Runs a write, turning a taken id or name into a ConflictError. */
function withCategoryConflicts<T>(category: Category, write: () => T): T {
	try {
		return write();
	} catch (err) {
		const column = uniqueViolationOf(err);
		if (column === "categories.id") throw new ConflictError(`Category "${category.id}" already exists`, "CATEGORY_EXISTS", { id: category.id });
		if (column === "categories.name_key") {
			throw new ConflictError(`A category named "${category.name}" already exists`, "CATEGORY_EXISTS", { name: category.name });
		}
		throw err;
	}
}

export class SqliteCategoryRepository implements CategoryRepository {
	private readonly db: DatabaseSync;

	constructor(file: string) {
		this.db = openImagesDatabase(file);
	}

	async list(): Promise<Category[]> {
		const rows = this.db.prepare(`SELECT ${CATEGORY_COLUMNS} FROM categories ORDER BY name_key, id`).all() as unknown as CategoryRow[];
		return rows.map(categoryFromRow);
	}

	async get(id: string): Promise<Category | null> {
		return this.find(id);
	}

	async insert(category: Category): Promise<void> {
		withCategoryConflicts(category, () =>
			this.db
				.prepare(
					`INSERT INTO categories (id, name, name_key, description, created_at, updated_at)
					 VALUES (:id, :name, :name_key, :description, :created_at, :updated_at)`
				)
				.run(categoryParams(category))
		);
	}

	async update(id: string, patch: Partial<Pick<Category, "name" | "description">>): Promise<Category | null> {
		return transaction(this.db, () => {
			const current = this.find(id);
			if (!current) return null;
			const next: Category = { ...current, ...definedFields(patch), updatedAt: nowIso() };
			const { created_at: _unchanged, ...params } = categoryParams(next);
			withCategoryConflicts(next, () =>
				this.db
					.prepare("UPDATE categories SET name = :name, name_key = :name_key, description = :description, updated_at = :updated_at WHERE id = :id")
					.run(params)
			);
			return next;
		});
	}

	async remove(id: string): Promise<boolean> {
		return Number(this.db.prepare("DELETE FROM categories WHERE id = ?").run(id).changes) > 0;
	}

	async ping(): Promise<boolean> {
		return this.db.prepare("SELECT 1 AS ok").get() !== undefined;
	}

	async close(): Promise<void> {
		closeDatabase(this.db);
	}

	private find(id: string): Category | null {
		const row = this.db.prepare(`SELECT ${CATEGORY_COLUMNS} FROM categories WHERE id = ?`).get(id);
		return row ? categoryFromRow(row as unknown as CategoryRow) : null;
	}
}
