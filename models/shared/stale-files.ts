/**
 * Temp files a crash left behind: a process deletes its own temp files when it is done with them,
 * so one that has not been written to for longer than any upload or download takes belongs to a
 * process that died. Sweeping by age rather than by emptying the directory keeps it safe while
 * the same directory is in use.
 */
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";

/** Deletes the files directly in `dir` last modified before `olderThan`; returns how many. */
export async function removeFilesOlderThan(dir: string, olderThan: Date): Promise<number> {
	let entries;
	try {
		entries = await readdir(dir, { withFileTypes: true });
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
		throw err;
	}
	let removed = 0;
	for (const entry of entries) {
		if (!entry.isFile()) continue;
		const path = join(dir, entry.name);
		// Gone meanwhile: its owner finished with it.
		const modified = await stat(path).then(info => info.mtimeMs, () => null);
		if (modified === null || modified >= olderThan.getTime()) continue;
		await rm(path, { force: true });
		removed++;
	}
	return removed;
}
