/**
 * Categories: the stored shape and the backend-neutral repository contract, implemented on SQLite
 * (sqlite-repository.ts, in the images database) and MongoDB (mongo-repository.ts). Admins curate
 * them; images point at them by id, a slug of the name at creation. The web app imports Category
 * (type-only) and compiles this file without Node's types: import nothing here that needs them.
 */

export interface Category {
	/** URL-safe slug derived from the name at creation; never changes. */
	id: string;
	name: string;
	description: string;
	createdAt: string;
	updatedAt: string;
}

/** "Street Art & Murals" -> "street-art-murals". */
export function slugify(name: string): string {
	return name
		.normalize("NFKD")
		.replace(/[\u0300-\u036f]/g, "")
		.toLowerCase()
		.replace(/[^a-z0-9]+/g, "-")
		.replace(/^-+|-+$/g, "")
		.slice(0, 64);
}

/** Every field of a Category but its id, for stores that map records field by field. */
export const CATEGORY_FIELDS = ["name", "description", "createdAt", "updatedAt"] as const satisfies readonly (keyof Category)[];

export interface CategoryRepository {
	list(): Promise<Category[]>;
	get(id: string): Promise<Category | null>;
	/** Throws ConflictError when the id or name is taken. */
	insert(category: Category): Promise<void>;
	update(id: string, patch: Partial<Pick<Category, "name" | "description">>): Promise<Category | null>;
	remove(id: string): Promise<boolean>;
	ping(): Promise<boolean>;
	close(): Promise<void>;
}
