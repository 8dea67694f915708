/** A path the app does not know: says so, with the way back (the header's navigation stays). */
import { currentUser } from "../api.ts";
import { h } from "../dom.ts";
import type { Page } from "../router.ts";

export const notFoundPage: Page = main => {
	main.append(
		h("h1", {}, "Page not found"),
		h("p", {}, `There is nothing at ${location.pathname}.`),
		h("p", { class: "actions" }, currentUser() ? h("a", { href: "/", class: "button" }, "Go to your photos") : h("a", { href: "/signin", class: "button" }, "Sign in"))
	);
};
