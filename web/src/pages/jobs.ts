/**
 * Jobs (admins): every job channel's figures, the dead letters with their errors (retry or
 * discard each), reprocessing every failed image, and the storage GC's last run. What the REPL's
 * `queue` and `jobs` commands show, over the admin REST endpoints (docs/api.md), for operators
 * without shell access. Embedded mode has no streams: the page says so.
 */
import type { ChannelView, DeadLetter } from "../../../models/pipeline/job-types.ts";
import type { GcReport } from "../../../models/storage/gc-report.ts";
import { api, ApiError } from "../api.ts";
import { formatBytes, formatDate, h, toast } from "../dom.ts";
import type { Page } from "../router.ts";


const EMBEDDED = "Embedded mode: jobs run on an in-process queue, with no streams and no dead letters. Images that failed can still be reprocessed.";

function headRow(...labels: string[]): HTMLElement {
	return h("thead", {}, h("tr", {}, ...labels.map(label => h("th", { scope: "col" }, label))));
}

function clip(text: string, width: number): string {
	return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

function channelsSection(onMode: (embedded: boolean) => void): { section: HTMLElement; load: () => Promise<void> } {
	const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
	async function load(): Promise<void> {
		const { mode, channels } = await api<{ mode: string; channels: ChannelView[] }>("GET", "/admin/jobs");
		onMode(mode === "embedded");
		if (mode === "embedded") return void body.replaceChildren(h("p", { class: "muted" }, EMBEDDED));
		body.replaceChildren(
			h(
				"div",
				{ class: "scroll" },
				h(
					"table",
					{ "aria-label": "Job channels" },
					headRow("Channel", "Group", "Workers", "Length", "Pending", "Consumers", "Lag", "Dead"),
					h(
						"tbody",
						{},
						...channels.map(row =>
							h(
								"tr",
								{ class: row.group !== null && row.workers === 0 ? "bad" : undefined },
								h("th", { scope: "row" }, row.channel),
								h("td", {}, row.group ?? "(none yet)"),
								h("td", {}, String(row.workers)),
								h("td", {}, String(row.length)),
								h("td", {}, String(row.pending)),
								h("td", {}, String(row.consumers)),
								h("td", {}, row.lag === null ? "?" : String(row.lag)),
								h("td", {}, String(row.dead))
							)
						)
					)
				)
			),
			h("p", { class: "muted" }, "Workers: live nodes running the group's service. A group with none waits for one; its jobs are kept.")
		);
	}
	const section = h("section", { class: "card", "aria-labelledby": "channels-title" }, h("h2", { id: "channels-title" }, "Channels"), body);
	return { section, load };
}

function deadLettersSection(onChange: () => void): { section: HTMLElement; load: () => Promise<void> } {
	const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
	async function act(letter: DeadLetter, method: "POST" | "DELETE"): Promise<void> {
		try {
			await api(method, method === "POST" ? `/admin/jobs/dead/${letter.id}/retry` : `/admin/jobs/dead/${letter.id}`);
			toast(method === "POST" ? `Sent back to ${letter.channel}` : "Dead letter discarded");
		} catch (err) {
			toast((err as Error).message, "error");
		}
		onChange();
	}
	async function load(): Promise<void> {
		const { mode, total, items } = await api<{ mode: string; total: number; items: DeadLetter[] }>("GET", "/admin/jobs/dead");
		if (mode === "embedded") return void body.replaceChildren(h("p", { class: "muted" }, "None: embedded mode keeps no dead letters (a failed job fails its image at once)."));
		if (items.length === 0) return void body.replaceChildren(h("p", { class: "muted" }, "No dead letters."));
		body.replaceChildren(
			h("p", {}, `${total} job(s) failed every attempt${total > items.length ? `; the oldest ${items.length} shown` : ""}.`),
			h(
				"div",
				{ class: "scroll" },
				h(
					"table",
					{ "aria-label": "Dead letters" },
					headRow("Id", "Channel", "Attempts", "Error", "Payload", "Actions"),
					h(
						"tbody",
						{},
						...items.map(letter => {
							const retry = h("button", { type: "button", class: "secondary", "aria-label": `Retry dead letter ${letter.id}` }, "Retry");
							const discard = h("button", { type: "button", class: "link", "aria-label": `Discard dead letter ${letter.id}` }, "Discard");
							retry.addEventListener("click", () => void act(letter, "POST"));
							discard.addEventListener("click", () => {
								if (confirm(`Discard the dead letter ${letter.id}? Its job will not run again.`)) void act(letter, "DELETE");
							});
							const payload = JSON.stringify(letter.payload) ?? "";
							return h(
								"tr",
								{},
								h("th", { scope: "row" }, letter.id),
								h("td", {}, letter.channel),
								h("td", {}, letter.attempts === null ? "?" : String(letter.attempts)),
								h("td", { title: letter.error ?? "" }, clip(letter.error ?? "?", 120)),
								h("td", { title: payload }, h("code", {}, clip(payload, 60))),
								h("td", {}, h("div", { class: "actions" }, retry, discard))
							);
						})
					)
				)
			)
		);
	}
	const section = h("section", { class: "card", "aria-labelledby": "dead-title" }, h("h2", { id: "dead-title" }, "Dead letters"), body);
	return { section, load };
}

function reprocessSection(): HTMLElement {
	const button = h("button", { type: "button" }, "Reprocess failed images");
	button.addEventListener("click", async () => {
		if (!confirm("Run every failed image through the pipeline again?")) return;
		button.disabled = true;
		try {
			const { queued } = await api<{ queued: number }>("POST", "/admin/images/reprocess-failed");
			toast(queued === 0 ? "No failed images" : `${queued} image(s) queued for processing`);
		} catch (err) {
			toast((err as Error).message, "error");
		} finally {
			button.disabled = false;
		}
	});
	return h(
		"section",
		{ class: "card", "aria-labelledby": "reprocess-title" },
		h("h2", { id: "reprocess-title" }, "Failed images"),
		h("p", {}, "Images whose processing failed (a full disk, an outage) can go through the pipeline again once the cause is fixed."),
		button
	);
}

function gcSummary(report: GcReport): HTMLElement[] {
	const when = `${report.dryRun ? "Dry run" : "Run"} started ${formatDate(report.startedAt)}${report.finishedAt ? `, finished ${formatDate(report.finishedAt)}` : ", still running"}`;
	const counts = `${report.refsChecked} references checked, ${report.refsReleased} ${report.dryRun ? "would be released" : "released"} · ${report.blobsDeleted} blobs ${report.dryRun ? "would be deleted" : "deleted"} (${formatBytes(report.bytesReclaimed)}) · ${report.tempFilesRemoved} temp files removed`;
	return [h("p", {}, when), h("p", {}, counts), ...report.errors.map(error => h("p", { class: "error" }, error))];
}

/**
 * The storage GC (GET and POST /api/admin/storage/gc): the last run of a storage node, and a dry
 * run or a collection now, as the REPL's `storage gc [--dry-run]` does.
 */
function gcSection(): HTMLElement {
	const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
	const show = ({ lastRun, running }: { lastRun: GcReport | null; running: GcReport | null }) => {
		const report = running ?? lastRun;
		body.replaceChildren(...(report ? gcSummary(report) : [h("p", { class: "muted" }, "The GC has not run yet.")]));
	};
	const load = () => api<{ lastRun: GcReport | null; running: GcReport | null }>("GET", "/admin/storage/gc").then(show, err => toast((err as Error).message, "error"));
	const run = (dryRun: boolean) => async () => {
		try {
			const report = await api<GcReport>("POST", "/admin/storage/gc", { dryRun });
			show({ lastRun: report, running: null });
			toast(dryRun ? "Dry run finished: nothing was deleted" : "Garbage collection finished");
		} catch (err) {
			toast(err instanceof ApiError && err.status === 409 ? "A collection is already running on that node" : (err as Error).message, "error");
		}
	};
	const dry = h("button", { type: "button", class: "secondary" }, "Dry run");
	const collect = h("button", { type: "button" }, "Collect garbage");
	dry.addEventListener("click", () => void run(true)());
	collect.addEventListener("click", () => void run(false)());
	void load();
	return h(
		"section",
		{ class: "card", "aria-labelledby": "gc-title" },
		h("h2", { id: "gc-title" }, "Storage GC"),
		h("p", {}, "Reclaims bytes no image uses any more (older than the grace period). A dry run only reports."),
		body,
		h("div", { class: "actions" }, dry, collect)
	);
}

export const jobsPage: Page = main => {
	const dead = deadLettersSection(() => void refresh());
	const channels = channelsSection(embedded => main.classList.toggle("embedded", embedded));
	async function refresh(): Promise<void> {
		await Promise.all([channels.load(), dead.load()]).catch(err => toast((err as Error).message, "error"));
	}
	const reload = h("button", { type: "button", class: "secondary" }, "Refresh");
	reload.addEventListener("click", () => void refresh());
	main.append(
		h("div", { class: "page-head" }, h("h1", {}, "Jobs"), reload),
		h("div", { class: "two-columns" }, h("div", {}, channels.section, dead.section), h("div", {}, reprocessSection(), gcSection()))
	);
	void refresh();
};
