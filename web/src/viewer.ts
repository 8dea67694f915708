/**
 * The full-screen viewer: one photo at a time over black, ←/→ (or the side buttons, or a swipe)
 * for the previous and next photo, Escape to close; zoom by double-click, pinch, wheel, the
 * +/− buttons or keys, and drag to pan a zoomed photo; an info panel (I) with the date it was
 * taken, the camera, the tags and the rest. The 720 px rendition shows first, over the blurred
 * placeholder; zooming in loads the original. Photos of the library come through the API; a share
 * link's guest page passes the link's own addresses (ViewerSource).
 */
import type { PublicImage } from "../../models/images/public-image.ts";
import type { GuestImage } from "../../models/shares/share-types.ts";
import { fetchBlob } from "./api.ts";
import { takenLabel, takenKey } from "./dates.ts";
import { formatBytes, formatDate, h, render } from "./dom.ts";
import { imageAlt, renditionUrl } from "./images.ts";
import { setPlaceholder } from "./placeholder.ts";
import { zoomable } from "./zoom.ts";

/** Formats a browser shows: the original of anything else (TIFF) is never loaded for zoom. */
const SHOWABLE = new Set(["jpeg", "png", "webp", "gif", "avif"]);

/** A photo the viewer shows: the library's, or a share link's (without its owner's details). */
export type ViewerImage = GuestImage & Partial<Pick<PublicImage, "category" | "visibility" | "ownerName">>;

/** Where the viewer gets a photo's bytes and whether it links to its details page. */
export interface ViewerSource {
	/** A URL of the 720 px rendition. */
	rendition(image: ViewerImage): Promise<string>;
	/** A URL of the original (zoomed in), or null when it is not to be had. */
	original(image: ViewerImage): Promise<string> | null;
	/** The photo's details page, or null for none. */
	detailsHref(image: ViewerImage): string | null;
}

/** The library's photos (PublicImage, whatever the viewer's type says): bytes through the API with the session's token. */
const API_SOURCE: ViewerSource = {
	rendition: image => renditionUrl(image as PublicImage, 720),
	original: image => fetchBlob(`/api/images/${image.id}/content`).then(blob => URL.createObjectURL(blob)),
	detailsHref: image => `/images/${image.id}`
};

export interface ViewerOptions {
	/** Category names by id. */
	categories: Map<string, string>;
	/** Called with the photo shown last, when the viewer closes. */
	onClose?(id: string): void;
	/** Where the bytes come from; the API by default. */
	source?: ViewerSource;
}

function infoRows(image: ViewerImage, categories: Map<string, string>): HTMLElement[] {
	const meta = image.metadata;
	const camera = [meta?.cameraMake, meta?.cameraModel].filter(Boolean).join(" ");
	const rows: [string, string | null | undefined][] = [
		[meta?.takenAt ? "Taken" : "Uploaded", meta?.takenAt ? takenLabel(takenKey(image)) : formatDate(image.createdAt)],
		["Camera", camera || null],
		["Dimensions", `${image.width} × ${image.height}`],
		["Size", `${formatBytes(image.size)} ${image.format.toUpperCase()}`],
		["Category", image.category ? (categories.get(image.category) ?? image.category) : null],
		["Visibility", image.visibility && (image.visibility === "public" ? "Public" : "Private")],
		["Owner", image.ownerName ?? null]
	];
	return rows.filter(([, value]) => value).flatMap(([key, value]) => [h("dt", {}, key), h("dd", {}, value)]);
}

export function openViewer(images: ViewerImage[], start: number, options: ViewerOptions): void {
	const source = options.source ?? API_SOURCE;
	let index = start;
	const urls = new Map<string, Promise<string>>();
	const originals = new Map<string, Promise<string>>();
	const picture = h("img", { class: "viewer-image", alt: "", draggable: "false" });
	const stage = h("div", { class: "stage" }, picture);
	const title = h("h2", { class: "viewer-title" });
	const level = h("output", { class: "zoom-level", "aria-live": "off" }, "100 %");
	const details = h("a", { class: "button secondary" }, "Details & editing");
	const info = h("aside", { class: "info", "aria-label": "Info", hidden: true });
	const button = (label: string, text: string, action: () => void, extra: Record<string, unknown> = {}) => {
		const el = h("button", { type: "button", "aria-label": label, title: label, ...extra }, text);
		el.addEventListener("click", action);
		return el;
	};
	const infoButton = button("Info", "i", () => toggleInfo(), { "aria-expanded": "false", "aria-keyshortcuts": "I", class: "info-button" });
	const prev = button("Previous photo", "‹", () => go(-1), { class: "nav prev", "aria-keyshortcuts": "ArrowLeft" });
	const next = button("Next photo", "›", () => go(1), { class: "nav next", "aria-keyshortcuts": "ArrowRight" });
	const dialog = h(
		"dialog",
		{ class: "viewer", "aria-label": "Photo viewer" },
		h(
			"div",
			{ class: "viewer-bar" },
			button("Close", "✕", () => dialog.close(), { "aria-keyshortcuts": "Escape" }),
			title,
			h("div", { class: "viewer-tools" }, button("Zoom out", "−", () => zoom.by(1 / 1.5), { "aria-keyshortcuts": "-" }), level, button("Zoom in", "+", () => zoom.by(1.5), { "aria-keyshortcuts": "+" }), infoButton)
		),
		h("div", { class: "viewer-body" }, stage, prev, next, info)
	);
	const zoom = zoomable(stage, picture, {
		swipe: direction => go(direction),
		change(scale) {
			level.textContent = `${Math.round(scale * 100)} %`;
			dialog.dataset.zoom = scale.toFixed(2);
			if (scale > 1) void sharpen();
		}
	});

	const rendition = (image: ViewerImage) => {
		if (!urls.has(image.id)) urls.set(image.id, source.rendition(image));
		return urls.get(image.id)!;
	};

	/** Zoomed in: the original's pixels, once, when it is bigger than the rendition and a browser can show it. */
	async function sharpen(): Promise<void> {
		const image = images[index];
		if (!SHOWABLE.has(image.format) || Math.min(image.width, image.height) <= 720 || originals.has(image.id)) return;
		const url = source.original(image);
		if (!url) return;
		originals.set(image.id, url);
		const src = await url.catch(() => null);
		if (src && images[index] === image) picture.src = src;
	}

	async function show(): Promise<void> {
		const image = images[index];
		zoom.reset();
		title.textContent = image.name;
		picture.alt = imageAlt(image);
		picture.removeAttribute("src");
		picture.classList.remove("loaded");
		setPlaceholder(picture, image);
		zoom.fit(image.width, image.height);
		const href = source.detailsHref(image);
		details.hidden = href === null;
		if (href) details.href = href;
		prev.hidden = index === 0;
		next.hidden = index === images.length - 1;
		dialog.dataset.id = image.id;
		renderInfo();
		try {
			const src = await rendition(image);
			if (images[index] !== image) return;
			picture.addEventListener("load", () => picture.classList.add("loaded"), { once: true });
			picture.src = src;
		} catch (err) {
			picture.alt = `${image.name}: ${(err as Error).message}`;
		}
		// The neighbours load in the background, so ← and → are instant.
		for (const near of [images[index + 1], images[index - 1]]) if (near) void rendition(near).catch(() => undefined);
	}

	function renderInfo(): void {
		const image = images[index];
		render(
			info,
			h("h3", {}, image.name),
			image.description ? h("p", {}, image.description) : null,
			h("dl", { class: "meta" }, ...infoRows(image, options.categories)),
			h("h3", {}, "Tags"),
			image.tags.length ? h("ul", { class: "tags", "aria-label": "Tags" }, ...image.tags.map(tag => h("li", { class: `tag ${tag.source}` }, h("a", { href: `/?tag=${encodeURIComponent(tag.label)}` }, tag.label)))) : h("p", { class: "muted" }, "No tags."),
			details.hidden ? null : h("p", {}, details)
		);
	}

	function toggleInfo(): void {
		info.hidden = !info.hidden;
		infoButton.setAttribute("aria-expanded", String(!info.hidden));
		dialog.classList.toggle("with-info", !info.hidden);
		zoom.fit(images[index].width, images[index].height);
	}

	function go(step: 1 | -1): void {
		const target = index + step;
		if (target < 0 || target >= images.length) return;
		index = target;
		void show();
	}

	dialog.addEventListener("keydown", event => {
		if ((event.target as Element).closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
		const keys: Record<string, () => void> = {
			ArrowLeft: () => go(-1),
			ArrowRight: () => go(1),
			"+": () => zoom.by(1.5),
			"=": () => zoom.by(1.5),
			"-": () => zoom.by(1 / 1.5),
			"0": () => zoom.reset(),
			i: toggleInfo,
			I: toggleInfo
		};
		const action = keys[event.key];
		if (!action) return;
		event.preventDefault();
		action();
	});
	// A link inside (a tag, the details page) leaves the viewer for that page.
	info.addEventListener("click", event => {
		if ((event.target as Element).closest("a")) dialog.close();
	});
	const onResize = () => zoom.fit(images[index].width, images[index].height);
	addEventListener("resize", onResize);
	dialog.addEventListener("close", () => {
		removeEventListener("resize", onResize);
		for (const url of originals.values()) void url.then(URL.revokeObjectURL, () => undefined);
		dialog.remove();
		options.onClose?.(images[index].id);
	});

	document.body.append(dialog);
	dialog.showModal();
	void show();
}
