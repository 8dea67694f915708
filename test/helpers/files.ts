/** Looking at what a node left on disk. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Files under `dir` (recursively) whose bytes contain `needle`. */
export function findFilesContaining(dir: string, needle: Buffer): string[] {
	return readdirSync(dir, { recursive: true, withFileTypes: true })
		.filter(entry => entry.isFile())
		.map(entry => join(entry.parentPath, entry.name))
		.filter(path => readFileSync(path).includes(needle));
}
