/**
 * Albums: yours and those shared with you, each with its cover, counts and your role, and a form
 * to start a new one. An album's own page is pages/album.ts.
 */
import type { AlbumSummary } from "../../../models/albums/album.ts";
import { api, fetchBlob } from "../api.ts";
import { field, h, toast } from "../dom.ts";
import { navigate, type Page } from "../router.ts";

const ROLE_LABELS: Record<AlbumSummary["role"], string> = { owner: "Yours", contributor: "Contributor", viewer: "Viewer" };

const photos = (n: number) => `${n} photo${n === 1 ? "" : "s"}`;

function createForm(): HTMLElement {
	const name = h("input", { name: "name", required: true, maxlength: 200, placeholder: "Summer 2026" });
	const description = h("textarea", { name: "description", rows: 2, maxlength: 5000 });
	const submit = h("button", { type: "submit" }, "Create album");
	const form = h("form", { class: "card", "aria-labelledby": "new-album" }, h("h2", { id: "new-album" }, "New album"), field("Name", name), field("Description", description), submit);
	form.addEventListener("submit", async event => {
		event.preventDefault();
		submit.disabled = true;
		try {
			const { album } = await api<{ album: AlbumSummary }>("POST", "/albums", { name: name.value, description: description.value || undefined });
			navigate(`/albums/${album.id}`);
		} catch (err) {
			toast((err as Error).message, "error");
			submit.disabled = false;
		}
	});
	return form;
}

/** One album as a card: the cover (its thumbnail, fetched with the session), name, counts and role. */
function albumCard(album: AlbumSummary, urls: string[]): HTMLElement {
	const cover = h("img", { alt: "", width: 240, height: 240, decoding: "async" });
	if (album.cover) {
		fetchBlob(`/api/images/${album.cover}/thumbnail?size=240`).then(
			blob => {
				const url = URL.createObjectURL(blob);
				urls.push(url);
				cover.addEventListener("load", () => cover.classList.add("loaded"), { once: true });
				cover.src = url;
			},
			() => cover.remove()
		);
	}
	const shared = album.role === "owner" ? (album.memberCount ? ` · shared with ${album.memberCount}` : "") : ` · by ${album.ownerName}`;
	return h(
		"li",
		{ class: "tile album", "data-id": album.id },
		h("a", { href: `/albums/${album.id}`, class: "thumb" }, album.cover ? cover : null, h("span", { class: "caption" }, album.name)),
		h("small", {}, `${photos(album.imageCount)}${shared} · ${ROLE_LABELS[album.role]}`)
	);
}

export const albumsPage: Page = async main => {
	const urls: string[] = [];
	const mine = h("ul", { class: "grid", "aria-label": "My albums" });
	const shared = h("ul", { class: "grid", "aria-label": "Shared with me" });
	main.append(h("h1", {}, "Albums"), createForm(), h("h2", {}, "My albums"), mine, h("h2", {}, "Shared with me"), shared);
	try {
		const { items } = await api<{ items: AlbumSummary[] }>("GET", "/albums");
		const own = items.filter(album => album.role === "owner");
		const others = items.filter(album => album.role !== "owner");
		if (own.length === 0) mine.replaceWith(h("p", { class: "muted" }, "No albums yet: create one above, or select photos in your library and add them to an album."));
		else mine.append(...own.map(album => albumCard(album, urls)));
		if (others.length === 0) shared.replaceWith(h("p", { class: "muted" }, "Nobody has shared an album with you yet."));
		else shared.append(...others.map(album => albumCard(album, urls)));
	} catch (err) {
		main.append(h("p", { class: "error" }, (err as Error).message));
	}
	return () => urls.forEach(url => URL.revokeObjectURL(url));
};
