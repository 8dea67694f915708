/**
 * REPL `storage rotate-keys`: re-wraps every encrypted image's data key after a master key change.
 * REPL `storage scrub [--after <key>] [--rate <MiB/s>]`: verifies every blob (plain: its SHA-256;
 * encrypted: every chunk), batch by batch through `storage.scrub`, printing after each batch the
 * command that continues after the last blob checked, and at the end the corrupt ones.
 * REPL `storage gc [--dry-run]`: runs a garbage collection of bytes on a storage node
 * (`storage.gc`), printing its progress every second and then what it reclaimed (or would have).
 * REPL `storage migrate --to fs|gridfs|s3 [--dry-run] [--rate <MiB/s>]`: copies every blob of a
 * storage node's backend into another one (`storage.migrate`; S3: the bucket its S3_* variables
 * name), printing its progress every second; run it again to resume one that stopped.
 */
import type { ServiceBroker } from "moleculer";
import { UsageError, type ReplArgs, type ReplCommand } from "../cluster/repl-commands.ts";
import type { GcReport } from "../models/storage/gc-report.ts";
import { MIGRATION_TARGETS, type MigrationTarget } from "../models/backends.ts";
import type { MigrationReport } from "../models/storage/migration-report.ts";

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
	if (!(mibPerSecond > 0) || mibPerSecond * MIB < 1024) throw new UsageError("--rate takes MiB per second, e.g. --rate 16");
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

const PROGRESS_MS = 1000;

function gcCounts(report: GcReport): string {
	return `${report.refsChecked} reference(s) checked, ${report.refsReleased} released`;
}

function storageNode(broker: ServiceBroker): string {
	const nodeID = broker.registry.getServiceList({ onlyAvailable: true }).find(service => service.name === "storage")?.nodeID;
	if (!nodeID) throw new Error("no storage node is up");
	return nodeID;
}

/**
 * Calls `action` on `nodeID` without a timeout, printing `progress(running)` every second from
 * `statusAction` asked of the same node (a long run happens on the node that got the call, and
 * each node knows only its own).
 */
async function withProgress<T, Status>(
	broker: ServiceBroker,
	nodeID: string,
	call: { action: string; params: object },
	statusAction: string,
	progress: (running: Status) => string
): Promise<T> {
	const timer = setInterval(() => {
		broker.call<{ running: Status | null }, object>(statusAction, {}, { nodeID }).then(
			({ running }) => running && console.log(`... ${progress(running)}`),
			() => undefined
		);
	}, PROGRESS_MS);
	try {
		return await broker.call<T, object>(call.action, call.params, { nodeID, timeout: 0 });
	} finally {
		clearInterval(timer);
	}
}

/** One garbage collection, on one storage node. */
async function gc(broker: ServiceBroker, dryRun: boolean): Promise<void> {
	const nodeID = storageNode(broker);
	const report = await withProgress<GcReport, GcReport>(broker, nodeID, { action: "storage.gc", params: { dryRun } }, "storage.gcStatus", gcCounts);
	const reclaimed = `${report.blobsDeleted} blob(s) deleted, ${mib(report.bytesReclaimed)} reclaimed`;
	const summary = dryRun ? `Dry run on ${nodeID}: ${gcCounts(report)} (would be), ${reclaimed} (would be)` : `Collected on ${nodeID}: ${gcCounts(report)}, ${reclaimed}, ${report.tempFilesRemoved} temp file(s) removed`;
	console.log(summary);
	if (report.errors.length) console.log(`stopped early: ${report.errors.join("; ")}`);
}

function migrationCounts(report: MigrationReport): string {
	return `${report.blobs} blob(s) gone through, ${report.copied} copied (${mib(report.bytesCopied)}), ${report.skipped} already there, ${report.failed.length} failed`;
}

/** One migration of a storage node's blobs into `to`. */
async function migrate(broker: ServiceBroker, to: unknown, dryRun: boolean, bytesPerSecond: number | undefined): Promise<void> {
	if (!MIGRATION_TARGETS.includes(to as MigrationTarget)) throw new UsageError(`storage migrate takes --to ${MIGRATION_TARGETS.join("|")} (s3: the bucket the S3_* variables name on the storage node)`);
	const nodeID = storageNode(broker);
	const params = { to, dryRun, ...(bytesPerSecond ? { bytesPerSecond } : {}) };
	const report = await withProgress<MigrationReport, MigrationReport>(broker, nodeID, { action: "storage.migrate", params }, "storage.migrateStatus", migrationCounts);
	console.log(`${dryRun ? "Dry run" : "Migrated"} to ${to} on ${nodeID}: ${migrationCounts(report)}${dryRun ? " (would be)" : ""}`);
	if (report.failed.length) console.table(report.failed);
	if (report.errors.length) console.log(`stopped early: ${report.errors.join("; ")}; run it again to resume`);
	else if (!dryRun && !report.failed.length) console.log(`Every blob is on ${to}: restart the storage node(s) with STORAGE=${to}.`);
}

async function run(broker: ServiceBroker, args: ReplArgs): Promise<void> {
	const { after, rate, dryRun, to } = args.options;
	if (args.op !== "gc" && args.op !== "migrate" && dryRun !== undefined) throw new UsageError("--dry-run is for storage gc and storage migrate");
	if (args.op !== "scrub" && after !== undefined) throw new UsageError("--after is for storage scrub");
	if (args.op !== "scrub" && args.op !== "migrate" && rate !== undefined) throw new UsageError("--rate is for storage scrub and storage migrate");
	if (args.op !== "migrate" && to !== undefined) throw new UsageError("--to is for storage migrate");
	switch (args.op) {
		case "rotate-keys":
			return rotateKeys(broker);
		case "scrub":
			if (after !== undefined && typeof after !== "string") throw new UsageError("--after takes the key a scrub printed, to continue after it");
			return scrub(broker, after, rateOf(rate));
		case "gc":
			return gc(broker, dryRun === true);
		case "migrate":
			return migrate(broker, to, dryRun === true, rateOf(rate));
	}
	throw new UsageError();
}

const commands: ReplCommand[] = [
	{
		command: "storage [op]",
		description:
			"storage rotate-keys: after STORAGE_MASTER_KEY changed (old key in STORAGE_OLD_MASTER_KEYS), re-wrap every data key; storage scrub: verify every blob; storage gc: reclaim unused bytes; storage migrate: copy every blob to another backend",
		usage: [
			"storage rotate-keys",
			"storage scrub [--after <key>] [--rate <MiB/s>]   (verify every blob; --rate defaults to 16 MiB/s)",
			"storage gc [--dry-run]   (reclaim bytes no image uses, older than GC_GRACE_MS; --dry-run only counts them)",
			"storage migrate --to fs|gridfs|s3 [--dry-run] [--rate <MiB/s>]   (copy every blob to another backend, s3: the S3_* bucket; --rate defaults to 64 MiB/s; run again to resume)"
		],
		options: [
			{ option: "--dry-run", description: "storage gc: count what would be reclaimed, reclaim nothing; storage migrate: count what would be copied, copy nothing" },
			{ option: "--to [backend]", description: "storage migrate: the backend to copy into (fs, gridfs or s3)" },
			{ option: "--after [key]", description: "storage scrub: continue after this key (printed by an earlier scrub)" },
			{ option: "--rate [MiB/s]", description: "storage scrub, storage migrate: read at most this many MiB per second (default 16, 64)" }
		],
		action: run
	}
];

export default commands;
