/**
 * Gallery and search: the query box (the API's search language), filters and sort kept in the
 * URL so a search can be bookmarked, the grid, and a stats panel.
 */
import type { Category } from "../../../models/categories/category.ts";
import type { CountAndBytes, SortKey } from "../../../models/images/image-types.ts";
import { api, currentUser, type Stats } from "../api.ts";
import { field, formatBytes, h, option } from "../dom.ts";
import { imageGrid } from "../grid.ts";
import { navigate, type Page } from "../router.ts";

const SORTS: [SortKey, string][] = [
	["-createdAt", "Newest"],
	["-views", "Most viewed"],
	["name", "Name"]
];
const SCOPES: [string, string][] = [
	["", "All I can see"],
	["mine", "Mine"],
	["public", "Public"]
];

function statsPanel(): HTMLElement {
	const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
	const panel = h("details", { class: "stats card" }, h("summary", {}, "Statistics"), body);
	panel.addEventListener(
		"toggle",
		async () => {
			try {
				const stats = await api<Stats>("GET", "/stats");
				const rows = (record: Record<string, CountAndBytes>) =>
					h("ul", { class: "plain" }, ...Object.entries(record).map(([key, value]) => h("li", {}, `${key}: ${value.count} (${formatBytes(value.bytes)})`)));
				body.replaceChildren(
					h("p", {}, `${stats.images.count} images, ${formatBytes(stats.images.bytes)}, ${stats.totalViews} views`),
					h(
						"div",
						{ class: "stats-columns" },
						h("section", {}, h("h3", {}, "By format"), rows(stats.byFormat)),
						h("section", {}, h("h3", {}, "By category"), rows(stats.byCategory)),
						h("section", {}, h("h3", {}, "Top tags"), h("p", { class: "tags" }, ...stats.topTags.map(tag => h("a", { href: `/?tag=${encodeURIComponent(tag.label)}`, class: "tag" }, `${tag.label} (${tag.count})`))))
					)
				);
			} catch (err) {
				body.replaceChildren(h("p", { class: "error" }, (err as Error).message));
			}
		},
		{ once: true }
	);
	return panel;
}

export const galleryPage: Page = async (main, _params, search) => {
	const q = h("input", { type: "search", name: "q", value: search.get("q") ?? "", placeholder: 'tag:dog date:2024 "red car"' });
	const tag = h("input", { name: "tag", value: search.get("tag") ?? "", placeholder: "any of: cat, dog" });
	const category = h("select", { name: "category" }, option("", "Any category"));
	const scope = h("select", { name: "scope" }, ...SCOPES.map(([value, label]) => option(value, label, search.get("scope") === value)));
	const sort = h("select", { name: "sort" }, ...SORTS.map(([value, label]) => option(value, label, (search.get("sort") ?? "-createdAt") === value)));
	const form = h(
		"form",
		{ class: "filters", role: "search", "aria-label": "Search images" },
		field("Search", q, 'Words, "phrases", tag:a,b category:x owner:name date:2024 from:2024-01-01 to:2024-12-31'),
		field("Tag", tag),
		field("Category", category),
		field("Show", scope),
		field("Sort by", sort),
		h("div", { class: "actions" }, h("button", { type: "submit" }, "Search"))
	);
	api<{ items: Category[] }>("GET", "/categories").then(
		({ items }) => category.append(...items.map(c => option(c.id, c.name, search.get("category") === c.id))),
		() => undefined
	);
	const apply = (event?: Event) => {
		event?.preventDefault();
		const next = new URLSearchParams();
		for (const [key, el] of [["q", q], ["tag", tag], ["category", category], ["scope", scope], ["sort", sort]] as const) {
			const value = el.value.trim();
			if (value && !(key === "sort" && value === "-createdAt")) next.set(key, value);
		}
		navigate(`/${next.size ? `?${next}` : ""}`, true);
	};
	form.addEventListener("submit", apply);
	for (const select of [category, scope, sort]) select.addEventListener("change", apply);

	const query: Record<string, string> = {};
	for (const key of ["q", "tag", "category", "sort"]) {
		const value = search.get(key);
		if (value) query[key] = value;
	}
	if (search.get("scope") === "mine") query.owner = currentUser()!.username;
	if (search.get("scope") === "public") query.visibility = "public";
	const grid = imageGrid(query);
	main.append(
		h("div", { class: "page-head" }, h("h1", {}, search.get("q") ? `Search: ${search.get("q")}` : "Gallery"), h("a", { href: "/upload", class: "button" }, "Upload")),
		form,
		statsPanel(),
		grid.element
	);
	return grid.destroy;
};
