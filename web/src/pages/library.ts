/**
 * Photos: your library as a timeline (or, sorted otherwise, a grid), search and filters kept in
 * the URL so a search can be bookmarked, selection with bulk actions, the full-screen viewer and
 * the statistics. A new user's library is empty: it says so and offers the upload.
 */
import type { Category } from "../../../models/categories/category.ts";
import { api, currentUser } from "../api.ts";
import { bulkBar } from "../bulk.ts";
import { field, h, option } from "../dom.ts";
import { photoView } from "../photos.ts";
import { navigate, type Page } from "../router.ts";
import { selectable } from "../selection.ts";
import { statsPanel } from "../stats.ts";
import { openViewer } from "../viewer.ts";

/** "" (no sort in the URL) is the timeline by date taken; the others are the API's sort keys. */
const SORTS: [string, string][] = [
	["", "Date taken"],
	["-createdAt", "Recently added"],
	["-views", "Most viewed"],
	["name", "Name"]
];
const SCOPES: [string, string][] = [
	["", "My photos"],
	["all", "All I can see"],
	["public", "Public"]
];
const FILTERS = ["q", "tag", "category", "scope", "sort"] as const;

function emptyLibrary(): HTMLElement {
	return h(
		"div",
		{ class: "empty card" },
		h("h2", {}, "Your library is empty"),
		h("p", {}, "Upload photos from your computer or phone — drop files or whole folders — or import them from a list of links or a Google Drive folder."),
		h("p", { class: "actions" }, h("a", { href: "/upload", class: "button" }, "Upload your first photos"), h("a", { href: "/imports", class: "button secondary" }, "Import"))
	);
}

function noMatch(search: URLSearchParams): HTMLElement {
	const scope = search.get("scope");
	return h(
		"div",
		{ class: "empty card" },
		h("h2", {}, "No photos match"),
		h("p", {}, "Nothing matches this search and these filters. Try other words, fewer filters, or search all the photos you can see."),
		h("p", { class: "actions" }, h("a", { href: scope ? `/?scope=${scope}` : "/", class: "button secondary" }, "Clear the search"), scope !== "all" ? h("a", { href: `/?${new URLSearchParams({ ...Object.fromEntries(search), scope: "all" })}` }, "Search all I can see") : null)
	);
}

export const libraryPage: Page = async (main, _params, search) => {
	// Read before any request: a 401 below ends the session (and this page) while it loads.
	const me = currentUser();
	if (!me) return;
	const categories = await api<{ items: Category[] }>("GET", "/categories").then(
		result => result.items,
		() => []
	);
	const categoryNames = new Map(categories.map(c => [c.id, c.name]));
	const value = (key: string) => search.get(key) ?? "";
	const scopeValue = value("scope") === "mine" ? "" : value("scope");
	const filtered = ["q", "tag", "category"].some(key => value(key));

	// The toolbar: the search box always; the filters folded behind a button on narrow screens.
	const q = h("input", { type: "search", name: "q", value: value("q"), placeholder: "Search", "aria-describedby": "search-help" });
	const tag = h("input", { name: "tag", value: value("tag"), placeholder: "any of: cat, dog" });
	const category = h("select", { name: "category" }, option("", "Any category"), ...categories.map(c => option(c.id, c.name, value("category") === c.id)));
	const scope = h("select", { name: "scope" }, ...SCOPES.map(([key, label]) => option(key, label, scopeValue === key)));
	const sort = h("select", { name: "sort" }, ...SORTS.map(([key, label]) => option(key, label, value("sort") === key)));
	const toggle = h("button", { type: "button", class: "secondary filters-toggle", "aria-expanded": "false", "aria-controls": "filter-panel" }, "Filters");
	const form = h(
		"form",
		{ class: "filters", role: "search", "aria-label": "Search photos" },
		h("div", { class: "search-row" }, h("label", { for: "search-q", class: "visually-hidden" }, "Search"), Object.assign(q, { id: "search-q" }), toggle, h("button", { type: "submit" }, "Search")),
		h(
			"div",
			{ class: "filter-panel", id: "filter-panel" },
			field("Tag", tag),
			field("Category", category),
			field("Show", scope),
			field("Sort by", sort),
			h("small", { id: "search-help", class: "hint search-help" }, 'Words, "phrases", tag:golden retriever, tag:a,b, name:x, desc:"in the park", category:x, owner:name, date:2024, from:2024-01-01 to:2024-12-31')
		)
	);
	if ([tag, category, sort].some(el => el.value) || scopeValue) form.classList.add("open");
	toggle.setAttribute("aria-expanded", String(form.classList.contains("open")));
	toggle.addEventListener("click", () => toggle.setAttribute("aria-expanded", String(form.classList.toggle("open"))));
	const apply = (event?: Event) => {
		event?.preventDefault();
		const next = new URLSearchParams();
		for (const key of FILTERS) {
			const el = { q, tag, category, scope, sort }[key];
			if (el.value.trim()) next.set(key, el.value.trim());
		}
		navigate(`/${next.size ? `?${next}` : ""}`, true);
	};
	form.addEventListener("submit", apply);
	for (const select of [category, scope, sort]) select.addEventListener("change", apply);

	// What the API is asked: "My photos" is the owner filter.
	const params: Record<string, string> = {};
	for (const key of ["q", "tag", "category", "sort"]) if (value(key)) params[key] = value(key);
	if (!scopeValue) params.owner = me.username;
	if (scopeValue === "public") params.visibility = "public";

	const view = photoView({
		params,
		timeline: !value("sort"),
		empty: () => (filtered || scopeValue ? noMatch(search) : emptyLibrary()),
		isSelected: id => selection.has(id),
		onChange: () => selection?.prune()
	});
	const selection = selectable(view.element, {
		order: () => view.images().map(image => image.id),
		open(id) {
			const images = view.images();
			openViewer(
				images,
				images.findIndex(image => image.id === id),
				{
					categories: categoryNames,
					onClose(last) {
						const link = view.tileOf(last)?.querySelector("a");
						link?.scrollIntoView({ block: "nearest" });
						link?.focus({ preventScroll: true });
					}
				}
			);
		},
		onChange: () => bar.refresh()
	});
	const bar = bulkBar({
		selection,
		get: id => view.get(id),
		categories,
		onUpdated: image => view.update(image),
		onDeleted: id => view.remove(id),
		// The restored photos take their places again: the page is read afresh.
		onRestored: () => navigate(`${location.pathname}${location.search}`, true)
	});
	bar.refresh();

	const heading = value("q") ? `Search: ${value("q")}` : "Photos";
	main.append(
		h("div", { class: "library" }, h("div", { class: "library-main" }, h("div", { class: "page-head" }, h("h1", {}, heading), h("a", { href: "/upload", class: "button" }, "Upload")), form, statsPanel(() => categoryNames), view.element), view.rail),
		bar
	);
	return () => {
		selection.destroy();
		view.destroy();
	};
};
