/**
 * DATA_DIR holds password hashes (users.db), every image's metadata, import jobs and the
 * generated secrets: it is for the node's own user only. New files get that through the umask
 * (SQLite creates its -wal and -shm files itself, with no say in their mode); what an older
 * version created readable by everyone is closed at start.
 */
import { chmodSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { isMainThread } from "node:worker_threads";

/** No permission bits for group and others on anything the process creates. */
const PRIVATE_UMASK = 0o077;
const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;

/**
 * What imgmesh keeps at DATA_DIR's top level: SQLite databases (with their -wal, -shm and
 * -journal files), secrets.json, the blob store and temporary files. Only these are touched: a
 * DATA_DIR pointed at a directory that holds other things keeps their modes.
 */
const OWN_FILE = /^(?:[a-z]+\.db(?:-wal|-shm|-journal)?|secrets\.json)$/;
const OWN_DIRS = new Set(["blobs", "tmp"]);

/**
 * Creates DATA_DIR (or closes an existing one) for this user only. Only its top level is fixed:
 * once DATA_DIR is 0700 nobody else can reach anything below it, and walking every blob at each
 * start would cost time in proportion to the library.
 */
export function prepareDataDir(dataDir: string): void {
	// Worker threads cannot set the umask; they share the main thread's, set before they start.
	if (isMainThread) process.umask(PRIVATE_UMASK);
	mkdirSync(dataDir, { recursive: true, mode: PRIVATE_DIR });
	chmodSync(dataDir, PRIVATE_DIR);
	for (const entry of readdirSync(dataDir, { withFileTypes: true })) {
		if (entry.isDirectory() && OWN_DIRS.has(entry.name)) chmodSync(join(dataDir, entry.name), PRIVATE_DIR);
		else if (entry.isFile() && OWN_FILE.test(entry.name)) chmodSync(join(dataDir, entry.name), PRIVATE_FILE);
	}
}
