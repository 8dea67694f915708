/**
 * REPL: `jobs dead` lists the dead-letter stream; `jobs retry <id>` sends a dead letter back to
 * its channel (an image's job also puts the image back to `processing`, or the worker would
 * skip it). Distributed mode only: embedded mode's in-process queue keeps no dead letters.
 *
 * Import jobs: `jobs` lists them (every user's, newest first) with progress bars; `jobs cancel
 * <id>` cancels one; `jobs retry <id>` with an import job's id re-runs its failed items (dead
 * letters have stream ids, `<ms>-<n>`, so the two never mix). These call the imports service
 * as an administrator and work in both modes.
 */
import type { ServiceBroker } from "moleculer";
import { asOperator, UsageError, type ReplCommand } from "../cluster/repl-commands.ts";
import type { ImportJob } from "../models/imports/import-job.ts";
import { retryDeadLetter, withJobQueue, type JobQueue } from "../cluster/job-streams.ts";

const EMBEDDED = "Embedded mode: jobs run on an in-process queue (no streams, no dead letters).";
const USAGE = ["jobs", "jobs cancel <import id>", "jobs retry <import id>", "jobs dead", "jobs retry <dead letter id>"];
/** Dead letters are Redis stream entries: `<milliseconds>-<sequence>`. */
const STREAM_ID = /^\d+-\d+$/;

const BAR_WIDTH = 24;
/** Dead letters listed at most (oldest first), and how much of an error or payload a row shows. */
const DEAD_SHOWN = 100;
const ERROR_WIDTH = 50;
const PAYLOAD_WIDTH = 40;

/** What imports.list/cancel/retry answer, as far as the REPL shows it. */
type ImportJobView = Pick<ImportJob, "id" | "ownerName" | "status" | "total" | "processed" | "succeeded" | "duplicates" | "failed" | "cancelled"> & {
	source: { type: string };
	rate: number | null;
	eta: number | null;
};

export function progressBar(done: number, total: number): string {
	const share = total > 0 ? Math.min(1, done / total) : 0;
	const filled = Math.round(share * BAR_WIDTH);
	return `[${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}] ${String(Math.floor(share * 100)).padStart(3)}%`;
}

function importLine(job: ImportJobView): string {
	const counts = `${job.processed}/${job.total} ok ${job.succeeded} dup ${job.duplicates} failed ${job.failed}` + (job.cancelled ? ` dropped ${job.cancelled}` : "");
	const speed = job.rate === null ? "" : ` ${job.rate}/s` + (job.eta ? ` eta ${job.eta}s` : "");
	return `${job.id}  ${job.ownerName.padEnd(12)} ${job.source.type.padEnd(12)} ${job.status.padEnd(21)} ${progressBar(job.processed + job.cancelled, job.total)} ${counts}${speed}`;
}

async function listImports(broker: ServiceBroker): Promise<void> {
	const page = await broker.call<{ items: ImportJobView[]; total: number }, object>("imports.list", { limit: 100 }, asOperator);
	if (page.items.length === 0) return console.log("No import jobs.");
	for (const job of page.items) console.log(importLine(job));
	if (page.total > page.items.length) console.log(`(${page.total - page.items.length} older jobs not shown)`);
}

async function changeImport(broker: ServiceBroker, action: "cancel" | "retry", id: string): Promise<void> {
	const result = await broker.call<{ job: ImportJobView; requeued?: number }, object>(`imports.${action}`, { id }, asOperator);
	console.log(importLine(result.job) + (result.requeued === undefined ? "" : `  (${result.requeued} item(s) re-queued)`));
}

function clip(text: string, width: number): string {
	return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}

async function listDeadLetters(queue: JobQueue): Promise<void> {
	const letters = await queue.deadLetters(DEAD_SHOWN);
	if (letters.length === 0) return console.log("No dead letters.");
	const total = await queue.deadLetterCount();
	console.log(`${total} dead letter(s)${total > letters.length ? `, the oldest ${letters.length} shown` : ""}; jobs retry <id> sends one back to its channel:`);
	console.table(
		letters.map(letter => ({
			id: letter.id,
			channel: letter.channel,
			attempts: letter.attempts ?? "?",
			error: clip(letter.error ?? "?", ERROR_WIDTH),
			payload: clip(JSON.stringify(letter.payload) ?? "", PAYLOAD_WIDTH)
		}))
	);
}

const commands: ReplCommand[] = [
	{
		command: "jobs [what] [id]",
		description: "Import jobs with progress; cancel or retry one; dead letters (jobs that failed every attempt) and sending one back",
		usage: USAGE,
		async action(broker, args) {
			const what = args.what as string | undefined;
			const id = args.id as string | undefined;
			if (what === undefined) return listImports(broker);
			if (what === "cancel" || what === "retry") {
				if (id === undefined) throw new UsageError();
			} else if (what !== "dead" || id !== undefined) {
				throw new UsageError();
			}
			if (what === "cancel") return changeImport(broker, "cancel", id!);
			if (what === "retry" && !STREAM_ID.test(id!)) return changeImport(broker, "retry", id!);
			const done = await withJobQueue(broker, async queue => {
				if (what === "dead") {
					await listDeadLetters(queue);
				} else {
					const letter = await retryDeadLetter(broker, queue, id!);
					console.log(letter ? `Sent ${JSON.stringify(letter.payload)} back to ${letter.channel}.` : `No dead letter ${id}.`);
				}
				return true;
			});
			if (!done) console.log(EMBEDDED);
		}
	}
];

export default commands;
