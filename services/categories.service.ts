/** Categories: admins curate them, everyone lists them, images point at them by id (slug). */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { getConfig } from "../config/index.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { openCategoryRepository } from "../models/backends.ts";
import { BadRequestError, NotFoundError } from "../models/shared/errors.ts";
import { nowIso } from "../models/shared/ids.ts";
import { ID } from "../models/shared/params.ts";
import { slugify, type Category, type CategoryRepository } from "../models/categories/category.ts";

const NAME = { type: "string", min: 1, max: 64, trim: true };
const DESCRIPTION = { type: "string", max: 1000, trim: true, optional: true };

interface CategoriesMethods {
	existing(id: string): Promise<Category>;
}
interface CategoriesVars {
	repo: CategoryRepository;
}

type CategoriesContext = Context<Record<string, any>, { $statusCode?: number; $location?: string }>;

const categories: ServiceSchema<ServiceSettingSchema, CategoriesMethods, CategoriesVars> = {
	name: "categories",
	mixins: [repositoryMixin(() => openCategoryRepository(getConfig()), "The category store")],
	settings: { rest: "/categories" },

	actions: {
		list: {
			rest: "GET /",
			auth: "optional",
			params: { $$strict: true },
			async handler() {
				return { items: await this.repo.list() };
			}
		},

		create: {
			rest: "POST /",
			auth: "admin",
			params: { $$strict: true, name: NAME, description: DESCRIPTION },
			async handler(ctx: CategoriesContext) {
				const id = slugify(ctx.params.name);
				if (!id) throw new BadRequestError("A category name needs at least one letter or digit", "INVALID_CATEGORY_NAME");
				const now = nowIso();
				const category: Category = { id, name: ctx.params.name, description: ctx.params.description ?? "", createdAt: now, updatedAt: now };
				await this.repo.insert(category);
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/categories/${id}`;
				return category;
			}
		},

		update: {
			rest: "PATCH /:id",
			auth: "admin",
			params: { $$strict: true, id: ID, name: { ...NAME, optional: true }, description: DESCRIPTION },
			async handler(ctx: CategoriesContext) {
				const { id, name, description } = ctx.params;
				// An optional parameter may also be null; here that means "not given", as undefined does.
				const updated = await this.repo.update(id, { name: name ?? undefined, description: description ?? undefined });
				if (!updated) throw new NotFoundError("Category", id);
				return updated;
			}
		},

		remove: {
			rest: "DELETE /:id",
			auth: "admin",
			params: { $$strict: true, id: ID },
			async handler(ctx: CategoriesContext) {
				await this.existing(ctx.params.id);
				// Images first, so none is left pointing at a category that no longer exists.
				await ctx.call("images.clearCategory", { category: ctx.params.id });
				await this.repo.remove(ctx.params.id);
				ctx.meta.$statusCode = 204;
				return null;
			}
		},

		images: {
			rest: "GET /:id/images",
			auth: "optional",
			params: {
				$$strict: true,
				id: ID,
				limit: { type: "number", integer: true, min: 1, max: 100, convert: true, optional: true },
				cursor: { type: "string", max: 500, optional: true }
			},
			async handler(ctx: CategoriesContext) {
				const { id, limit, cursor } = ctx.params;
				await this.existing(id);
				return ctx.call("images.list", { category: id, sort: "-createdAt", limit, cursor });
			}
		},

		/** A category by id or by name (any case); 400 when there is none. */
		resolve: {
			visibility: "public",
			params: { $$strict: true, ref: { type: "string", max: 64 } },
			async handler(ctx: CategoriesContext) {
				const ref: string = ctx.params.ref.trim();
				const byId = await this.repo.get(ref);
				if (byId) return byId;
				const byName = (await this.repo.list()).find(category => category.name.toLowerCase() === ref.toLowerCase());
				if (byName) return byName;
				throw new BadRequestError(`Unknown category '${ref}' (an administrator creates categories)`, "UNKNOWN_CATEGORY");
			}
		},

	},

	methods: {
		async existing(id: string): Promise<Category> {
			const category = await this.repo.get(id);
			if (!category) throw new NotFoundError("Category", id);
			return category;
		}
	}
};

export default categories;
