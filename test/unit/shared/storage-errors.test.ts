/**
 * Which failures mean "storage is exhausted" (answered 507) and which are transient (the pipeline
 * retries them): the real errors each backend throws, and the forms they take after crossing the
 * transporter (a plain error keeping name, code, type and retryable).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { Errors } from "moleculer";
import { errorResponse } from "../../../models/http/request.ts";
import { InsufficientStorageError, InvalidImageError, isTransient, NotFoundError, storageExhaustionOf, UnavailableError } from "../../../models/shared/errors.ts";

function errno(code: string, message: string): NodeJS.ErrnoException {
	return Object.assign(new Error(`${code}: ${message}, write`), { code, errno: -28, syscall: "write" });
}

/** A real SQLITE_FULL: a database whose page count is capped, filled past it. */
function sqliteFull(): unknown {
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-full-"));
	const db = new DatabaseSync(join(dir, "full.db"));
	try {
		db.exec("PRAGMA max_page_count = 8; CREATE TABLE t (x BLOB)");
		for (;;) db.prepare("INSERT INTO t VALUES (randomblob(4096))").run();
	} catch (err) {
		return err;
	} finally {
		db.close();
		rmSync(dir, { recursive: true, force: true });
	}
}

describe("storage exhaustion", () => {
	const exhausted: [string, unknown][] = [
		["ENOSPC from the file system", errno("ENOSPC", "no space left on device")],
		["EDQUOT, a user's disk quota", errno("EDQUOT", "disk quota exceeded")],
		["SQLite's SQLITE_FULL", sqliteFull()],
		["MongoDB's OutOfDiskSpace", Object.assign(new Error("Out of disk space"), { name: "MongoServerError", code: 14031, codeName: "OutOfDiskSpace" })],
		["a hosted MongoDB's space quota", Object.assign(new Error("you are over your space quota, using 513 MB of 512 MB"), { name: "MongoServerError", code: 8000 })],
		["the typed error after the transporter", { name: "InsufficientStorageError", message: "x", code: 507, type: "INSUFFICIENT_STORAGE" }]
	];
	for (const [label, err] of exhausted) {
		it(`recognises ${label}, answered 507 without the backend's words`, () => {
			const typed = storageExhaustionOf(err);
			assert.ok(typed instanceof InsufficientStorageError, String(err));
			const { status, body } = errorResponse(err as Error);
			assert.equal(status, 507);
			assert.equal(body.type, "INSUFFICIENT_STORAGE");
			assert.equal(body.message, "The server is out of storage space, so nothing was stored; try again later");
			assert.ok(isTransient(err), "and it is transient");
		});
	}

	it("leaves other failures alone", () => {
		for (const err of [errno("ENOENT", "no such file"), new NotFoundError("Image", "x"), new Error("VipsJpeg: Corrupt JPEG data"), null, undefined]) {
			assert.equal(storageExhaustionOf(err), null, String(err));
		}
	});
});

describe("transient failures", () => {
	it("are I/O errors, busy or lost resources, backends away, timeouts and missing nodes", () => {
		const transient = [
			errno("EIO", "i/o error"),
			errno("EAGAIN", "resource temporarily unavailable"),
			errno("ECONNRESET", "socket hang up"),
			new UnavailableError("The image metadata store is unavailable"),
			new Errors.RequestTimeoutError({ action: "storage.put", nodeID: "node-1" }),
			new Errors.ServiceNotAvailableError({ action: "storage.put" }),
			{ name: "UnavailableError", message: "x", code: 503, type: "SERVICE_UNAVAILABLE", retryable: true }
		];
		for (const err of transient) assert.ok(isTransient(err), String(err));
	});

	it("are not an undecodable image, a missing thing or a refused request", () => {
		const permanent = [new Error("VipsJpeg: Corrupt JPEG data: premature end of data segment"), new InvalidImageError("truncated"), new NotFoundError("Blob", "k"), errno("ENOENT", "no such file"), new Errors.ValidationError("bad")];
		for (const err of permanent) assert.equal(isTransient(err), false, String(err));
	});
});
