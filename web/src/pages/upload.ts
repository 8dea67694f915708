/**
 * Upload: files or whole folders by drag-and-drop or pickers, a preview and its own fields per
 * file, one XHR per file (each file has its own name, tags…) two at a time, per-file and total
 * progress, and failed files kept with their error and a retry button. The checks here only
 * save a pointless upload; the server checks everything again.
 */
import type { Category } from "../../../models/categories/category.ts";
import { api, upload, type UploadHandle } from "../api.ts";
import { field, formatBytes, h, option, toast } from "../dom.ts";
import type { Page } from "../router.ts";

const ACCEPTED = ["image/jpeg", "image/png", "image/webp", "image/gif", "image/avif", "image/tiff"];
const ACCEPTED_EXTENSIONS = /\.(jpe?g|png|webp|gif|avif|tiff?)$/i;
/** The server's default MAX_UPLOAD_BYTES; a server configured otherwise still decides. */
const MAX_BYTES = 50 * 1024 * 1024;
const PARALLEL = 2;

type State = "queued" | "uploading" | "done" | "failed";

interface Item {
	file: File;
	state: State;
	loaded: number;
	el: HTMLElement;
	progress: HTMLProgressElement;
	message: HTMLElement;
	retry: HTMLButtonElement;
	fields: { name: HTMLInputElement; description: HTMLTextAreaElement; tags: HTMLInputElement; category: HTMLSelectElement };
	handle?: UploadHandle;
}

function precheck(file: File): string | null {
	if (!ACCEPTED.includes(file.type) && !ACCEPTED_EXTENSIONS.test(file.name)) return "Not an image type the server accepts (JPEG, PNG, WebP, GIF, AVIF, TIFF)";
	if (file.size > MAX_BYTES) return `Larger than ${formatBytes(MAX_BYTES)}`;
	if (file.size === 0) return "Empty file";
	return null;
}

/** Every file under a dropped entry, folders walked recursively. */
async function filesOf(entry: FileSystemEntry): Promise<File[]> {
	if (entry.isFile) return [await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject))];
	const reader = (entry as FileSystemDirectoryEntry).createReader();
	const files: File[] = [];
	// readEntries answers in batches until it returns an empty one.
	for (;;) {
		const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
		if (batch.length === 0) return files;
		for (const child of batch) files.push(...(await filesOf(child)));
	}
}

export const uploadPage: Page = main => {
	const items: Item[] = [];
	const previews: string[] = [];
	let categories: Category[] = [];
	const visibility = h("select", { name: "visibility" }, option("private", "Private (only me)"), option("public", "Public (anyone with the link)"));
	const encrypted = h("input", { type: "checkbox", name: "encrypted", id: "encrypted" });
	const picker = h("input", { type: "file", multiple: true, accept: ACCEPTED.join(","), class: "visually-hidden", id: "pick-files" });
	const folderPicker = h("input", { type: "file", multiple: true, webkitdirectory: true, class: "visually-hidden", id: "pick-folder" });
	const list = h("ul", { class: "uploads", "aria-label": "Files to upload" });
	const total = h("progress", { max: 1, value: 0, "aria-label": "Total upload progress" });
	const totalText = h("span", { class: "muted" });
	const start = h("button", { type: "button", disabled: true }, "Upload all");
	const drop = h(
		"div",
		{ class: "dropzone" },
		h("p", {}, "Drop images or a folder here, or"),
		h("div", { class: "actions" }, h("label", { for: "pick-files", class: "button secondary" }, "Choose files"), h("label", { for: "pick-folder", class: "button secondary" }, "Choose a folder")),
		picker,
		folderPicker
	);

	function updateTotal(): void {
		const active = items.filter(item => item.state !== "failed" || item.loaded > 0);
		const size = active.reduce((sum, item) => sum + item.file.size, 0);
		const loaded = active.reduce((sum, item) => sum + item.loaded, 0);
		total.value = size ? loaded / size : 0;
		const done = items.filter(item => item.state === "done").length;
		const failed = items.filter(item => item.state === "failed").length;
		totalText.textContent = `${done} of ${items.length} uploaded${failed ? `, ${failed} failed` : ""} (${Math.round(total.value * 100)} %)`;
		start.disabled = !items.some(item => item.state === "queued");
	}

	function setState(item: Item, state: State, message = ""): void {
		item.state = state;
		item.el.dataset.state = state;
		item.message.textContent = message;
		item.retry.hidden = state !== "failed";
		for (const control of Object.values(item.fields)) control.disabled = state === "uploading" || state === "done";
		updateTotal();
	}

	function add(file: File): void {
		const preview = URL.createObjectURL(file);
		previews.push(preview);
		const base = file.name.replace(/\.[^.]+$/, "");
		const fields = {
			name: h("input", { name: "name", value: base, maxlength: 200 }),
			description: h("textarea", { name: "description", rows: 2, maxlength: 5000 }),
			tags: h("input", { name: "tags", placeholder: "comma, separated" }),
			category: h("select", { name: "category" }, option("", "None"), ...categories.map(c => option(c.id, c.name)))
		};
		const item: Item = {
			file,
			state: "queued",
			loaded: 0,
			el: h("li"),
			progress: h("progress", { max: file.size || 1, value: 0, "aria-label": `Upload progress of ${file.name}` }),
			message: h("p", { class: "message", role: "status" }),
			retry: h("button", { type: "button", class: "secondary", hidden: true }, "Retry"),
			fields
		};
		const remove = h("button", { type: "button", class: "link", "aria-label": `Remove ${file.name}` }, "Remove");
		remove.addEventListener("click", () => {
			item.handle?.abort();
			items.splice(items.indexOf(item), 1);
			item.el.remove();
			updateTotal();
		});
		item.retry.addEventListener("click", () => {
			setState(item, "queued");
			send(item);
		});
		item.el.className = "upload card";
		item.el.append(
			h("img", { src: preview, alt: `Preview of ${file.name}`, class: "preview" }),
			h(
				"div",
				{ class: "upload-fields" },
				h("p", { class: "filename" }, `${file.webkitRelativePath || file.name} · ${formatBytes(file.size)}`),
				field("Name", fields.name),
				field("Description", fields.description, "#hashtags become tags"),
				field("Tags", fields.tags),
				field("Category", fields.category),
				item.progress,
				item.message,
				h("div", { class: "actions" }, item.retry, remove)
			)
		);
		items.push(item);
		list.append(item.el);
		const problem = precheck(file);
		setState(item, problem ? "failed" : "queued", problem ?? "");
		if (problem) item.retry.hidden = true;
	}

	function send(item: Item): void {
		const form = new FormData();
		// The API wants the text fields before the file.
		form.append("name", item.fields.name.value.trim() || item.file.name);
		if (item.fields.description.value.trim()) form.append("description", item.fields.description.value.trim());
		if (item.fields.tags.value.trim()) form.append("tags", item.fields.tags.value.trim());
		if (item.fields.category.value) form.append("category", item.fields.category.value);
		form.append("visibility", visibility.value);
		form.append("encrypted", String(encrypted.checked));
		form.append("file", item.file, item.file.name);
		setState(item, "uploading", "Uploading…");
		item.handle = upload(form, loaded => {
			// The body is a bit larger than the file (the form around it): cap at the file size.
			item.loaded = Math.min(loaded, item.file.size);
			item.progress.value = item.loaded;
			updateTotal();
		});
		item.handle.done.then(
			({ images }) => {
				item.loaded = item.file.size;
				item.progress.value = item.file.size;
				setState(item, "done", "");
				item.message.replaceChildren("Uploaded · ", h("a", { href: `/images/${images[0].id}` }, "open"));
			},
			(err: Error) => {
				item.loaded = 0;
				item.progress.value = 0;
				setState(item, "failed", err.message);
			}
		).finally(pump);
	}

	function pump(): void {
		const uploading = items.filter(item => item.state === "uploading").length;
		const next = items.filter(item => item.state === "queued").slice(0, Math.max(0, PARALLEL - uploading));
		for (const item of next) send(item);
		if (next.length === 0 && uploading === 0 && items.length && items.every(item => item.state === "done")) toast("All files uploaded");
	}

	const addAll = (files: Iterable<File>) => {
		for (const file of files) add(file);
	};
	picker.addEventListener("change", () => (addAll(picker.files ?? []), (picker.value = "")));
	folderPicker.addEventListener("change", () => (addAll(folderPicker.files ?? []), (folderPicker.value = "")));
	drop.addEventListener("dragover", event => {
		event.preventDefault();
		drop.classList.add("over");
	});
	drop.addEventListener("dragleave", () => drop.classList.remove("over"));
	drop.addEventListener("drop", async event => {
		event.preventDefault();
		drop.classList.remove("over");
		const entries = [...(event.dataTransfer?.items ?? [])].map(item => item.webkitGetAsEntry()).filter((entry): entry is FileSystemEntry => entry !== null);
		// Entries let a dropped folder be walked; a drop without them (some browsers, synthetic events) still has its files.
		if (entries.length === 0) addAll(event.dataTransfer?.files ?? []);
		for (const entry of entries) addAll(await filesOf(entry));
	});
	start.addEventListener("click", () => {
		pump();
	});

	api<{ items: Category[] }>("GET", "/categories").then(
		result => (categories = result.items),
		() => undefined
	);
	main.append(
		h("h1", {}, "Upload images"),
		drop,
		h("div", { class: "card options" }, field("Visibility", visibility), h("div", { class: "field check" }, encrypted, h("label", { for: "encrypted" }, "Encrypt at rest"))),
		list,
		h("div", { class: "upload-total" }, total, totalText, start)
	);
	return () => {
		for (const item of items) item.handle?.abort();
		for (const url of previews) URL.revokeObjectURL(url);
	};
};
