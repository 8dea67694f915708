/**
 * The image grid shared by the gallery and search: pages through GET /api/images (infinite
 * scroll with a "Load more" button as the keyboard path), shows status badges and polls
 * images still processing until the pipeline finishes them.
 */
import type { Page } from "../../models/images/image-types.ts";
import type { PublicImage } from "../../models/images/public-image.ts";
import { api } from "./api.ts";
import { h, toast } from "./dom.ts";
import { imageAlt, lazyImage, releaseImages } from "./images.ts";

const POLL_MS = 1500;

function badge(image: PublicImage): HTMLElement | null {
	if (image.status === "ready") return null;
	const label = image.status === "processing" ? "Processing" : "Failed";
	return h("span", { class: `badge ${image.status}`, title: image.statusReason ?? label }, label);
}

function tile(image: PublicImage): HTMLElement {
	const img = h("img", { alt: imageAlt(image), width: 240, height: 240, decoding: "async" });
	lazyImage(img, image);
	return h(
		"li",
		{ class: "tile", "data-id": image.id, "data-status": image.status },
		h("a", { href: `/images/${image.id}` }, img, h("span", { class: "caption" }, image.name), badge(image), image.visibility === "public" ? h("span", { class: "badge public" }, "Public") : null)
	);
}

export interface Grid {
	element: HTMLElement;
	/** Stops polling and infinite scroll and frees the images. */
	destroy(): void;
}

/** A grid over `GET /api/images` with the given query string (without cursor). */
export function imageGrid(params: Record<string, string>): Grid {
	const list = h("ul", { class: "grid", "aria-label": "Images" });
	const status = h("p", { class: "muted", role: "status" });
	const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
	const element = h("section", { class: "results" }, status, list, more);
	const processing = new Map<string, HTMLElement>();
	let cursor: string | null = null;
	let loading = false;
	let destroyed = false;

	async function load(): Promise<void> {
		if (loading || destroyed) return;
		loading = true;
		try {
			const search = new URLSearchParams({ ...params, limit: "24" });
			if (cursor) search.set("cursor", cursor);
			const page = await api<Page<PublicImage>>("GET", `/images?${search}`);
			for (const image of page.items) {
				const el = tile(image);
				list.append(el);
				if (image.status === "processing") processing.set(image.id, el);
			}
			cursor = page.nextCursor;
			more.hidden = !cursor;
			status.textContent = page.total === 0 ? "No images yet." : `${page.total} image${page.total === 1 ? "" : "s"}`;
		} catch (err) {
			status.textContent = (err as Error).message;
		} finally {
			loading = false;
		}
	}

	/** Re-reads images still processing; a finished one gets a fresh tile (new thumbnail, tags). */
	async function poll(): Promise<void> {
		for (const [id, el] of processing) {
			try {
				const image = await api<PublicImage>("GET", `/images/${id}`);
				if (image.status === "processing") continue;
				processing.delete(id);
				el.replaceWith(tile(image));
				if (image.status === "failed") toast(`${image.name}: processing failed`, "error");
			} catch {
				processing.delete(id);
				el.remove();
			}
		}
	}
	const timer = setInterval(() => void poll(), POLL_MS);

	more.addEventListener("click", () => void load());
	const sentinel = new IntersectionObserver(entries => entries.some(entry => entry.isIntersecting) && cursor && void load(), { rootMargin: "400px" });
	sentinel.observe(more);
	void load();
	return {
		element,
		destroy() {
			destroyed = true;
			clearInterval(timer);
			sentinel.disconnect();
			releaseImages();
		}
	};
}
