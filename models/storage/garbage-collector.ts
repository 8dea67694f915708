/**
 * Garbage collection of bytes: a mark and sweep over the blob store's references. Every reference
 * names its owner (an image's original or rendition, a transform node's cached variant); a
 * reference last added before the grace period whose owner no longer uses that blob is dropped,
 * and a blob goes with its last reference. What leaves such references behind: a crash between
 * storing an upload's bytes and inserting its image, a DELETE whose releases failed half-way, a
 * worker killed after storing renditions (the rerun stores another set; encrypted blobs never
 * share a key).
 *
 * Safe while everything else runs, on every backend:
 * - work in flight is younger than the grace period (an upload's put and its insert, a worker's
 *   puts and the pipeline's record of them take seconds), so its references are not even listed;
 * - a reference re-added after it was listed (a rerun re-holding the same bytes) is kept by
 *   `releaseStale`, which drops it only while it is still older than the cutoff;
 * - two collectors at once (on two nodes) judge the same references alike, and the second
 *   release of a reference finds nothing to drop.
 * References that no owner can judge are left alone.
 */
import type { BlobStore, RefCursor, RefEntry } from "./blob-store.ts";
import type { GcReport } from "./gc-report.ts";

export interface GcOptions {
	/** The end of the grace period: only references last added before it are judged. */
	olderThan: Date;
	dryRun: boolean;
	/** References listed and judged per round. */
	batch: number;
	/** Whether some owner can judge this reference; the others are left alone. */
	isJudged(ref: string): boolean;
	/** For each reference, whether its owner still uses that blob. */
	held(refs: RefEntry[]): Promise<boolean[]>;
	/** Hears the report, updated in place, after every round. */
	onProgress?(report: GcReport): void;
}


/** Runs one collection over the whole store, counting into `report`; throws on the first failure. */
export async function collectGarbage(store: BlobStore, options: GcOptions, report: GcReport): Promise<void> {
	// Dry run: per blob, how many of its references would go, to tell which blobs would.
	const wouldDrop = new Map<string, { refs: number; size: number }>();
	let after: RefCursor | undefined;
	do {
		const page = await store.listRefs({ ...(after ? { after } : {}), olderThan: options.olderThan, limit: options.batch });
		const judged = page.refs.filter(entry => options.isJudged(entry.ref));
		const held = judged.length > 0 ? await options.held(judged) : [];
		report.refsChecked += judged.length;
		for (const entry of judged.filter((_, i) => !held[i])) {
			if (options.dryRun) {
				const tally = wouldDrop.get(entry.key) ?? { refs: 0, size: entry.size };
				wouldDrop.set(entry.key, { ...tally, refs: tally.refs + 1 });
				report.refsReleased++;
				continue;
			}
			const { released, deleted } = await store.releaseStale(entry.key, entry.ref, options.olderThan);
			if (released) report.refsReleased++;
			if (deleted) {
				report.blobsDeleted++;
				report.bytesReclaimed += entry.size;
			}
		}
		options.onProgress?.(report);
		after = page.next ?? undefined;
	} while (after);
	if (options.dryRun) {
		for (const [key, { refs, size }] of wouldDrop) {
			if ((await store.stat(key))?.refs !== refs) continue;
			report.blobsDeleted++;
			report.bytesReclaimed += size;
		}
	} else {
		report.tempFilesRemoved = await store.sweepUnfinished(options.olderThan);
	}
}
