/**
 * Bulk actions on the selected photos: make public or private, set the category, add tags,
 * delete (to the trash, with Undo). Each is one REST call per photo (PATCH or DELETE
 * /api/images/:id), three at a time, with a progress bar; photos that fail stay selected and are
 * listed with the server's reason. "Add to album" is one call for them all (POST
 * /api/albums/:id/images).
 */
import type { AlbumSummary } from "../../models/albums/album.ts";
import type { Category } from "../../models/categories/category.ts";
import type { PublicImage } from "../../models/images/public-image.ts";
import { api } from "./api.ts";
import { field, h, option, toast, type ToastAction } from "./dom.ts";
import type { Selection } from "./selection.ts";

const PARALLEL = 3;

export interface BulkOptions {
	selection: Selection;
	get(id: string): PublicImage | undefined;
	categories: Category[];
	onUpdated(image: PublicImage): void;
	onDeleted(id: string): void;
	/** Photos came back from the trash (the toast's Undo). */
	onRestored(): void;
}

/** A modal question: resolves to the control's value (or "" without one), or null when cancelled. */
export function ask(title: string, text: string, confirm: string, control?: { label: string; el: HTMLInputElement | HTMLSelectElement }, danger = false): Promise<string | null> {
	const dialog = h(
		"dialog",
		{ "aria-label": title },
		h("form", { method: "dialog" }, h("h2", {}, title), h("p", {}, text), control ? field(control.label, control.el) : null, h("div", { class: "actions" }, h("button", { value: "cancel", class: "secondary", formnovalidate: true }, "Cancel"), h("button", { value: "ok", class: danger ? "danger" : "" }, confirm)))
	);
	document.body.append(dialog);
	dialog.showModal();
	return new Promise(resolve =>
		dialog.addEventListener("close", () => {
			dialog.remove();
			resolve(dialog.returnValue === "ok" ? (control?.el.value ?? "") : null);
		})
	);
}

export const count = (n: number) => `${n} photo${n === 1 ? "" : "s"}`;

/** A comma list of tags, as the API reads it. */
const splitTags = (text: string) =>
	text
		.split(",")
		.map(tag => tag.trim())
		.filter(Boolean);

/** The bar; `refresh()` follows the selection (call it from the selection's onChange). */
export type BulkBar = HTMLElement & { refresh(): void };

export function bulkBar(options: BulkOptions): BulkBar {
	const { selection } = options;
	const label = h("strong", { class: "selected-count" });
	const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Bulk action progress" });
	const report = h("div", { class: "bulk-report", role: "status" });
	const buttons: HTMLButtonElement[] = [];
	const button = (text: string, action: () => void, extra: Record<string, unknown> = {}) => {
		const el = h("button", { type: "button", class: "secondary", ...extra }, text);
		el.addEventListener("click", action);
		buttons.push(el);
		return el;
	};
	const bar = h(
		"section",
		{ class: "bulkbar", "aria-label": "Selection", hidden: true },
		h(
			"div",
			{ class: "bulk-row" },
			button("✕", () => selection.clear(), { "aria-label": "Clear selection", title: "Clear selection (Esc)", class: "link clear" }),
			label,
			h(
				"div",
				{ class: "actions" },
				button("Make public", () => void run("made public", image => patch(image, { visibility: "public" }))),
				button("Make private", () => void run("made private", image => patch(image, { visibility: "private" }))),
				button("Set category…", () => void setCategory()),
				button("Add tags…", () => void addTags()),
				button("Add to album…", () => void addToAlbum()),
				button("Delete…", () => void remove(), { class: "danger" })
			)
		),
		progress,
		report
	);

	async function patch(image: PublicImage, body: Record<string, unknown>): Promise<void> {
		options.onUpdated(await api<PublicImage>("PATCH", `/images/${image.id}`, body));
	}

	/**
	 * Runs `action` on every selected photo; the ones that succeed are deselected. With `undo`, the
	 * toast that says all went well offers to undo it for them.
	 */
	async function run(done: string, action: (image: PublicImage) => Promise<void>, undo?: (images: PublicImage[]) => ToastAction): Promise<void> {
		const images = [...selection.ids].map(id => options.get(id)).filter(image => image !== undefined);
		const failures: { image: PublicImage; message: string }[] = [];
		let finished = 0;
		for (const el of buttons) el.disabled = true;
		progress.hidden = false;
		progress.max = images.length;
		progress.value = 0;
		report.replaceChildren(`Working… 0 of ${images.length}`);
		const queue = [...images];
		const worker = async () => {
			for (let image = queue.shift(); image; image = queue.shift()) {
				try {
					await action(image);
					selection.set(image.id, false);
				} catch (err) {
					failures.push({ image, message: (err as Error).message });
				}
				progress.value = ++finished;
				report.textContent = `Working… ${finished} of ${images.length}`;
			}
		};
		await Promise.all(Array.from({ length: PARALLEL }, worker));
		for (const el of buttons) el.disabled = false;
		progress.hidden = true;
		const succeeded = images.length - failures.length;
		if (failures.length === 0) {
			// Nothing is left selected, so the bar goes: the outcome is said by the toast.
			report.replaceChildren();
			toast(`${count(succeeded)} ${done}`, "info", undo?.(images));
			return;
		}
		report.replaceChildren(
			h("p", { class: "error" }, `${failures.length} of ${count(images.length)} failed${succeeded ? `; ${succeeded} ${done}` : ""}. The failed ones are still selected.`),
			h("ul", { class: "plain failures" }, ...failures.map(({ image, message }) => h("li", {}, h("strong", {}, image.name), ` — ${message}`)))
		);
	}

	async function setCategory(): Promise<void> {
		const select = h("select", { name: "bulk-category" }, option("", "None"), ...options.categories.map(c => option(c.id, c.name)));
		const value = await ask("Set the category", `Of ${count(selection.ids.size)}.`, "Set category", { label: "Category", el: select });
		if (value !== null) await run(value ? `moved to ${select.selectedOptions[0].textContent}` : "left without a category", image => patch(image, { category: value || null }));
	}

	async function addTags(): Promise<void> {
		const input = h("input", { name: "bulk-tags", placeholder: "beach, family", required: true });
		const value = await ask("Add tags", `To ${count(selection.ids.size)}; their other tags stay.`, "Add tags", { label: "Tags to add", el: input });
		const added = splitTags(value ?? "");
		if (added.length === 0) return;
		await run(`tagged ${added.join(", ")}`, image => {
			const mine = image.tags.filter(tag => tag.source === "user").map(tag => tag.label);
			const known = new Set(mine.map(tag => tag.toLowerCase()));
			return patch(image, { tags: [...mine, ...added.filter(tag => !known.has(tag.toLowerCase()))] });
		});
	}

	/** Into an album the user may add to, or a new one named on the spot. */
	async function addToAlbum(): Promise<void> {
		const albums = (await api<{ items: AlbumSummary[] }>("GET", "/albums")).items.filter(album => album.role !== "viewer");
		const select = h("select", { name: "bulk-album" }, ...albums.map(album => option(album.id, album.name)), option("", "A new album…"));
		const ids = [...selection.ids];
		const chosen = await ask("Add to album", `${count(ids.length)} of yours.`, "Add", { label: "Album", el: select });
		if (chosen === null) return;
		const name = chosen ? null : await ask("New album", "Its name:", "Create", { label: "Name", el: h("input", { name: "album-name", required: true, maxlength: 200 }) });
		if (name === "") return;
		try {
			const albumId = chosen || (await api<{ album: AlbumSummary }>("POST", "/albums", { name })).album.id;
			await api("POST", `/albums/${albumId}/images`, { ids });
			selection.clear();
			toast(`${count(ids.length)} added to ${chosen ? select.selectedOptions[0]!.textContent : name}`);
		} catch (err) {
			toast((err as Error).message, "error");
		}
	}

	async function remove(): Promise<void> {
		const n = selection.ids.size;
		if ((await ask(`Delete ${count(n)}?`, `${n === 1 ? "It" : "They"} will be moved to the trash, where you can restore ${n === 1 ? "it" : "them"}.`, "Delete", undefined, true)) === null) return;
		await run(
			"moved to trash",
			async image => {
				await api("DELETE", `/images/${image.id}`);
				options.onDeleted(image.id);
			},
			images => ({ label: "Undo", run: () => void restore(images) })
		);
	}

	async function restore(images: PublicImage[]): Promise<void> {
		const results = await Promise.allSettled(images.map(image => api("POST", `/trash/${image.id}/restore`)));
		const failed = results.filter(result => result.status === "rejected").length;
		toast(failed ? `${failed} of ${count(images.length)} could not be restored` : `${count(images.length)} restored`, failed ? "error" : "info");
		options.onRestored();
	}

	/** Follows the selection: shown while something is selected. */
	function render(): void {
		const n = selection.ids.size;
		label.textContent = `${n} selected`;
		bar.hidden = n === 0;
		if (n === 0) report.replaceChildren();
	}

	return Object.assign(bar, { refresh: render });
}
