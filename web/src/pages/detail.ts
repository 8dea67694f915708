/**
 * One image: the picture (720 px rendition, or the original; it stays in view beside the long
 * column of cards on wide screens, and opens the full-screen viewer), its metadata and tags,
 * editing, downloads as the original or converted, the public link and share links, re-tagging
 * and deletion.
 */
import type { Category } from "../../../models/categories/category.ts";
import type { ImageMetadata } from "../../../models/images/image-types.ts";
import type { PublicImage } from "../../../models/images/public-image.ts";
import { api, currentUser, download } from "../api.ts";
import { copyLinkButton, field, formatBytes, formatDate, h, option, toast } from "../dom.ts";
import { imageAlt, releaseImages, renditionUrl } from "../images.ts";
import { setPlaceholder } from "../placeholder.ts";
import { navigate, type Page } from "../router.ts";
import { shareLinks } from "../share-links.ts";
import { openViewer } from "../viewer.ts";

const FORMATS = ["webp", "jpeg", "png", "avif", "gif", "tiff"];
/** The server's default presets (docs/sharing.md): what others than the owner may download. */
const PRESETS: [string, string][] = [["thumb", "Thumbnail (240 px)"], ["small", "Small (480 px)"], ["medium", "Medium (1080 px)"], ["large", "Large (2048 px)"]];
const POLL_MS = 1500;

function row(label: string, value: string | number | null | undefined): HTMLElement[] {
	return value === null || value === undefined || value === "" ? [] : [h("dt", {}, label), h("dd", {}, String(value))];
}

/** What the pipeline read (EXIF camera and date, colour space); absent before processing. */
function metadataRows(metadata: ImageMetadata | null): HTMLElement[] {
	if (!metadata) return [];
	const camera = [metadata.cameraMake, metadata.cameraModel].filter(Boolean).join(" ");
	return [
		...row("Camera", camera),
		...row("Taken", metadata.takenAt?.replace("T", " ")),
		...row("Colour space", metadata.space),
		...row("Density", metadata.density ? `${metadata.density} ppi` : null),
		...row("GPS in original", metadata.hasGps ? "yes (never in renditions)" : null)
	];
}

function tagList(image: PublicImage): HTMLElement {
	if (image.tags.length === 0) return h("p", { class: "muted" }, "No tags yet.");
	return h(
		"ul",
		{ class: "tags", "aria-label": "Tags" },
		...image.tags.map(tag =>
			h(
				"li",
				{ class: `tag ${tag.source}`, "data-source": tag.source },
				h("a", { href: `/?tag=${encodeURIComponent(tag.label)}` }, tag.label),
				h("small", {}, tag.source === "auto" ? ` auto ${Math.round((tag.score ?? 0) * 100)} %${tag.model ? ` · ${tag.model}` : ""}` : ` ${tag.source}`)
			)
		)
	);
}

function editForm(image: PublicImage, categories: Category[], onSaved: (image: PublicImage) => void): HTMLElement {
	const name = h("input", { name: "name", value: image.name, required: true, maxlength: 200 });
	const description = h("textarea", { name: "description", rows: 3, maxlength: 5000 }, image.description);
	const tags = h("input", { name: "tags", value: image.tags.filter(tag => tag.source === "user").map(tag => tag.label).join(", ") });
	const category = h("select", { name: "category" }, option("", "None"), ...categories.map(c => option(c.id, c.name, c.id === image.category)));
	const visibility = h("select", { name: "visibility" }, option("private", "Private", image.visibility === "private"), option("public", "Public", image.visibility === "public"));
	const showMetadata = h("input", { name: "showMetadata", type: "checkbox", checked: image.showMetadata });
	const save = h("button", { type: "submit" }, "Save changes");
	const form = h(
		"form",
		{ class: "card", "aria-labelledby": "edit-title" },
		h("h2", { id: "edit-title" }, "Edit"),
		field("Name", name),
		field("Description", description, "#hashtags become tags"),
		field("Tags", tags, "Comma separated; automatic tags are kept"),
		field("Category", category),
		field("Visibility", visibility),
		field("Share the metadata (camera, place, uploaded file)", showMetadata, "Others get a copy without EXIF and GPS, named by the image's id, unless this is on"),
		save
	);
	form.addEventListener("submit", async event => {
		event.preventDefault();
		save.disabled = true;
		try {
			const updated = await api<PublicImage>("PATCH", `/images/${image.id}`, {
				name: name.value.trim(),
				description: description.value,
				tags: tags.value,
				category: category.value || null,
				visibility: visibility.value,
				showMetadata: showMetadata.checked
			});
			toast("Saved");
			onSaved(updated);
		} catch (err) {
			toast((err as Error).message, "error");
			save.disabled = false;
		}
	});
	return form;
}

/** A download's file name without extension: the image's name, safe on every file system. */
function fileBase(image: PublicImage): string {
	return image.name.replace(/[\\/:*?"<>|]+/g, "_") || "image";
}

/**
 * Others than the owner get the presets, or the original as the server gives it to guests
 * (without its metadata unless the owner shares it).
 */
function guestDownloadForm(image: PublicImage): HTMLElement {
	const size = h("select", { name: "preset" }, option("", `Original (${image.format})`), ...PRESETS.map(([value, label]) => option(value, label)));
	const button = h("button", { type: "submit" }, "Download");
	const form = h("form", { class: "card", "aria-labelledby": "download-title" }, h("h2", { id: "download-title" }, "Download"), field("Size", size), button);
	form.addEventListener("submit", async event => {
		event.preventDefault();
		const base = fileBase(image);
		button.disabled = true;
		try {
			const query = size.value ? `?preset=${encodeURIComponent(size.value)}` : "";
			// A preset's format depends on what the browser accepts: the name follows the bytes.
			await download(`/api/images/${image.id}/content${query}`, type => `${base}${size.value ? `-${size.value}` : ""}.${type.split("/")[1]?.replace("jpeg", "jpg") || image.format}`);
		} catch (err) {
			toast((err as Error).message, "error");
		} finally {
			button.disabled = false;
		}
	});
	return form;
}

function downloadForm(image: PublicImage): HTMLElement {
	const format = h("select", { name: "format" }, option("", `Original (${image.format})`), ...FORMATS.map(f => option(f, f.toUpperCase())));
	const width = h("input", { name: "w", type: "number", min: 1, max: 10000, placeholder: String(image.width), inputmode: "numeric" });
	const button = h("button", { type: "submit" }, "Download");
	const form = h("form", { class: "card", "aria-labelledby": "download-title" }, h("h2", { id: "download-title" }, "Download"), field("Format", format), field("Width (px)", width, "Empty keeps the original size"), button);
	form.addEventListener("submit", async event => {
		event.preventDefault();
		const base = fileBase(image);
		const ext = format.value;
		const path = ext || width.value ? `/api/images/${image.id}/content.${ext || image.format}${width.value ? `?w=${Number(width.value)}` : ""}` : `/api/images/${image.id}/content`;
		button.disabled = true;
		try {
			await download(path, `${base}.${ext || image.format}`);
		} catch (err) {
			const status = (err as { status?: number }).status;
			toast(status === 404 ? "This server cannot convert images yet" : (err as Error).message, "error");
		} finally {
			button.disabled = false;
		}
	});
	return form;
}

function shareBox(image: PublicImage): HTMLElement {
	if (image.visibility !== "public") return h("p", { class: "muted" }, "Make the image public for a permanent public link, or make a share link.");
	const url = `${location.origin}/p/${image.id}`;
	const input = h("input", { value: url, readonly: true, name: "public-link" });
	const copy = copyLinkButton(input, url);
	return h("div", {}, field("Public link", input), h("div", { class: "actions" }, copy, h("a", { href: url, target: "_blank", rel: "noopener" }, "Open")));
}

/** The toast's Undo: back from the trash, and back to the photo. */
async function restore(image: PublicImage): Promise<void> {
	try {
		await api("POST", `/trash/${image.id}/restore`);
		toast("Restored");
		navigate(`/images/${image.id}`);
	} catch (err) {
		toast((err as Error).message, "error");
	}
}

function deleteButton(image: PublicImage): HTMLElement {
	const dialog = h(
		"dialog",
		{ "aria-labelledby": "delete-title" },
		h("h2", { id: "delete-title" }, "Delete this image?"),
		h("p", {}, `“${image.name}” will be moved to the trash, where you can restore it.`),
		h("form", { method: "dialog", class: "actions" }, h("button", { value: "cancel", class: "secondary", autofocus: true }, "Cancel"), h("button", { value: "delete", class: "danger" }, "Delete"))
	);
	dialog.addEventListener("close", async () => {
		if (dialog.returnValue !== "delete") return;
		try {
			await api("DELETE", `/images/${image.id}`);
			toast("Moved to trash", "info", { label: "Undo", run: () => void restore(image) });
			navigate("/");
		} catch (err) {
			toast((err as Error).message, "error");
		}
	});
	const open = h("button", { type: "button", class: "danger" }, "Delete…");
	open.addEventListener("click", () => dialog.showModal());
	return h("div", {}, open, dialog);
}

export const detailPage: Page = async (main, { id }) => {
	let categories: Category[] = [];
	let timer: number | undefined;
	const picture = h("img", { alt: "", class: "full" });
	const open = h("button", { type: "button", class: "picture", title: "Open full screen" }, picture);
	let current: PublicImage | undefined;
	open.addEventListener("click", () => current && openViewer([current], 0, { categories: new Map(categories.map(c => [c.id, c.name])), onClose: () => open.focus() }));
	let shownSize: string | undefined;

	async function showImage(image: PublicImage): Promise<void> {
		current = image;
		const key = `${image.id}:${image.status}`;
		if (shownSize === key) return;
		shownSize = key;
		picture.alt = imageAlt(image);
		open.setAttribute("aria-label", `${image.name}: open full screen`);
		// The placeholder keeps the picture's shape and colours until the rendition arrives.
		picture.width = image.width;
		picture.height = image.height;
		picture.style.setProperty("--ratio", String(image.width / image.height));
		setPlaceholder(picture, image);
		try {
			picture.addEventListener("load", () => picture.classList.add("loaded"), { once: true });
			picture.src = await renditionUrl(image, 720);
		} catch (err) {
			picture.replaceWith(h("p", { class: "error" }, (err as Error).message));
		}
	}

	function draw(image: PublicImage): void {
		const mine = currentUser()?.id === image.owner || currentUser()?.role === "admin";
		const retag = h("button", { type: "button", class: "secondary" }, "Re-tag");
		retag.addEventListener("click", async () => {
			try {
				await api("POST", `/images/${image.id}/retag`);
				toast("Re-tagging started");
				void refresh();
			} catch (err) {
				toast((err as { status?: number }).status === 404 ? "This server has no classifier endpoint yet" : (err as Error).message, "error");
			}
		});
		const reprocess = h("button", { type: "button" }, "Reprocess");
		reprocess.addEventListener("click", async () => {
			reprocess.disabled = true;
			try {
				draw(await api<PublicImage>("POST", `/images/${image.id}/reprocess`));
				toast("Processing again");
			} catch (err) {
				toast((err as Error).message, "error");
				reprocess.disabled = false;
			}
		});
		void showImage(image);
		main.replaceChildren(
			h("div", { class: "page-head" }, h("h1", {}, image.name), image.status !== "ready" ? h("span", { class: `badge ${image.status}`, role: "status" }, image.status === "processing" ? "Processing" : "Failed") : null),
			h(
				"div",
				{ class: "detail" },
				h("figure", {}, open, image.description ? h("figcaption", {}, image.description) : null),
				h(
					"div",
					{ class: "side" },
					h(
						"section",
						{ class: "card", "aria-labelledby": "info-title" },
						h("h2", { id: "info-title" }, "Details"),
						h(
							"dl",
							{ class: "meta" },
							...row("Dimensions", `${image.width} × ${image.height}`),
							...row("Format", image.format),
							...row("Size", formatBytes(image.size)),
							...row("Views", image.views),
							...row("Owner", image.ownerName),
							...row("Category", image.category ? (categories.find(c => c.id === image.category)?.name ?? image.category) : null),
							...row("Visibility", image.visibility),
							...row("Encrypted", image.encrypted ? "yes" : "no"),
							...row("Status", image.statusReason ? `${image.status}: ${image.statusReason}` : image.status),
							...row("Uploaded", formatDate(image.createdAt)),
							...row("File name", image.filename),
							...metadataRows(image.metadata),
							...row("Renditions", image.renditions.map(r => `${r.width}×${r.height} ${r.format} (${formatBytes(r.size)})`).join(", ")),
							...row("SHA-256", image.sha256)
						),
						h("h3", {}, "Tags"),
						tagList(image),
						mine ? h("div", { class: "actions" }, retag, image.status === "failed" ? reprocess : null) : null
					),
					h("section", { class: "card", "aria-label": "Share" }, h("h2", {}, "Share"), shareBox(image), mine ? shareLinks({ imageId: image.id }) : null),
					mine ? downloadForm(image) : guestDownloadForm(image),
					mine ? editForm(image, categories, draw) : null,
					mine ? h("section", { class: "card", "aria-label": "Danger zone" }, deleteButton(image)) : null
				)
			)
		);
		clearTimeout(timer);
		if (image.status === "processing") timer = window.setTimeout(() => void refresh(), POLL_MS);
	}

	async function refresh(): Promise<void> {
		try {
			draw(await api<PublicImage>("GET", `/images/${id}`));
		} catch (err) {
			main.replaceChildren(h("h1", {}, "Image not found"), h("p", {}, (err as Error).message), h("a", { href: "/" }, "Back to the gallery"));
		}
	}

	categories = await api<{ items: Category[] }>("GET", "/categories").then(
		result => result.items,
		() => []
	);
	await refresh();
	return () => {
		clearTimeout(timer);
		releaseImages();
	};
};
