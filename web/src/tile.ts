/**
 * One photo in a grid: its thumbnail over the blurred placeholder, the name, status badges and a
 * selection checkbox. The link opens the viewer (or, with a modifier key, the details page).
 */
import type { PublicImage } from "../../models/images/public-image.ts";
import { h } from "./dom.ts";
import { imageAlt, lazyImage } from "./images.ts";
import { setPlaceholder } from "./placeholder.ts";

function badges(image: PublicImage): (HTMLElement | null)[] {
	const status = image.status === "ready" ? null : h("span", { class: `badge ${image.status}`, title: image.statusReason ?? image.status }, image.status === "processing" ? "Processing" : "Failed");
	return [status, image.visibility === "public" ? h("span", { class: "badge public" }, "Public") : null];
}

export function tile(image: PublicImage, selected: boolean): HTMLLIElement {
	const img = h("img", { alt: imageAlt(image), width: 240, height: 240, decoding: "async" });
	lazyImage(img, image);
	const link = h("a", { href: `/images/${image.id}`, class: "thumb" }, img, h("span", { class: "caption" }, image.name), ...badges(image));
	setPlaceholder(link, image);
	const check = h("input", { type: "checkbox", class: "select", "aria-label": `Select ${image.name}`, checked: selected, tabindex: -1 });
	return h("li", { class: selected ? "tile selected" : "tile", "data-id": image.id, "data-status": image.status }, link, check);
}
