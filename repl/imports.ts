/**
 * Operator REPL commands for bulk imports (loaded by the REPL entry with every repl/*.ts module):
 *   imports                  every import job, newest first, with a progress bar
 *   imports cancel <id>      cancel a job (queued items are dropped)
 *   imports retry <id>       run the failed items of a finished job again
 * The commands call the imports service as an administrator, so they see every user's jobs.
 */
import type { ServiceBroker } from "moleculer";

const OPERATOR = { user: { id: "repl", username: "repl", role: "admin" } };
const BAR_WIDTH = 24;

interface JobView {
	id: string;
	ownerName: string;
	source: { type: string };
	status: string;
	total: number;
	processed: number;
	succeeded: number;
	duplicates: number;
	failed: number;
	cancelled: number;
	rate: number | null;
	eta: number | null;
}

export function progressBar(done: number, total: number): string {
	const share = total > 0 ? Math.min(1, done / total) : 0;
	const filled = Math.round(share * BAR_WIDTH);
	return `[${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}] ${String(Math.floor(share * 100)).padStart(3)}%`;
}

function line(job: JobView): string {
	const counts = `${job.processed}/${job.total} ok ${job.succeeded} dup ${job.duplicates} failed ${job.failed}` + (job.cancelled ? ` dropped ${job.cancelled}` : "");
	const speed = job.rate === null ? "" : ` ${job.rate}/s` + (job.eta ? ` eta ${job.eta}s` : "");
	return `${job.id}  ${job.ownerName.padEnd(12)} ${job.source.type.padEnd(12)} ${job.status.padEnd(21)} ${progressBar(job.processed + job.cancelled, job.total)} ${counts}${speed}`;
}

interface ReplArgs {
	action?: string;
	id?: string;
}

export default [
	{
		command: "imports [action] [id]",
		description: "Import jobs: list them (with progress), or `cancel <id>` / `retry <id>`",
		async action(broker: ServiceBroker, args: ReplArgs) {
			const { action, id } = args;
			if (action === undefined || action === "list") {
				const page = await broker.call<{ items: JobView[]; total: number }, object>("imports.list", { limit: 100 }, { meta: OPERATOR });
				if (page.items.length === 0) return console.log("No import jobs.");
				for (const job of page.items) console.log(line(job));
				if (page.total > page.items.length) console.log(`(${page.total - page.items.length} older jobs not shown)`);
				return;
			}
			if ((action === "cancel" || action === "retry") && id) {
				const result = await broker.call<{ job: JobView; requeued?: number }, object>(`imports.${action}`, { id }, { meta: OPERATOR });
				console.log(line(result.job) + (result.requeued === undefined ? "" : `  (${result.requeued} item(s) re-queued)`));
				return;
			}
			console.log("Usage: imports | imports cancel <id> | imports retry <id>");
		}
	}
];
