/**
 * The report of one migration between blob backends (blob-migrator.ts): what the storage service
 * keeps as its last run, and what `GET /api/admin/storage/migrate` and the REPL show while it runs.
 */

export interface MigrationReport {
	/** The target backend. */
	to: string;
	startedAt: string;
	/** Null while the run is under way. */
	finishedAt: string | null;
	dryRun: boolean;
	/** Blobs of the source gone through so far. */
	blobs: number;
	/** Blobs copied (in a dry run: that would be). */
	copied: number;
	/** Plaintext bytes of the copied blobs. */
	bytesCopied: number;
	/** Blobs the target had already, sound: their references were added, their bytes not copied again. */
	skipped: number;
	/** Blobs left behind, with the reason (corrupt at the source, or a copy that failed its check). */
	failed: { key: string; error: string }[];
	/** Why the run stopped early, if it did: run it again to resume. */
	errors: string[];
}

export function newMigrationReport(to: string, dryRun: boolean): MigrationReport {
	return { to, startedAt: new Date().toISOString(), finishedAt: null, dryRun, blobs: 0, copied: 0, bytesCopied: 0, skipped: 0, failed: [], errors: [] };
}
