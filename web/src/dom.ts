/** A tiny DOM builder: enough to write pages as plain functions without a framework. */

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, unknown>;

/**
 * Creates an element. `on<event>` keys add listeners; boolean values toggle attributes;
 * everything else is set as an attribute (or as a property for `value`/`checked`).
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
	const el = document.createElement(tag);
	for (const [key, value] of Object.entries(attrs)) {
		if (value === undefined || value === null || value === false) continue;
		if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value as EventListener);
		else if (key === "value" || key === "checked") (el as unknown as Record<string, unknown>)[key] = value;
		else el.setAttribute(key, value === true ? "" : String(value));
	}
	append(el, ...children);
	return el;
}

export function append(parent: Node, ...children: Child[]): void {
	for (const child of children) {
		if (child === null || child === undefined || child === false) continue;
		parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
	}
}

/** Replaces an element's content. */
export function render(parent: Element, ...children: Child[]): void {
	parent.replaceChildren();
	append(parent, ...children);
}

/** A labelled form field: the label wraps nothing, it points at the control by id. */
let fieldCounter = 0;
export function field(label: string, control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, hint?: string): HTMLElement {
	control.id ||= `f${++fieldCounter}`;
	const hintEl = hint ? h("small", { id: `${control.id}-hint`, class: "hint" }, hint) : null;
	if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
	return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

export function option(value: string, label: string, selected = false): HTMLOptionElement {
	const el = h("option", { value }, label);
	el.selected = selected;
	return el;
}

/** A button in a toast that undoes what it announces ("Moved to trash" — Undo). */
export interface ToastAction {
	label: string;
	run(): void;
}

let toastTimer: number | undefined;
/**
 * A short message announced to screen readers through the polite live region, with an optional
 * action, which keeps the message up longer: time enough to reach the button.
 */
export function toast(message: string, kind: "info" | "error" = "info", action?: ToastAction): void {
	const el = document.getElementById("toast")!;
	const hide = () => {
		el.className = "";
		// Only a shown toast's button can be used (the CSS lets pointers through to it): it goes at once.
		el.querySelector("button")?.remove();
	};
	el.replaceChildren(message);
	if (action) el.append(" ", h("button", { type: "button", class: "link", onclick: () => (hide(), action.run()) }, action.label));
	el.className = `show ${kind}`;
	clearTimeout(toastTimer);
	toastTimer = window.setTimeout(hide, action ? 10_000 : 4000);
}

export function formatBytes(bytes: number): string {
	if (bytes < 1024) return `${bytes} B`;
	const units = ["KiB", "MiB", "GiB", "TiB"];
	let value = bytes / 1024;
	let unit = 0;
	while (value >= 1024 && unit < units.length - 1) {
		value /= 1024;
		unit++;
	}
	return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatDate(iso: string): string {
	return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** "Copy link": selects the link's field and copies `url`, or says how to when the clipboard is refused. */
export function copyLinkButton(input: HTMLInputElement, url: string): HTMLButtonElement {
	const copy = h("button", { type: "button", class: "secondary" }, "Copy link");
	copy.addEventListener("click", async () => {
		input.select();
		try {
			await navigator.clipboard.writeText(url);
			toast("Link copied");
		} catch {
			toast("Press Ctrl+C to copy the selected link");
		}
	});
	return copy;
}
