/**
 * REPL `storage rotate-keys`: re-wraps every encrypted image's data key after a master key change.
 * REPL `storage scrub [--after <key>] [--rate <MiB/s>]`: verifies every blob (plain: its SHA-256;
 * encrypted: every chunk), batch by batch through `storage.scrub`, printing after each batch the
 * command that continues after the last blob checked, and at the end the corrupt ones.
 * REPL `storage gc [--dry-run]`: runs a garbage collection of bytes on a storage node
 * (`storage.gc`), printing its progress every second and then what it reclaimed (or would have).
 */
import type { ServiceBroker } from "moleculer";
import { UsageError, type ReplArgs, type ReplCommand } from "../cluster/repl-commands.ts";
import type { GcReport } from "../models/storage/gc-report.ts";

interface RotateReport {
	rewrapped: number;
	failed: { key: string; error: string }[];
}

interface ScrubReport {
	checked: number;
	bytes: number;
	corrupt: { key: string; error: string }[];
	next: string | null;
}

const MIB = 1024 * 1024;

const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

async function rotateKeys(broker: ServiceBroker): Promise<void> {
	const report = await broker.call<RotateReport, object>("storage.rotateKeys", {}, { timeout: 0 });
	console.log(`re-wrapped ${report.rewrapped} data key(s); ${report.failed.length} failed`);
	if (report.failed.length) console.table(report.failed);
}

/** --rate in MiB/s (fractions allowed) as bytes per second; undefined: the action's default. */
function rateOf(rate: unknown): number | undefined {
	if (rate === undefined) return undefined;
	const mibPerSecond = typeof rate === "string" ? Number(rate) : NaN;
	if (!(mibPerSecond > 0) || mibPerSecond * MIB < 1024) throw new UsageError("--rate takes MiB per second, e.g. --rate 16 (the default)");
	return Math.round(mibPerSecond * MIB);
}

async function scrub(broker: ServiceBroker, after: string | undefined, bytesPerSecond: number | undefined): Promise<void> {
	const total: ScrubReport = { checked: 0, bytes: 0, corrupt: [], next: after ?? null };
	// On a terminal the progress line is rewritten in place; piped output gets one line per batch.
	const tty = process.stdout.isTTY;
	do {
		const params = { ...(total.next ? { after: total.next } : {}), ...(bytesPerSecond ? { bytesPerSecond } : {}) };
		let report: ScrubReport;
		try {
			report = await broker.call<ScrubReport, object>("storage.scrub", params, { timeout: 0 });
		} catch (err) {
			if (tty) process.stdout.write("\n");
			if (total.next) console.log(`stopped; to continue: storage scrub --after ${total.next}`);
			throw err;
		}
		total.checked += report.checked;
		total.bytes += report.bytes;
		total.corrupt.push(...report.corrupt);
		total.next = report.next;
		const progress = `checked ${total.checked} blob(s), ${mib(total.bytes)}, ${total.corrupt.length} corrupt`;
		const line = total.next ? `${progress}; to continue later: storage scrub --after ${total.next}` : progress;
		if (tty) process.stdout.write(`\r${line}\x1b[K`);
		else if (total.next) console.log(line);
	} while (total.next);
	if (tty) process.stdout.write("\n");
	console.log(`Scrubbed ${total.checked} blob(s), ${mib(total.bytes)}: ${total.corrupt.length || "none"} corrupt`);
	if (total.corrupt.length) console.table(total.corrupt);
}

const GC_PROGRESS_MS = 1000;

function gcCounts(report: GcReport): string {
	return `${report.refsChecked} reference(s) checked, ${report.refsReleased} released`;
}

/**
 * One garbage collection, on one storage node: the progress is asked of the node that runs it (a
 * collection runs on the node that got the call, and each node knows only its own).
 */
async function gc(broker: ServiceBroker, dryRun: boolean): Promise<void> {
	const nodeID = broker.registry.getServiceList({ onlyAvailable: true }).find(service => service.name === "storage")?.nodeID;
	if (!nodeID) throw new Error("no storage node is up");
	const progress = setInterval(() => {
		broker.call<{ running: GcReport | null }, object>("storage.gcStatus", {}, { nodeID }).then(
			({ running }) => running && console.log(`... ${gcCounts(running)}`),
			() => undefined
		);
	}, GC_PROGRESS_MS);
	let report: GcReport;
	try {
		report = await broker.call<GcReport, object>("storage.gc", { dryRun }, { nodeID, timeout: 0 });
	} finally {
		clearInterval(progress);
	}
	const reclaimed = `${report.blobsDeleted} blob(s) deleted, ${mib(report.bytesReclaimed)} reclaimed`;
	const summary = dryRun ? `Dry run on ${nodeID}: ${gcCounts(report)} (would be), ${reclaimed} (would be)` : `Collected on ${nodeID}: ${gcCounts(report)}, ${reclaimed}, ${report.tempFilesRemoved} temp file(s) removed`;
	console.log(summary);
	if (report.errors.length) console.log(`stopped early: ${report.errors.join("; ")}`);
}

async function run(broker: ServiceBroker, args: ReplArgs): Promise<void> {
	const { after, rate, dryRun } = args.options;
	if (args.op !== "gc" && dryRun !== undefined) throw new UsageError("--dry-run is for storage gc");
	if (args.op !== "scrub" && (after !== undefined || rate !== undefined)) throw new UsageError("--after and --rate are for storage scrub");
	switch (args.op) {
		case "rotate-keys":
			return rotateKeys(broker);
		case "scrub":
			if (after !== undefined && typeof after !== "string") throw new UsageError("--after takes the key a scrub printed, to continue after it");
			return scrub(broker, after, rateOf(rate));
		case "gc":
			return gc(broker, dryRun === true);
	}
	throw new UsageError();
}

const commands: ReplCommand[] = [
	{
		command: "storage [op]",
		description:
			"storage rotate-keys: after STORAGE_MASTER_KEY changed (old key in STORAGE_OLD_MASTER_KEYS), re-wrap every data key; storage scrub: verify every blob; storage gc: reclaim unused bytes",
		usage: [
			"storage rotate-keys",
			"storage scrub [--after <key>] [--rate <MiB/s>]   (verify every blob; --rate defaults to 16 MiB/s)",
			"storage gc [--dry-run]   (reclaim bytes no image uses, older than GC_GRACE_MS; --dry-run only counts them)"
		],
		options: [
			{ option: "--dry-run", description: "storage gc: count what would be reclaimed, reclaim nothing" },
			{ option: "--after [key]", description: "storage scrub: continue after this key (printed by an earlier scrub)" },
			{ option: "--rate [MiB/s]", description: "storage scrub: read at most this many MiB per second (default 16)" }
		],
		action: run
	}
];

export default commands;
