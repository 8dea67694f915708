/**
 * The report of one garbage collection of bytes (garbage-collector.ts): what the storage service
 * keeps as its last run, the REPL prints and the web app's Jobs page shows. The web app imports
 * it (type-only) and compiles this file without Node's types: import nothing here that needs them.
 */

/** What one run did (in a dry run: what it would have done, temp files aside). */
export interface GcReport {
	startedAt: string;
	/** Null while the run is under way. */
	finishedAt: string | null;
	dryRun: boolean;
	/** References past the grace period that their owner was asked about. */
	refsChecked: number;
	/** References dropped: their owner no longer uses the blob. */
	refsReleased: number;
	/** Blobs deleted with their last reference. */
	blobsDeleted: number;
	/** Plaintext bytes of the deleted blobs. */
	bytesReclaimed: number;
	/** Leftovers of unfinished uploads deleted (temp files, chunks of no blob); 0 in a dry run. */
	tempFilesRemoved: number;
	/** Why the run stopped early, if it did. */
	errors: string[];
}

export function newGcReport(dryRun: boolean): GcReport {
	return {
		startedAt: new Date().toISOString(),
		finishedAt: null,
		dryRun,
		refsChecked: 0,
		refsReleased: 0,
		blobsDeleted: 0,
		bytesReclaimed: 0,
		tempFilesRemoved: 0,
		errors: []
	};
}
