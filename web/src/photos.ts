/**
 * The photos of a query, as a timeline or a plain grid.
 *
 * Timeline (sorted by date): photos grouped by month and day of when they were taken
 * (metadata.takenAt, else the upload time), newest first, with a scrubber: a month/year rail that
 * jumps to that part of the timeline. The API orders by upload time only, so the timeline reads
 * the whole list (100 a request, in the background) and places each photo by its own date.
 *
 * Grid (most viewed, name): the API's order, a page at a time (infinite scroll, with a "Load
 * more" button as the keyboard path).
 *
 * Either way photos still processing are polled until the pipeline finishes them.
 */
import type { SearchPage } from "../../models/images/image-types.ts";
import type { PublicImage } from "../../models/images/public-image.ts";
import { api } from "./api.ts";
import { dayLabel, dayOf, monthLabel, monthOf, takenKey } from "./dates.ts";
import { h, toast } from "./dom.ts";
import { releaseImages } from "./images.ts";
import { scrubber, type Scrubber } from "./scrubber.ts";
import { tile } from "./tile.ts";

const POLL_MS = 1500;

export interface PhotosOptions {
	/** The API's filters (q, tag, category, owner, visibility, sort). */
	params: Record<string, string>;
	/** Grouped by date with a scrubber, or in the API's order. */
	timeline: boolean;
	/** What to show when the query finds nothing. */
	empty: () => HTMLElement;
	isSelected(id: string): boolean;
	/** Called when photos come or go (the selection drops what went). */
	onChange(): void;
}

export interface Photos {
	element: HTMLElement;
	/** The scrubber rail (timeline only). */
	rail: HTMLElement | null;
	/** The photos in the order shown. */
	images(): PublicImage[];
	get(id: string): PublicImage | undefined;
	tileOf(id: string): HTMLLIElement | undefined;
	/** Shows a changed photo (a new tile, moved if its date changed). */
	update(image: PublicImage): void;
	remove(id: string): void;
	destroy(): void;
}

export function photoView(options: PhotosOptions): Photos {
	const status = h("p", { class: "muted count", role: "status" });
	const body = h("div", { class: options.timeline ? "timeline" : "" });
	const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
	const element = h("section", { class: "results", "aria-label": "Photos" }, status, body, more);
	const entries = new Map<string, { image: PublicImage; tile: HTMLLIElement }>();
	const flat = h("ul", { class: "grid", "aria-label": "Photos" });
	if (!options.timeline) body.append(flat);
	const rail: Scrubber | null = options.timeline ? scrubber(body) : null;
	let total = 0;
	/** The server stopped counting at `total`: more photos match (GET /images, totalIsEstimate). */
	let totalIsEstimate = false;
	let cursor: string | null = null;
	let loading = false;
	let destroyed = false;

	let emptyState: HTMLElement | null = null;
	function showCount(): void {
		const shown = entries.size;
		status.hidden = total === 0 && shown === 0;
		if (status.hidden) {
			emptyState ??= body.appendChild(options.empty());
			return;
		}
		emptyState?.remove();
		emptyState = null;
		const more = totalIsEstimate ? "+" : "";
		const noun = (n: number, suffix = "") => `${n.toLocaleString()}${suffix} photo${n === 1 && !suffix ? "" : "s"}`;
		status.textContent = options.timeline && cursor ? `Loading… ${noun(shown)} of ${total.toLocaleString()}${more}` : noun(Math.max(total, shown), more);
	}

	function monthSection(month: string): HTMLElement {
		let section = body.querySelector<HTMLElement>(`:scope > [data-month="${month}"]`);
		if (section) return section;
		section = h("section", { class: "month", "data-month": month, "aria-labelledby": `month-${month}` }, h("h2", { id: `month-${month}` }, monthLabel(month)));
		const next = [...body.querySelectorAll<HTMLElement>(":scope > .month")].find(el => el.dataset.month! < month);
		body.insertBefore(section, next ?? null);
		return section;
	}

	function dayList(day: string): HTMLElement {
		const month = monthSection(monthOf(day));
		const existing = month.querySelector<HTMLElement>(`[data-day="${day}"] > ul`);
		if (existing) return existing;
		const label = dayLabel(day);
		const list = h("ul", { class: "grid", "aria-label": label });
		const section = h("section", { class: "day", "data-day": day }, h("h3", {}, label), list);
		const next = [...month.querySelectorAll<HTMLElement>(".day")].find(el => el.dataset.day! < day);
		month.insertBefore(section, next ?? null);
		return list;
	}

	/** Puts a tile where its date says (timeline), or at the end (grid). */
	function place(image: PublicImage, el: HTMLLIElement): void {
		if (!options.timeline) return void flat.append(el);
		const key = takenKey(image);
		el.dataset.key = key;
		const list = dayList(dayOf(key));
		const next = [...list.children].find(li => (li as HTMLElement).dataset.key! < key);
		list.insertBefore(el, next ?? null);
	}

	/** Drops a tile, and the day and month around it when they become empty. */
	function unplace(el: HTMLElement): void {
		const day = el.closest(".day");
		const month = el.closest(".month");
		el.remove();
		if (day && !day.querySelector(".tile")) day.remove();
		if (month && !month.querySelector(".tile")) month.remove();
	}

	function add(image: PublicImage): void {
		if (entries.has(image.id)) return;
		const el = tile(image, options.isSelected(image.id));
		entries.set(image.id, { image, tile: el });
		place(image, el);
	}

	async function load(): Promise<void> {
		if (loading || destroyed) return;
		loading = true;
		try {
			do {
				const search = new URLSearchParams({ ...options.params, limit: options.timeline ? "100" : "24" });
				if (cursor) search.set("cursor", cursor);
				const page = await api<SearchPage<PublicImage>>("GET", `/images?${search}`);
				if (destroyed) return;
				page.items.forEach(add);
				total = page.total;
				totalIsEstimate = page.totalIsEstimate;
				cursor = page.nextCursor;
				more.hidden = options.timeline || !cursor;
				showCount();
				rail?.refresh();
				options.onChange();
			} while (options.timeline && cursor && !destroyed);
		} catch (err) {
			status.textContent = (err as Error).message;
		} finally {
			loading = false;
		}
	}

	function update(image: PublicImage): void {
		const entry = entries.get(image.id);
		if (!entry) return;
		const el = tile(image, options.isSelected(image.id));
		if (options.timeline && takenKey(image) !== entry.tile.dataset.key) {
			unplace(entry.tile);
			place(image, el);
			rail?.refresh();
		} else {
			el.dataset.key = entry.tile.dataset.key;
			entry.tile.replaceWith(el);
		}
		entries.set(image.id, { image, tile: el });
	}

	function remove(id: string): void {
		const entry = entries.get(id);
		if (!entry) return;
		entries.delete(id);
		unplace(entry.tile);
		total = Math.max(0, total - 1);
		showCount();
		rail?.refresh();
		options.onChange();
	}

	/** Re-reads photos still processing; a finished one gets a fresh tile (thumbnail, tags, date). */
	async function poll(): Promise<void> {
		for (const { image } of [...entries.values()].filter(entry => entry.image.status === "processing")) {
			try {
				const next = await api<PublicImage>("GET", `/images/${image.id}`);
				if (destroyed || next.status === "processing") continue;
				update(next);
				if (next.status === "failed") toast(`${next.name}: processing failed`, "error");
			} catch {
				remove(image.id);
			}
		}
	}
	const timer = setInterval(() => void poll(), POLL_MS);

	more.addEventListener("click", () => void load());
	const sentinel = new IntersectionObserver(found => found.some(entry => entry.isIntersecting) && cursor && void load(), { rootMargin: "400px" });
	if (!options.timeline) sentinel.observe(more);
	void load();

	return {
		element,
		rail: rail?.element ?? null,
		images: () => [...body.querySelectorAll<HTMLElement>(".tile")].map(el => entries.get(el.dataset.id!)!.image),
		get: id => entries.get(id)?.image,
		tileOf: id => entries.get(id)?.tile,
		update,
		remove,
		destroy() {
			destroyed = true;
			clearInterval(timer);
			sentinel.disconnect();
			rail?.destroy();
			releaseImages();
		}
	};
}
