/**
 * Migration between blob backends (`storage migrate --to fs|gridfs|s3`): copies every blob of the current
 * store (originals, renditions, cached variants: whatever holds a reference) into the target
 * store under the same key, with all its references and their times, through the target's
 * `importBlob`, which verifies each copy by SHA-256 before it becomes visible. The source is
 * only read. A blob the target already has is skipped, so a run stopped anywhere (a crash, an
 * unreachable backend) is resumed by running it again.
 */
import { pipeline, Transform, type TransformCallback } from "node:stream";
import type { BlobStore, ImportedBlob } from "./blob-store.ts";
import type { MigrationReport } from "./migration-report.ts";
import { IntegrityError, NotFoundError } from "../shared/errors.ts";

export interface MigrationOptions {
	/** Only count what would be copied; write nothing. */
	dryRun: boolean;
	/** References listed per page of the source's listing. */
	batch: number;
	/** Awaited after every piece read from the source with its length: how the caller limits the rate. */
	pace(bytes: number): Promise<void>;
}

/** Later than any reference's time: the listing of references then lists every one. */
const EVERY_REF = new Date(8.64e15);

/** A blob of the source as its references list it. */
interface ListedBlob {
	key: string;
	size: number;
	refs: ImportedBlob["refs"];
}

/** Passes the bytes on, awaiting `pace` for each piece: the migration's throttle. */
function paced(pace: (bytes: number) => Promise<void>): Transform {
	return new Transform({
		transform(piece: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
			pace(piece.length).then(() => callback(null, piece), callback);
		}
	});
}

/**
 * Every blob of `source` with its references, in key order: the listing of references (in (key,
 * ref) order) grouped by key. A blob's references may span two pages: a group is only handed out
 * once the next key starts, or the listing ends.
 */
async function* listedBlobs(source: BlobStore, batch: number): AsyncGenerator<ListedBlob> {
	let pending = null as ListedBlob | null;
	let after: { key: string; ref: string } | undefined;
	do {
		const page = await source.listRefs({ olderThan: EVERY_REF, limit: batch, ...(after ? { after } : {}) });
		for (const { key, ref, addedAt, size } of page.refs) {
			if (pending?.key !== key) {
				if (pending) yield pending;
				pending = { key, size, refs: [] };
			}
			pending.refs.push({ ref, addedAt });
		}
		after = page.next ?? undefined;
	} while (after);
	if (pending) yield pending;
}

/**
 * Copies every blob of `source` into `target`, counting into `report` as it goes (the REPL and the
 * admin GET show it while it runs). A blob that cannot be copied sound (corrupt at the source, or
 * a copy that failed its check) is listed and skipped: one bad blob does not stop the rest. Any
 * other failure (a backend out of reach) ends the run, listed in `report.errors` by the caller.
 */
export async function migrateBlobs(source: BlobStore, target: BlobStore, options: MigrationOptions, report: MigrationReport): Promise<void> {
	for await (const blob of listedBlobs(source, options.batch)) {
		const outcome = await migrateOne(source, target, blob, options);
		if (outcome === "gone") continue;
		report.blobs++;
		if (outcome === "copied") {
			report.copied++;
			report.bytesCopied += blob.size;
		} else if (outcome === "skipped") report.skipped++;
		else report.failed.push({ key: blob.key, error: outcome.failed });
	}
}

type Outcome = "copied" | "skipped" | "gone" | { failed: string };

/** One blob: copied, already on the target, released at the source since it was listed, or failed (why). */
async function migrateOne(source: BlobStore, target: BlobStore, blob: ListedBlob, options: MigrationOptions): Promise<Outcome> {
	const info = await source.stat(blob.key);
	if (!info) return "gone";
	if (info.corruptAt) return { failed: `corrupt at the source since ${info.corruptAt}` };
	if (options.dryRun) {
		const there = await target.stat(blob.key);
		return there && !there.corruptAt && there.size === info.size ? "skipped" : "copied";
	}
	const imported: ImportedBlob = { encrypted: info.encrypted, size: info.size, refs: blob.refs };
	try {
		const result = await target.importBlob(blob.key, async () => pipeline(await source.open(blob.key), paced(options.pace), () => {}), imported);
		return result.copied ? "copied" : "skipped";
	} catch (err) {
		if (err instanceof NotFoundError) return "gone";
		if (err instanceof IntegrityError) return { failed: err.message };
		throw err;
	}
}
