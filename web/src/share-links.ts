/**
 * The owner's share links of one image (on its details page) or one album (on the album's page):
 * make one (expiry, password, download and metadata allowed), copy its URL (shown this once: the
 * server keeps only the token's hash), and revoke any of them.
 */
import type { OwnerShare } from "../../models/shares/share-types.ts";
import { api } from "./api.ts";
import { copyLinkButton, field, formatDate, h, render, toast } from "./dom.ts";

/** What a link opens: an image or an album. */
export type ShareTarget = { imageId: string } | { albumId: string };

function opens(share: OwnerShare, target: ShareTarget): boolean {
	return "imageId" in target ? share.imageId === target.imageId : share.albumId === target.albumId;
}

/** The target's links among the owner's (newest first, the first 100). */
async function linksOf(target: ShareTarget): Promise<OwnerShare[]> {
	const page = await api<{ items: OwnerShare[] }>("GET", "/shares?limit=100");
	return page.items.filter(share => opens(share, target));
}

function describe(share: OwnerShare): string {
	const parts = [share.expired ? "expired" : share.expiresAt ? `until ${formatDate(share.expiresAt)}` : "no expiry"];
	if (share.hasPassword) parts.push("password");
	if (!share.allowDownload) parts.push("no download");
	if (share.showMetadata) parts.push("with metadata");
	return `Made ${formatDate(share.createdAt)}: ${parts.join(", ")}`;
}

function madeLink(url: string): HTMLElement {
	const input = h("input", { value: url, readonly: true, name: "share-link" });
	const copy = copyLinkButton(input, url);
	return h("div", { role: "status" }, field("New share link", input, "Shown only now: copy it before leaving the page"), h("div", { class: "actions" }, copy));
}

export function shareLinks(target: ShareTarget): HTMLElement {
	const key = "imageId" in target ? target.imageId : target.albumId;
	const list = h("ul", { class: "share-links", "aria-label": "Share links" });
	const made = h("div", {});
	const expires = h("input", { type: "datetime-local", name: "expiresAt" });
	const password = h("input", { type: "password", name: "password", minlength: 4, maxlength: 256, autocomplete: "new-password" });
	const allowDownload = h("input", { type: "checkbox", name: "allowDownload", id: `share-download-${key}`, checked: true });
	const showMetadata = h("input", { type: "checkbox", name: "showMetadata", id: `share-metadata-${key}` });
	const create = h("button", { type: "submit" }, "Create share link");
	const form = h(
		"form",
		{ "aria-label": "Make a share link" },
		field("Expires", expires, "Empty: never"),
		field("Password", password, "Optional"),
		h("div", { class: "field check" }, allowDownload, h("label", { for: allowDownload.id }, "Allow downloading the original")),
		h("div", { class: "field check" }, showMetadata, h("label", { for: showMetadata.id }, "Include camera metadata (EXIF, GPS)")),
		create
	);

	async function refresh(): Promise<void> {
		try {
			const shares = await linksOf(target);
			render(list, ...shares.map(share => {
				const revoke = h("button", { type: "button", class: "link danger" }, "Revoke");
				revoke.addEventListener("click", async () => {
					try {
						await api("DELETE", `/shares/${share.id}`);
						toast("Link revoked");
						void refresh();
					} catch (err) {
						toast((err as Error).message, "error");
					}
				});
				return h("li", { "data-id": share.id }, describe(share), " ", revoke);
			}));
		} catch (err) {
			render(list, h("li", { class: "error" }, (err as Error).message));
		}
	}

	form.addEventListener("submit", async event => {
		event.preventDefault();
		create.disabled = true;
		try {
			const { share } = await api<{ share: OwnerShare }>("POST", "/shares", {
				...target,
				expiresAt: expires.value ? new Date(expires.value).toISOString() : undefined,
				password: password.value || undefined,
				allowDownload: allowDownload.checked,
				showMetadata: showMetadata.checked
			});
			render(made, madeLink(location.origin + share.url!));
			form.reset();
			void refresh();
		} catch (err) {
			toast((err as Error).message, "error");
		} finally {
			create.disabled = false;
		}
	});

	void refresh();
	return h("div", {}, h("h3", {}, "Share links"), made, list, form);
}
