/**
 * Trash: the photos deleted from the library, most recently deleted first, each with Restore and
 * Delete forever, and "Empty trash". A trashed photo answers 404 everywhere, its thumbnail too, so
 * each shows its blurred placeholder and its name. Administrators see everyone's trash (with the
 * owner's name) but empty only their own.
 */
import type { SearchPage } from "../../../models/images/image-types.ts";
import type { PublicImage } from "../../../models/images/public-image.ts";
import { api, currentUser, query } from "../api.ts";
import { ask, count } from "../bulk.ts";
import { formatDate, h, toast } from "../dom.ts";
import { setPlaceholder } from "../placeholder.ts";
import { navigate, type Page } from "../router.ts";

const PAGE_SIZE = 60;

function emptyTrash(): HTMLElement {
	return h("div", { class: "empty card" }, h("h2", {}, "The trash is empty"), h("p", {}, "Photos you delete wait here, so you can restore them, until they are deleted for good."));
}

export const trashPage: Page = async main => {
	const me = currentUser();
	if (!me) return;
	const grid = h("ul", { class: "grid trash-grid", "aria-label": "Deleted photos" });
	const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
	const emptyButton = h("button", { type: "button", class: "danger" }, "Empty trash");
	const body = h("div", {}, grid, h("p", { class: "actions" }, more));
	let cursor: string | null = null;

	/** Reads the page afresh: what is left after a change, from the first page on. */
	const reload = () => navigate("/trash", true);

	async function act(label: string, request: () => Promise<unknown>, done: string, li: HTMLElement): Promise<void> {
		try {
			await request();
			li.remove();
			toast(done);
			if (grid.childElementCount === 0 && more.hidden) body.replaceChildren(emptyTrash());
		} catch (err) {
			toast(`${label}: ${(err as Error).message}`, "error");
		}
	}

	function item(image: PublicImage): HTMLLIElement {
		const thumb = h("div", { class: "thumb" }, h("span", { class: "caption" }, image.name));
		setPlaceholder(thumb, image);
		const owner = image.owner === me!.id ? "" : ` · ${image.ownerName}`;
		const li = h("li", { class: "tile", "data-id": image.id }, thumb, h("small", { class: "hint" }, `Deleted ${formatDate(image.trashedAt!)}${owner}`));
		const restore = h("button", { type: "button", class: "secondary" }, "Restore");
		restore.addEventListener("click", () => void act("Restore", () => api("POST", `/trash/${image.id}/restore`), `“${image.name}” restored`, li));
		const forever = h("button", { type: "button", class: "danger" }, "Delete forever");
		forever.addEventListener("click", async () => {
			if ((await ask(`Delete “${image.name}” forever?`, "It will be deleted for good. This cannot be undone.", "Delete forever", undefined, true)) === null) return;
			await act("Delete", () => api("DELETE", `/trash/${image.id}`), `“${image.name}” deleted for good`, li);
		});
		li.append(h("div", { class: "actions" }, restore, forever));
		return li;
	}

	async function load(): Promise<void> {
		const page = await api<SearchPage<PublicImage>>("GET", `/trash${query({ limit: PAGE_SIZE, cursor })}`);
		grid.append(...page.items.map(item));
		cursor = page.nextCursor;
		more.hidden = cursor === null;
	}

	more.addEventListener("click", () => void load().catch(err => toast((err as Error).message, "error")));
	emptyButton.addEventListener("click", async () => {
		if ((await ask("Empty the trash?", "Every photo in your trash will be deleted for good. This cannot be undone.", "Empty trash", undefined, true)) === null) return;
		try {
			const { purged } = await api<{ purged: number }>("DELETE", "/trash");
			toast(`${count(purged)} deleted for good`);
			reload();
		} catch (err) {
			toast((err as Error).message, "error");
		}
	});

	await load();
	if (grid.childElementCount === 0) body.replaceChildren(emptyTrash());
	main.append(h("div", { class: "page-head" }, h("h1", {}, "Trash"), grid.childElementCount > 0 ? emptyButton : null), body);
};
