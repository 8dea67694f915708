/**
 * The timeline's date scrubber: a vertical rail of the months that have photos, newest at the
 * top, the year written at each year's first month. Clicking (or dragging along) it jumps to that
 * month; the month in view is marked as current.
 */
import { monthLabel, shortMonthLabel } from "./dates.ts";
import { h } from "./dom.ts";

export interface Scrubber {
	element: HTMLElement;
	/** Redraws the rail from the months now in the timeline. */
	refresh(): void;
	destroy(): void;
}

export function scrubber(timeline: HTMLElement): Scrubber {
	const list = h("ol");
	const element = h("nav", { class: "scrubber", "aria-label": "Timeline" }, list);
	let frame = 0;
	let pinned: { month: string; y: number } | null = null;

	const months = () => [...timeline.querySelectorAll<HTMLElement>(":scope > .month")];

	function jump(month: string, focus: boolean): void {
		const section = timeline.querySelector<HTMLElement>(`:scope > [data-month="${month}"]`);
		if (!section) return;
		section.scrollIntoView({ block: "start" });
		// The month jumped to is the current one, even where the page ends before it reaches the top.
		pinned = { month, y: scrollY };
		if (focus) section.querySelector<HTMLElement>(".tile a")?.focus({ preventScroll: true });
		markCurrent();
	}

	function refresh(): void {
		let year = "";
		list.replaceChildren(
			...months().map(section => {
				const month = section.dataset.month!;
				const first = month.slice(0, 4) !== year;
				year = month.slice(0, 4);
				const button = h("button", { type: "button", "data-month": month, "aria-label": monthLabel(month), "data-label": monthLabel(month) }, first ? h("span", { class: "year" }, year) : h("span", { class: "tick", "aria-hidden": "true" }, shortMonthLabel(month)));
				return h("li", { class: first ? "year-start" : "" }, button);
			})
		);
		element.hidden = list.children.length === 0;
		markCurrent();
	}

	/** The current month: the one jumped to until the page scrolls away, else the first whose end is below the top of the screen. */
	function markCurrent(): void {
		if (pinned && Math.abs(scrollY - pinned.y) > 8) pinned = null;
		const current = pinned?.month ?? months().find(section => section.getBoundingClientRect().bottom > 80)?.dataset.month;
		for (const button of list.querySelectorAll("button")) button.toggleAttribute("aria-current", button.dataset.month === current);
	}
	const onScroll = () => {
		cancelAnimationFrame(frame);
		frame = requestAnimationFrame(markCurrent);
	};
	addEventListener("scroll", onScroll, { passive: true });

	// Pressing on the rail jumps at once, and dragging along it scrubs through the months under
	// the pointer (captured: the rail keeps the pointer while it moves). A click without a pointer
	// (Enter or Space on a focused mark) jumps too, and moves the focus to that month's first photo.
	const monthAt = (x: number, y: number) => document.elementFromPoint(x, y)?.closest<HTMLElement>(".scrubber button")?.dataset.month;
	let dragged: string | undefined;
	element.addEventListener("pointerdown", event => {
		dragged = monthAt(event.clientX, event.clientY);
		if (!dragged) return;
		event.preventDefault();
		jump(dragged, false);
		try {
			element.setPointerCapture(event.pointerId);
		} catch {
			// A pointer the browser no longer tracks: no drag, the press was enough.
		}
	});
	element.addEventListener("pointermove", event => {
		const month = dragged && monthAt(event.clientX, event.clientY);
		if (month && month !== dragged) jump((dragged = month), false);
	});
	const stop = () => {
		if (dragged) jump(dragged, true);
		dragged = undefined;
	};
	element.addEventListener("pointerup", stop);
	element.addEventListener("pointercancel", () => (dragged = undefined));
	element.addEventListener("click", event => {
		const month = (event.target as Element).closest<HTMLElement>("button")?.dataset.month;
		if (month && event.detail === 0) jump(month, true);
	});

	return {
		element,
		refresh,
		destroy: () => removeEventListener("scroll", onScroll)
	};
}
