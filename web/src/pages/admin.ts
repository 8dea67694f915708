/** Administration: users (role, disabled), categories, and the node's health, storage and cache figures. */
import type { Category } from "../../../models/categories/category.ts";
import type { Role } from "../../../models/shared/access.ts";
import type { PublicUser } from "../../../models/users/user.ts";
import { api, currentUser, type Stats } from "../api.ts";
import { field, formatBytes, h, option, toast } from "../dom.ts";
import type { Page } from "../router.ts";

function usersSection(): HTMLElement {
	const body = h("tbody");
	const section = h("section", { class: "card", "aria-labelledby": "users-title" }, h("h2", { id: "users-title" }, "Users"), h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "User"), h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, "Disabled"))), body)));
	const patch = async (user: PublicUser, change: Partial<Pick<PublicUser, "role" | "disabled">>) => {
		try {
			await api("PATCH", `/users/${user.id}`, change);
			toast(`${user.username} updated`);
		} catch (err) {
			toast((err as Error).message, "error");
			void load();
		}
	};
	async function load(): Promise<void> {
		const { items } = await api<{ items: PublicUser[] }>("GET", "/users");
		body.replaceChildren(
			...items.map(user => {
				const self = user.id === currentUser()?.id;
				const role = h("select", { "aria-label": `Role of ${user.username}`, disabled: self }, option("user", "User", user.role === "user"), option("admin", "Admin", user.role === "admin"));
				const disabled = h("input", { type: "checkbox", "aria-label": `Disable ${user.username}`, checked: user.disabled, disabled: self });
				role.addEventListener("change", () => void patch(user, { role: role.value as Role }));
				disabled.addEventListener("change", () => void patch(user, { disabled: disabled.checked }));
				return h("tr", {}, h("th", { scope: "row" }, user.username, user.name && user.name !== user.username ? h("small", {}, ` ${user.name}`) : null), h("td", {}, role), h("td", {}, disabled));
			})
		);
	}
	load().catch(err => section.append(h("p", { class: "error" }, (err as Error).message)));
	return section;
}

function categoriesSection(): HTMLElement {
	const list = h("ul", { class: "plain" });
	const name = h("input", { name: "name", required: true, maxlength: 64 });
	const description = h("input", { name: "description", maxlength: 500 });
	const form = h("form", { class: "inline" }, field("New category", name), field("Description", description), h("button", { type: "submit" }, "Add"));
	async function load(): Promise<void> {
		const { items } = await api<{ items: Category[] }>("GET", "/categories");
		list.replaceChildren(
			...items.map(category => {
				const remove = h("button", { type: "button", class: "link", "aria-label": `Delete category ${category.name}` }, "Delete");
				remove.addEventListener("click", async () => {
					if (!confirm(`Delete the category “${category.name}”? Its images stay, uncategorised.`)) return;
					await api("DELETE", `/categories/${category.id}`).catch(err => toast((err as Error).message, "error"));
					void load();
				});
				return h("li", {}, h("a", { href: `/?category=${encodeURIComponent(category.id)}` }, category.name), category.description ? h("small", {}, ` — ${category.description}`) : null, " ", remove);
			})
		);
	}
	form.addEventListener("submit", async event => {
		event.preventDefault();
		try {
			await api("POST", "/categories", { name: name.value.trim(), description: description.value.trim() || undefined });
			form.reset();
			void load();
		} catch (err) {
			toast((err as Error).message, "error");
		}
	});
	void load();
	return h("section", { class: "card", "aria-labelledby": "categories-title" }, h("h2", { id: "categories-title" }, "Categories"), list, form);
}

/** What /api/ready, /api/stats and /api/transform/stats say about this node and the whole store. */
function statusSection(): HTMLElement {
	const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
	void (async () => {
		const ready = await fetch("/api/ready").then(res => res.json() as Promise<{ status: string; node: string; checks: { service: string; ok: boolean; error?: string }[] }>);
		const cache = await api<{ node: string; hits: number; misses: number; renders: number; evictions: number; entries: number; bytes: number; maxBytes: number }>("GET", "/transform/stats");
		const stats = await api<Stats>("GET", "/stats");
		body.replaceChildren(
			h("p", {}, h("a", { href: "/jobs" }, "Jobs: channels, dead letters, reprocessing failed images →")),
			h("h3", {}, "Readiness"),
			h("p", {}, `Node ${ready.node}: ${ready.status}`),
			h("ul", { class: "plain checks" }, ...ready.checks.map(check => h("li", { class: check.ok ? "ok" : "bad" }, `${check.ok ? "✓" : "✗"} ${check.service}${check.error ? ` — ${check.error}` : ""}`))),
			h("h3", {}, "Store"),
			h("p", {}, `${stats.users ?? 0} users · ${stats.images.count} images (${formatBytes(stats.images.bytes)}) · ${stats.encrypted.count} encrypted · ${stats.totalViews} views`),
			h("p", {}, Object.entries(stats.byVisibility).map(([key, value]) => `${key}: ${value.count}`).join(" · ")),
			h("h3", {}, "Transform cache"),
			h("p", {}, `Node ${cache.node}: ${cache.hits} hits, ${cache.misses} misses, ${cache.renders} renders, ${cache.evictions} evictions · ${cache.entries} variants, ${formatBytes(cache.bytes)} of ${formatBytes(cache.maxBytes)}`)
		);
	})().catch(err => body.replaceChildren(h("p", { class: "error" }, (err as Error).message)));
	return h("section", { class: "card", "aria-labelledby": "status-title" }, h("h2", { id: "status-title" }, "Cluster and queues"), body);
}

export const adminPage: Page = main => {
	main.append(h("h1", {}, "Administration"), h("div", { class: "two-columns" }, usersSection(), h("div", {}, categoriesSection(), statusSection())));
};
