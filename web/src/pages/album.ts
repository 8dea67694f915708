/**
 * One album: its photos with the library's viewer (found by the search term `album:<id>`), and
 * what your role allows: the owner renames or deletes it, manages its members and its share
 * links; owners and contributors take selected photos out of it; a member may leave it.
 */
import type { AlbumMember, AlbumSummary } from "../../../models/albums/album.ts";
import { api, ApiError, currentUser } from "../api.ts";
import { append, field, h, option, toast } from "../dom.ts";
import { photoView } from "../photos.ts";
import { navigate, type Page } from "../router.ts";
import { selectable } from "../selection.ts";
import { shareLinks } from "../share-links.ts";
import { openViewer } from "../viewer.ts";

function editForm(album: AlbumSummary, onSaved: (album: AlbumSummary) => void): HTMLElement {
	const name = h("input", { name: "name", required: true, maxlength: 200, value: album.name });
	const description = h("textarea", { name: "description", rows: 2, maxlength: 5000 });
	description.value = album.description;
	const remove = h("button", { type: "button", class: "danger" }, "Delete album");
	const form = h("form", { class: "card" }, h("h2", {}, "Album"), field("Name", name), field("Description", description), h("div", { class: "actions" }, h("button", { type: "submit" }, "Save"), remove));
	form.addEventListener("submit", async event => {
		event.preventDefault();
		try {
			onSaved((await api<{ album: AlbumSummary }>("PATCH", `/albums/${album.id}`, { name: name.value, description: description.value })).album);
			toast("Album saved");
		} catch (err) {
			toast((err as Error).message, "error");
		}
	});
	remove.addEventListener("click", async () => {
		if (!confirm(`Delete the album "${album.name}"? Its photos stay in your library.`)) return;
		await api("DELETE", `/albums/${album.id}`).then(
			() => navigate("/albums"),
			err => toast((err as Error).message, "error")
		);
	});
	return form;
}

function membersCard(albumId: string, initial: AlbumMember[]): HTMLElement {
	const list = h("ul", { class: "plain members" });
	const show = (members: AlbumMember[]) =>
		list.replaceChildren(
			...(members.length === 0
				? [h("li", { class: "muted" }, "Nobody else sees this album yet.")]
				: members.map(member => {
						const remove = h("button", { type: "button", class: "link" }, "Remove");
						remove.addEventListener("click", async () => {
							await api("DELETE", `/albums/${albumId}/members/${member.userId}`).catch(err => toast((err as Error).message, "error"));
							await reload();
						});
						return h("li", { "data-username": member.username }, h("strong", {}, member.username), ` · ${member.role} `, remove);
					}))
		);
	const reload = async () => show((await api<{ members: AlbumMember[] }>("GET", `/albums/${albumId}`)).members ?? []);
	const username = h("input", { name: "username", required: true, autocomplete: "off" });
	const role = h("select", { name: "role" }, option("viewer", "Viewer: sees the photos"), option("contributor", "Contributor: also adds their own"));
	const form = h("form", { class: "inline" }, field("Username", username), field("Role", role), h("button", { type: "submit" }, "Share"));
	form.addEventListener("submit", async event => {
		event.preventDefault();
		try {
			await api("POST", `/albums/${albumId}/members`, { username: username.value.trim(), role: role.value });
			username.value = "";
			await reload();
		} catch (err) {
			toast(err instanceof ApiError && err.status === 404 ? `No user named ${username.value.trim()}` : (err as Error).message, "error");
		}
	});
	show(initial);
	return h("section", { class: "card", "aria-labelledby": "members-title" }, h("h2", { id: "members-title" }, "Members"), list, form);
}

export const albumPage: Page = async (main, { id }) => {
	const me = currentUser();
	if (!me) return;
	let found: { album: AlbumSummary; members?: AlbumMember[] };
	try {
		found = await api("GET", `/albums/${id}`);
	} catch (err) {
		main.append(h("h1", {}, "Album not found"), h("p", {}, (err as Error).message), h("a", { href: "/albums" }, "Back to the albums"));
		return;
	}
	const { album } = found;
	const heading = h("h1", {}, album.name);
	const about = h("p", { class: "muted" }, album.role === "owner" ? album.description : `${album.description ? `${album.description} · ` : ""}Shared by ${album.ownerName} · you are a ${album.role}`);
	const canRemove = album.role !== "viewer";

	const view = photoView({
		params: { q: `album:${album.id}` },
		timeline: true,
		empty: () => h("div", { class: "empty card" }, h("h2", {}, "No photos in this album yet"), h("p", {}, canRemove ? "Select photos in your library and choose “Add to album…”." : "The owner has not added any yet.")),
		isSelected: imageId => selection.has(imageId),
		onChange: () => selection?.prune()
	});
	const removeButton = h("button", { type: "button", class: "secondary", hidden: true }, "Remove from album");
	const selection = selectable(view.element, {
		order: () => view.images().map(image => image.id),
		open(imageId) {
			const images = view.images();
			openViewer(images, images.findIndex(image => image.id === imageId), { categories: new Map() });
		},
		onChange: () => (removeButton.hidden = !canRemove || selection.ids.size === 0)
	});
	removeButton.addEventListener("click", async () => {
		const ids = [...selection.ids];
		try {
			const { removed } = await api<{ removed: number }>("DELETE", `/albums/${album.id}/images`, { ids });
			for (const imageId of ids) view.remove(imageId);
			selection.clear();
			toast(`${removed} photo${removed === 1 ? "" : "s"} removed from the album`);
		} catch (err) {
			toast((err as Error).message, "error");
		}
	});
	const leave = h("button", { type: "button", class: "secondary" }, "Leave album");
	leave.addEventListener("click", async () => {
		await api("DELETE", `/albums/${album.id}/members/${me.id}`).then(
			() => navigate("/albums"),
			err => toast((err as Error).message, "error")
		);
	});

	append(
		main,
		h("div", { class: "page-head" }, heading, album.role === "owner" ? null : leave, removeButton),
		about,
		album.role === "owner" ? editForm(album, saved => (heading.textContent = saved.name)) : null,
		album.role === "owner" ? membersCard(album.id, found.members ?? []) : null,
		album.role === "owner" ? h("section", { class: "card", "aria-label": "Share" }, h("h2", {}, "Share"), shareLinks({ albumId: album.id })) : null,
		view.element
	);
	return () => {
		selection.destroy();
		view.destroy();
	};
};
