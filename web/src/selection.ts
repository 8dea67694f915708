/**
 * Selecting photos in a grid, as in Google Photos: the checkbox on a tile selects it, shift-click
 * selects the range from the last one clicked; once something is selected a click on any tile
 * selects it too instead of opening it. Keyboard: Space or X on a focused tile toggles it (with
 * Shift: the range), Escape clears the selection.
 */

export interface Selection {
	readonly ids: ReadonlySet<string>;
	has(id: string): boolean;
	set(id: string, selected: boolean): void;
	clear(): void;
	/** Drops selected ids that are no longer shown. */
	prune(): void;
	destroy(): void;
}

export interface SelectionOptions {
	/** The ids of the tiles in the order shown. */
	order(): string[];
	/** A plain click on a tile while nothing is selected. */
	open(id: string): void;
	onChange(ids: ReadonlySet<string>): void;
}

function tileOf(target: EventTarget | null): HTMLElement | null {
	return (target as Element | null)?.closest?.<HTMLElement>(".tile") ?? null;
}

export function selectable(root: HTMLElement, options: SelectionOptions): Selection {
	const ids = new Set<string>();
	let anchor: string | null = null;

	function show(id: string): void {
		const el = root.querySelector<HTMLElement>(`.tile[data-id="${CSS.escape(id)}"]`);
		if (!el) return;
		el.classList.toggle("selected", ids.has(id));
		el.querySelector<HTMLInputElement>("input.select")!.checked = ids.has(id);
	}

	function changed(): void {
		root.classList.toggle("selecting", ids.size > 0);
		options.onChange(ids);
	}

	function set(id: string, selected: boolean): void {
		if (selected) ids.add(id);
		else ids.delete(id);
		show(id);
	}

	/** A click or key on `id`: toggles it, or with Shift sets the range from the anchor to it. */
	function pick(id: string, range: boolean): void {
		const order = options.order();
		const selected = !ids.has(id);
		if (range && anchor && order.includes(anchor)) {
			const [from, to] = [order.indexOf(anchor), order.indexOf(id)].sort((a, b) => a - b);
			for (const each of order.slice(from, to + 1)) set(each, selected);
		} else set(id, selected);
		anchor = id;
		changed();
	}

	function clear(): void {
		for (const id of [...ids]) set(id, false);
		anchor = null;
		changed();
	}

	root.addEventListener("click", event => {
		const el = tileOf(event.target);
		if (!el) return;
		const id = el.dataset.id!;
		const onCheckbox = (event.target as Element).matches("input.select");
		if (!onCheckbox && (event.ctrlKey || event.metaKey || event.button !== 0)) return; // a new tab or window
		// A checkbox's own toggle is kept (preventing it would undo the checked state set here).
		if (!onCheckbox) event.preventDefault();
		if (onCheckbox || ids.size > 0 || event.shiftKey) pick(id, event.shiftKey);
		else options.open(id);
	});

	root.addEventListener("keydown", event => {
		const el = tileOf(event.target);
		if (!el || !(event.key === " " || event.key.toLowerCase() === "x") || event.ctrlKey || event.metaKey || event.altKey) return;
		event.preventDefault();
		pick(el.dataset.id!, event.shiftKey);
	});

	const onEscape = (event: KeyboardEvent) => {
		if (event.key !== "Escape" || ids.size === 0 || (event.target as Element).closest?.("dialog")) return;
		event.preventDefault();
		clear();
	};
	document.addEventListener("keydown", onEscape);

	return {
		ids,
		has: id => ids.has(id),
		set(id, selected) {
			set(id, selected);
			changed();
		},
		clear,
		prune() {
			const shown = new Set(options.order());
			const gone = [...ids].filter(id => !shown.has(id));
			for (const id of gone) ids.delete(id);
			if (gone.length) changed();
		},
		destroy: () => document.removeEventListener("keydown", onEscape)
	};
}
