/** History-API routing: client paths map to page functions; the gateway answers them all with index.html. */

/** A page renders into `main` and may return a cleanup run when the user leaves it. */
export type Page = (main: HTMLElement, params: Record<string, string>, search: URLSearchParams) => void | (() => void) | Promise<void | (() => void)>;

interface Route {
	pattern: RegExp;
	keys: string[];
	page: Page;
}

const routes: Route[] = [];
let cleanup: (() => void) | void = undefined;
/** Counts navigations, so that a page finishing after the user left it is cleaned up at once. */
let navigation = 0;
let guard: (path: string) => string | null = () => null;

/** Adds a route; the first that matches wins. `:name` is a parameter; the path is otherwise a regular expression. */
export function route(path: string, page: Page): void {
	const keys: string[] = [];
	const pattern = new RegExp(`^${path.replace(/:(\w+)/g, (_, key: string) => (keys.push(key), "([^/]+)"))}$`);
	routes.push({ pattern, keys, page });
}

/** Decides whether a path may be shown; returns where to go instead, or null. */
export function setGuard(next: (path: string) => string | null): void {
	guard = next;
}

export function navigate(to: string, replace = false): void {
	if (replace) history.replaceState(null, "", to);
	else history.pushState(null, "", to);
	void show();
}

export async function show(): Promise<void> {
	const redirect = guard(location.pathname);
	if (redirect && redirect !== location.pathname) {
		history.replaceState(null, "", redirect);
	}
	cleanup?.();
	cleanup = undefined;
	// Each page gets its own container: a page still loading when the user moves on renders into
	// a detached element instead of over the next page.
	const view = document.createElement("div");
	document.getElementById("main")!.replaceChildren(view);
	const shown = ++navigation;
	const path = location.pathname;
	for (const { pattern, keys, page } of routes) {
		const match = pattern.exec(path);
		if (!match) continue;
		const params = Object.fromEntries(keys.map((key, i) => [key, decodeURIComponent(match[i + 1])]));
		const done = await page(view, params, new URLSearchParams(location.search));
		if (shown !== navigation) return done?.();
		cleanup = done;
		document.dispatchEvent(new CustomEvent("page", { detail: path }));
		return;
	}
}

/** Same-origin links navigate without a reload. */
export function interceptLinks(): void {
	document.addEventListener("click", event => {
		const a = (event.target as Element).closest?.("a");
		if (!a || event.defaultPrevented || a.target || a.hasAttribute("download") || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
		const url = new URL(a.href, location.href);
		if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/p/")) return;
		event.preventDefault();
		navigate(url.pathname + url.search);
	});
	window.addEventListener("popstate", () => void show());
}
