/**
 * A share link opened in the browser (/s/<token>), signed in or not: the single image or the
 * album's grid, in the same viewer as the library. The page asks the same URL for JSON; a password
 * link answers 401 until the form below unlocks it, which sets a cookie for the link's path, so
 * the JSON and every <img> of the link work from then on without any token in the page.
 */
import type { GuestImage, GuestShare, OpenedShare } from "../../../models/shares/share-types.ts";
import { ApiError } from "../api.ts";
import { field, h, render, toast } from "../dom.ts";
import { imageAlt } from "../images.ts";
import { setPlaceholder } from "../placeholder.ts";
import type { Page } from "../router.ts";
import { openViewer, type ViewerSource } from "../viewer.ts";

/** Formats a browser shows: the original of anything else (TIFF) is never loaded for zoom. */
const SHOWABLE = new Set(["jpeg", "png", "webp", "gif", "avif"]);

async function getJson<T>(url: string, init: RequestInit = {}): Promise<T> {
	const res = await fetch(url, { ...init, headers: { accept: "application/json", ...init.headers } });
	const text = await res.text();
	const body = text ? JSON.parse(text) : null;
	if (!res.ok) throw new ApiError(res.status, body);
	return body as T;
}

/** The link's own addresses of an image: its own for an image link, under /images/<id>/ for an album's. */
function imageBase(link: string, share: GuestShare, image: GuestImage): string {
	return share.kind === "image" ? link : `${link}/images/${encodeURIComponent(image.id)}`;
}

function linkSource(link: string, share: GuestShare): ViewerSource {
	return {
		rendition: async image => `${imageBase(link, share, image)}/thumbnail?size=720`,
		// Without allowDownload the link serves renditions only: zooming stays on the 720 px one.
		original: image => (share.allowDownload && SHOWABLE.has(image.format) ? Promise.resolve(`${imageBase(link, share, image)}/content`) : null),
		detailsHref: () => null
	};
}

function passwordForm(link: string, onUnlocked: () => void): HTMLElement {
	const password = h("input", { type: "password", name: "password", required: true, autocomplete: "off", autofocus: true });
	const submit = h("button", { type: "submit" }, "Open");
	const form = h("form", { class: "card narrow", "aria-labelledby": "unlock-title" }, h("h1", { id: "unlock-title" }, "This link is protected"), field("Password", password), submit);
	form.addEventListener("submit", async event => {
		event.preventDefault();
		submit.disabled = true;
		try {
			await getJson(`${link}/unlock`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ password: password.value }) });
			onUnlocked();
		} catch (err) {
			toast((err as Error).message, "error");
			password.select();
		} finally {
			submit.disabled = false;
		}
	});
	return form;
}

/** Why a link cannot be opened, in words for its guest. */
function closedMessage(err: unknown): string {
	const status = (err as ApiError).status;
	if (status === 410) return "This link has expired.";
	if (status === 404) return "This link does not exist, or its owner revoked it.";
	return (err as Error).message;
}

function tileOf(link: string, share: GuestShare, image: GuestImage, open: () => void): HTMLLIElement {
	const img = h("img", { alt: imageAlt(image), width: 240, height: 240, decoding: "async", loading: "lazy", src: `${imageBase(link, share, image)}/thumbnail?size=240` });
	img.addEventListener("load", () => img.classList.add("loaded"), { once: true });
	const anchor = h("a", { href: "#", class: "thumb" }, img, h("span", { class: "caption" }, image.name));
	setPlaceholder(anchor, image);
	anchor.addEventListener("click", event => {
		event.preventDefault();
		open();
	});
	return h("li", { class: "tile", "data-id": image.id }, anchor);
}

export const sharePage: Page = async (main, { token }) => {
	const link = `/s/${encodeURIComponent(token)}`;

	async function load(): Promise<void> {
		let opened: OpenedShare;
		try {
			opened = await getJson<OpenedShare>(link);
		} catch (err) {
			if ((err as ApiError).status === 401) return render(main, passwordForm(link, () => void load()));
			return render(main, h("h1", {}, "Shared photos"), h("p", { role: "alert" }, closedMessage(err)));
		}
		const { share } = opened;
		const source = linkSource(link, share);
		const images: GuestImage[] = "image" in opened ? [opened.image] : opened.items;
		const view = (index: number) => openViewer(images, index, { categories: new Map(), source });
		const grid = h("ul", { class: "grid", "aria-label": "Shared photos" }, ...images.map((image, index) => tileOf(link, share, image, () => view(index))));
		let next = "items" in opened ? opened.nextCursor : null;
		const more = h("button", { type: "button", class: "secondary", hidden: !next }, "Load more");
		more.addEventListener("click", async () => {
			more.disabled = true;
			try {
				const page = await getJson<{ items: GuestImage[]; nextCursor: string | null }>(`${link}?cursor=${encodeURIComponent(next!)}`);
				for (const image of page.items) {
					const index = images.push(image) - 1;
					grid.append(tileOf(link, share, image, () => view(index)));
				}
				next = page.nextCursor;
				more.hidden = !next;
			} catch (err) {
				toast(closedMessage(err), "error");
			} finally {
				more.disabled = false;
			}
		});
		const single = "image" in opened ? opened.image : null;
		const download = single && share.allowDownload ? h("a", { class: "button secondary", href: `${link}/content`, download: single.filename }, "Download") : null;
		const expiry = share.expiresAt ? h("p", { class: "muted" }, `This link expires ${new Date(share.expiresAt).toLocaleString()}.`) : null;
		render(main, h("div", { class: "page-head" }, h("h1", {}, single ? single.name : "Shared album"), download), single?.description ? h("p", {}, single.description) : null, grid, more, expiry);
	}

	await load();
};
