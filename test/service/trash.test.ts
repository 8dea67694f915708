/** The trash on the embedded backends: SQLite and blob files (test/service/trash.suite.ts). */
import { join } from "node:path";
import { findFilesContaining } from "../helpers/jobs.ts";
import { trashSuite } from "./trash.suite.ts";

trashSuite("SQLite + files", {
	env: () => ({}),
	// A slice from the middle of the bytes (headers, such as JPEG's standard tables, are alike in
	// many files): plain blobs are stored as they came.
	copiesOf: async (server, bytes) => {
		const middle = Math.floor(bytes.length / 2);
		return findFilesContaining(join(server.dataDir, "blobs"), bytes.subarray(middle, middle + 64)).length;
	}
});
