/**
 * Bulk imports: a form for a URL list (pasted or from a .txt) or a Google Drive folder, the job
 * list, and a job page whose progress comes live from the job's Server-Sent Events stream.
 */
import type { Category } from "../../../models/categories/category.ts";
import type { Page as ResultPage } from "../../../models/images/image-types.ts";
import type { ImportItem, ImportStatus, JobView } from "../../../models/imports/import-types.ts";
import { api, ApiError, token } from "../api.ts";
import { field, formatBytes, formatDate, h, option, toast } from "../dom.ts";
import { navigate, type Page } from "../router.ts";

function sourceLabel(job: JobView): string {
	return job.source.type === "urls" ? "URL list" : `Google Drive${job.source.folder ? ` folder ${job.source.folder}` : ""}`;
}

const TERMINAL = new Set<ImportStatus>(["completed", "completed_with_errors", "failed", "cancelled"]);

function unavailable(err: unknown): boolean {
	return err instanceof ApiError && err.status === 404;
}

const NOT_AVAILABLE = "Imports are not available on this server yet.";

function percent(job: JobView): number {
	if (TERMINAL.has(job.status) && job.status !== "cancelled") return 100;
	return job.total ? Math.floor((job.processed / job.total) * 100) : 0;
}

/** One URL a line: a URL may hold spaces (an unencoded file name), so only line breaks split. */
function urlLines(text: string): string[] {
	return text
		.split(/\r?\n/)
		.map(line => line.trim())
		.filter(Boolean);
}

function importForm(categories: Category[]): HTMLElement {
	const source = h("select", { name: "source" }, option("urls", "A list of URLs"), option("google-drive", "A Google Drive folder"));
	const urls = h("textarea", { name: "urls", rows: 6, placeholder: "https://example.org/a.jpg\nhttps://example.org/b.png" });
	const txt = h("input", { type: "file", accept: ".txt,text/plain", name: "urls-file" });
	const folder = h("input", { name: "folder", placeholder: "https://drive.google.com/drive/folders/…" });
	const apiKey = h("input", { name: "apiKey", autocomplete: "off" });
	const recursive = h("input", { type: "checkbox", name: "recursive", id: "recursive" });
	const category = h("select", { name: "category" }, option("", "None"), ...categories.map(c => option(c.id, c.name)));
	const tags = h("input", { name: "tags", placeholder: "comma, separated" });
	const visibility = h("select", { name: "visibility" }, option("private", "Private"), option("public", "Public"));
	const urlFields = h("div", {}, field("Image URLs, one per line", urls), field("…or a .txt file of URLs", txt));
	const driveFields = h("div", { hidden: true }, field("Folder URL or id", folder), field("Google API key (optional)", apiKey, "The server's key is used when empty"), h("div", { class: "field check" }, recursive, h("label", { for: "recursive" }, "Include subfolders")));
	const submit = h("button", { type: "submit" }, "Start import");
	const form = h("form", { class: "card", "aria-labelledby": "new-import" }, h("h2", { id: "new-import" }, "New import"), field("Source", source), urlFields, driveFields, field("Category", category), field("Tags", tags), field("Visibility", visibility), submit);
	source.addEventListener("change", () => {
		urlFields.hidden = source.value !== "urls";
		driveFields.hidden = source.value === "urls";
	});
	txt.addEventListener("change", async () => {
		const file = txt.files?.[0];
		if (file) urls.value = [urls.value.trim(), (await file.text()).trim()].filter(Boolean).join("\n");
	});
	form.addEventListener("submit", async event => {
		event.preventDefault();
		const common = { category: category.value || undefined, tags: tags.value.trim() || undefined, visibility: visibility.value };
		const body =
			source.value === "urls"
				? { source: "urls", urls: urlLines(urls.value), ...common }
				: { source: "google-drive", folder: folder.value.trim(), apiKey: apiKey.value.trim() || undefined, recursive: recursive.checked, ...common };
		submit.disabled = true;
		try {
			const { job } = await api<{ job: JobView }>("POST", "/imports", body);
			navigate(`/imports/${job.id}`);
		} catch (err) {
			toast(unavailable(err) ? NOT_AVAILABLE : (err as Error).message, "error");
			submit.disabled = false;
		}
	});
	return form;
}

export const importsPage: Page = async main => {
	const categories = await api<{ items: Category[] }>("GET", "/categories").then(
		result => result.items,
		() => []
	);
	const jobs = h("section", { class: "card", "aria-labelledby": "jobs-title" }, h("h2", { id: "jobs-title" }, "Jobs"));
	main.append(h("h1", {}, "Imports"), h("div", { class: "two-columns" }, importForm(categories), jobs));
	try {
		const { items } = await api<ResultPage<JobView>>("GET", "/imports");
		jobs.append(
			items.length === 0
				? h("p", { class: "muted" }, "No imports yet.")
				: h(
						"ul",
						{ class: "plain jobs" },
						...items.map(job =>
							h("li", {}, h("a", { href: `/imports/${job.id}` }, `${sourceLabel(job)} · ${job.status.replaceAll("_", " ")}`), h("progress", { max: 100, value: percent(job), "aria-label": `Progress of import ${job.id}` }), h("small", {}, `${job.processed}/${job.total} · ${formatDate(job.createdAt)}`))
						)
					)
		);
	} catch (err) {
		jobs.append(h("p", { class: "muted" }, unavailable(err) ? NOT_AVAILABLE : (err as Error).message));
	}
};

/**
 * Reads a Server-Sent Events stream with fetch: EventSource cannot send the Authorization
 * header. Calls `onData` with each event's parsed JSON data until the stream ends or `signal` aborts.
 */
async function readEvents(path: string, signal: AbortSignal, onData: (data: JobView) => void): Promise<void> {
	const res = await fetch(path, { headers: { authorization: `Bearer ${token()}`, accept: "text/event-stream" }, signal });
	if (!res.ok || !res.body) throw new ApiError(res.status, null);
	const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
	let buffer = "";
	for (;;) {
		const { value, done } = await reader.read();
		if (done) return;
		buffer += value;
		let end: number;
		while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
			const block = buffer.slice(0, end);
			buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
			const data = block
				.split(/\r?\n/)
				.filter(line => line.startsWith("data:"))
				.map(line => line.slice(5).trimStart())
				.join("\n");
			if (data) onData(JSON.parse(data) as JobView);
		}
	}
}

function duration(seconds: number | null): string {
	if (seconds === null || !Number.isFinite(seconds)) return "–";
	if (seconds < 60) return `${Math.round(seconds)} s`;
	return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export const importPage: Page = async (main, { id }) => {
	const controller = new AbortController();
	const bar = h("progress", { max: 100, value: 0, "aria-label": "Import progress", id: "import-progress" });
	const label = h("span", { class: "percent", "aria-hidden": "true" });
	const counters = h("dl", { class: "meta counters" });
	const status = h("p", { role: "status", class: "job-status" });
	const failures = h("section", { class: "card", "aria-labelledby": "failed-title" });
	const cancel = h("button", { type: "button", class: "danger" }, "Cancel import");
	const retry = h("button", { type: "button", class: "secondary" }, "Retry failed items");
	let shownFailures = -1;

	async function loadFailures(job: JobView): Promise<void> {
		if (job.failed === shownFailures) return;
		shownFailures = job.failed;
		const items = await api<ResultPage<Pick<ImportItem, "key" | "error">>>("GET", `/imports/${id}/items?state=failed`).then(
			result => result.items.map(item => ({ item: item.key, error: item.error ?? "" })),
			() => job.errors
		);
		failures.replaceChildren(h("h2", { id: "failed-title" }, `Failed items (${job.failed})`), items.length ? h("ul", { class: "plain failures" }, ...items.map(item => h("li", {}, h("code", {}, item.item), ` — ${item.error}`))) : h("p", { class: "muted" }, "None."));
	}

	function update(job: JobView): void {
		const pct = percent(job);
		bar.value = pct;
		label.textContent = `${pct} %`;
		status.textContent = `Status: ${job.status.replaceAll("_", " ")}`;
		const rows: [string, string][] = [
			["Processed", `${job.processed} / ${job.total}`],
			["Imported", String(job.succeeded)],
			["Duplicates", String(job.duplicates)],
			["Failed", String(job.failed)],
			["Rate", job.rate !== null ? `${job.rate.toFixed(1)} images/s` : "–"],
			["Time left", TERMINAL.has(job.status) ? "–" : duration(job.eta)],
			["Downloaded", formatBytes(job.bytes)]
		];
		counters.replaceChildren(...rows.flatMap(([key, value]) => [h("dt", {}, key), h("dd", {}, value)]));
		cancel.hidden = TERMINAL.has(job.status);
		retry.hidden = job.failed === 0 || !TERMINAL.has(job.status);
		void loadFailures(job);
	}

	async function follow(): Promise<void> {
		try {
			await readEvents(`/api/imports/${id}/events`, controller.signal, update);
		} catch (err) {
			if (controller.signal.aborted) return;
			status.textContent = (err as Error).message;
		}
		// The stream ends at the final state; read it once more in case the last event was missed.
		if (!controller.signal.aborted) update(await api<JobView>("GET", `/imports/${id}`));
	}

	cancel.addEventListener("click", async () => {
		try {
			await api("DELETE", `/imports/${id}`);
			toast("Import cancelled");
		} catch (err) {
			toast((err as Error).message, "error");
		}
	});
	retry.addEventListener("click", async () => {
		try {
			await api("POST", `/imports/${id}/retry`);
			toast("Retrying failed items");
			void follow();
		} catch (err) {
			toast((err as Error).message, "error");
		}
	});

	try {
		const job = await api<JobView>("GET", `/imports/${id}`);
		main.append(
			h("p", {}, h("a", { href: "/imports" }, "← All imports")),
			h("h1", {}, `Import: ${sourceLabel(job)}`),
			h("section", { class: "card", "aria-label": "Progress" }, status, h("div", { class: "progress-line" }, bar, label), counters, h("div", { class: "actions" }, cancel, retry)),
			failures
		);
		update(job);
		if (!TERMINAL.has(job.status)) void follow();
	} catch (err) {
		main.append(h("h1", {}, "Import"), h("p", {}, unavailable(err) ? NOT_AVAILABLE : (err as Error).message));
	}
	return () => controller.abort();
};
