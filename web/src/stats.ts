/** The statistics panel of the photos page: figures by format and category (by name), top tags. */
import type { CountAndBytes } from "../../models/images/image-types.ts";
import { api, type Stats } from "./api.ts";
import { formatBytes, h } from "./dom.ts";

/** A folded panel that reads GET /api/stats the first time it is opened. */
export function statsPanel(categoryNames: () => Map<string, string>): HTMLElement {
	const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
	const panel = h("details", { class: "stats card" }, h("summary", {}, "Statistics"), body);
	const rows = (record: Record<string, CountAndBytes>, name: (key: string) => string) =>
		h("ul", { class: "plain" }, ...Object.entries(record).map(([key, value]) => h("li", {}, `${name(key)}: ${value.count} (${formatBytes(value.bytes)})`)));
	panel.addEventListener(
		"toggle",
		async () => {
			try {
				const stats = await api<Stats>("GET", "/stats");
				const names = categoryNames();
				// byCategory is keyed by category id (its slug); "none" counts the uncategorised.
				const category = (id: string) => (id === "none" ? "No category" : (names.get(id) ?? id));
				body.replaceChildren(
					h("p", {}, `${stats.images.count} images, ${formatBytes(stats.images.bytes)}, ${stats.totalViews} views`),
					h(
						"div",
						{ class: "stats-columns" },
						h("section", {}, h("h3", {}, "By format"), rows(stats.byFormat, format => format.toUpperCase())),
						h("section", {}, h("h3", {}, "By category"), rows(stats.byCategory, category)),
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
