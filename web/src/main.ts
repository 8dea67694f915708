/** Entry point: the header, the routes and the sign-in guard. */
import type { PublicUser } from "../../models/users/user.ts";
import { currentUser, onSessionChange, setSession } from "./api.ts";
import { h, render, toast } from "./dom.ts";
import { adminPage } from "./pages/admin.ts";
import { albumPage } from "./pages/album.ts";
import { albumsPage } from "./pages/albums.ts";
import { detailPage } from "./pages/detail.ts";
import { importPage, importsPage } from "./pages/imports.ts";
import { jobsPage } from "./pages/jobs.ts";
import { libraryPage } from "./pages/library.ts";
import { notFoundPage } from "./pages/not-found.ts";
import { sharePage } from "./pages/share.ts";
import { signInPage } from "./pages/signin.ts";
import { trashPage } from "./pages/trash.ts";
import { uploadPage } from "./pages/upload.ts";
import { interceptLinks, navigate, route, setGuard, show } from "./router.ts";

const PUBLIC_PATHS = new Set(["/signin", "/register"]);
const ADMIN_PATHS = new Set(["/admin", "/jobs"]);

function navLink(href: string, label: string): HTMLElement {
	const current = location.pathname === href || (href !== "/" && location.pathname.startsWith(href));
	return h("li", {}, h("a", { href, "aria-current": current ? "page" : undefined }, label));
}

function renderHeader(): void {
	const user: PublicUser | null = currentUser();
	const header = document.getElementById("top")!;
	render(
		header,
		h(
			"nav",
			{ "aria-label": "Main" },
			h("a", { href: "/", class: "brand" }, "imgmesh"),
			user
				? h(
						"ul",
						{},
						navLink("/", "Photos"),
						navLink("/albums", "Albums"),
						navLink("/upload", "Upload"),
						navLink("/imports", "Imports"),
						navLink("/trash", "Trash"),
						user.role === "admin" ? navLink("/admin", "Admin") : null,
						user.role === "admin" ? navLink("/jobs", "Jobs") : null,
						h("li", { class: "me" }, h("span", {}, user.username), h("button", { type: "button", class: "link", onclick: () => setSession(null) }, "Sign out"))
					)
				: h("ul", {}, navLink("/signin", "Sign in"), navLink("/register", "Register"))
		)
	);
}

route("/", libraryPage);
route("/signin", signInPage("signin"));
route("/register", signInPage("register"));
route("/upload", uploadPage);
route("/images/:id", detailPage);
route("/albums", albumsPage);
route("/albums/:id", albumPage);
route("/imports", importsPage);
route("/imports/:id", importPage);
route("/trash", trashPage);
route("/admin", adminPage);
route("/jobs", jobsPage);
route("/s/:token", sharePage);
// Last: any other path.
route("/.*", notFoundPage);

setGuard(path => {
	// A share link opens for anyone, signed in or not.
	if (path.startsWith("/s/")) return null;
	const user = currentUser();
	if (!user && !PUBLIC_PATHS.has(path)) return `/signin`;
	if (user && PUBLIC_PATHS.has(path)) return "/";
	if (ADMIN_PATHS.has(path) && user?.role !== "admin") return "/";
	return null;
});

onSessionChange(reason => {
	if (reason) toast(reason, "error");
	navigate(currentUser() ? "/" : "/signin", true);
});
document.addEventListener("page", () => {
	renderHeader();
	document.getElementById("main")!.focus({ preventScroll: true });
});

interceptLinks();
void show();
