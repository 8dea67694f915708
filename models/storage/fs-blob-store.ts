/**
 * BlobStore on the local file system (embedded and single-node mode).
 *
 * Layout under `root`:
 *   blobs.db           references: which refs (image ids) hold which blob since when, and which
 *                      blobs a read or a scrub found corrupt (node:sqlite)
 *   tmp/               uploads in progress; emptied at start, as only a crash leaves files here
 *   <xx>/<key>         one file per blob, fanned out by the first two hex digits of its id
 *
 * A blob file appears by an fsynced rename, before its database row; it is deleted after its last
 * row. A crash in between leaves at most an unreferenced file (invisible; a later put of the same
 * bytes replaces it), never a row without its file.
 *
 * The per-key lock that keeps a put from interleaving with a release of the same key lives in
 * this process: one process, and one FsBlobStore, per root. Distributed deployments use a shared
 * backend instead.
 */
import { randomUUID } from "node:crypto";
import { constants, mkdirSync, rmSync } from "node:fs";
import { access, copyFile, type FileHandle, mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type {
	BlobInfo,
	BlobRef,
	BlobStore,
	ByteRange,
	ImportedBlob,
	ImportResult,
	ListRefsOptions,
	PutOptions,
	RefPage,
	RewrapReport,
	ScrubOptions,
	ScrubReport,
	StaleRelease
} from "./blob-store.ts";
import {
	blobIdOf,
	importedPlaintextCheck,
	isEncryptedKey,
	newEncryptedKey,
	PlaintextMeter,
	plainKey,
	rewrapEach,
	satisfiableRange,
	scrubKeys,
	sha256Of,
	verifiedPlaintext
} from "./blob-support.ts";
import {
	decryptRange,
	EnvelopeEncryptor,
	envelopeLength,
	type Envelope,
	HEADER_SIZE,
	type Keyring,
	needsRewrap,
	openEnvelope,
	rewrapHeader
} from "./envelope-crypto.ts";
import { listSqliteRefs } from "./sqlite-ref-list.ts";
import { CorruptBlobError, IntegrityError, NotFoundError } from "../shared/errors.ts";
import { KeyedLock } from "../shared/keyed-lock.ts";
import { removeFilesOlderThan } from "../shared/stale-files.ts";
import { closeDatabase, migrate, openDatabase, transaction } from "../db/sqlite.ts";

export interface FsBlobStoreOptions {
	root: string;
	keyring: Keyring;
	/**
	 * Opened to read only, by a node without the storage service on a shared disk: the temp files
	 * (uploads under way on the storage nodes) and the schema are left to the storage service.
	 */
	readOnly?: boolean;
}

/** Schema versions, in order (see migrate). Append; never edit a released step. */
const MIGRATIONS = [
	`CREATE TABLE blobs (
		key TEXT PRIMARY KEY,
		sha256 TEXT NOT NULL,
		size INTEGER NOT NULL,
		encrypted INTEGER NOT NULL
	) STRICT;
	CREATE TABLE refs (
		key TEXT NOT NULL REFERENCES blobs (key) ON DELETE CASCADE,
		ref TEXT NOT NULL,
		PRIMARY KEY (key, ref)
	) STRICT, WITHOUT ROWID;`,
	// When a read or a scrub found the blob's bytes changed (ISO time); NULL while sound.
	`ALTER TABLE blobs ADD COLUMN corrupt_at TEXT;`,
	// When each reference was last added (ms since the epoch), where the garbage collector's grace
	// period starts. References older than this step count from the step: later, never earlier.
	`ALTER TABLE refs ADD COLUMN added_at INTEGER NOT NULL DEFAULT 0;
	UPDATE refs SET added_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;`
];

/**
 * Largest read of a blob file: twice Node's 64 KiB, so half the thread-pool round trips, buffers
 * and socket writes per download, yet under the MALLOC_MMAP_THRESHOLD_ (128 KiB) that `npm start`
 * sets, so each read buffer comes from malloc's heap and is reused: a larger one is mapped and
 * zeroed by the kernel for every read, which measured slower than 64 KiB (0.61 against 0.55 ms
 * of CPU per 425 kB file; 124 KiB: 0.48).
 */
const READ_CHUNK = 124 * 1024;

/**
 * Reads of `bytes` at most READ_CHUNK each, sized to the bytes expected: a read buffer larger
 * than what the file holds would be allocated, then copied to the size read.
 */
function readChunk(bytes: number): number {
	return Math.max(1, Math.min(READ_CHUNK, bytes));
}

/** Later than any reference's time: `release` drops a reference whenever it was added. */
const ANY_TIME = Number.MAX_SAFE_INTEGER;

interface BlobRow {
	sha256: string;
	size: number;
	encrypted: number;
	corrupt_at: string | null;
}

interface StagedUpload {
	tempPath: string;
	sha256: string;
	size: number;
}

async function fsyncDirectory(path: string): Promise<void> {
	const directory = await open(path, "r");
	try {
		await directory.sync();
	} finally {
		await directory.close();
	}
}

/** Flushes a written file to disk, first putting the envelope header (if any) at its start. */
async function makeDurable(path: string, header: Buffer | undefined): Promise<void> {
	const file = await open(path, "r+");
	try {
		if (header) await file.write(header, 0, header.length, 0);
		await file.sync();
	} finally {
		await file.close();
	}
}

export class FsBlobStore implements BlobStore {
	readonly #root: string;
	readonly #tmpDir: string;
	readonly #keyring: Keyring;
	readonly #db: DatabaseSync;
	readonly #locks = new KeyedLock();
	#blobRowStatement: StatementSync | undefined;
	/** blobs.db's write-ahead log, opened on the first durable commit (#durably). */
	#wal: Promise<FileHandle> | undefined;

	constructor(options: FsBlobStoreOptions) {
		this.#root = options.root;
		this.#tmpDir = join(options.root, "tmp");
		this.#keyring = options.keyring;
		// A reader may start before the storage node made the directory.
		mkdirSync(this.#root, { recursive: true });
		if (!options.readOnly) {
			rmSync(this.#tmpDir, { recursive: true, force: true });
			mkdirSync(this.#tmpDir);
		}
		this.#db = openDatabase(join(this.#root, "blobs.db"));
		// synchronous stays NORMAL: commits of references are made durable by #durably, off the
		// event loop; a lost corrupt mark (a reader's write) is found again by the next read.
		if (!options.readOnly) migrate(this.#db, "blobs", MIGRATIONS);
	}

	async put(source: Readable, options: PutOptions): Promise<BlobRef> {
		// An encrypted blob's key is random and its envelope is bound to it: chosen before the bytes.
		const encryptedKey = options.encrypt ? newEncryptedKey() : null;
		const staged = await this.#stage(source, options.maxBytes, encryptedKey);
		const key = encryptedKey ?? plainKey(staged.sha256);
		const blob: BlobRef = { key, sha256: staged.sha256, size: staged.size, encrypted: options.encrypt };
		await this.#locks.run(key, () => this.#commit(blob, staged.tempPath, [{ ref: options.ref, addedAt: new Date() }]));
		return blob;
	}

	async importBlob(key: string, openSource: () => Promise<Readable>, blob: ImportedBlob): Promise<ImportResult> {
		if (!this.#pathOf(key)) throw new IntegrityError(`Not a blob key: ${key}`);
		const present = this.#blobRow(key);
		if (present && !present.corrupt_at && present.size === blob.size) {
			await this.#locks.run(key, () => this.#durably(() => this.#addRefs(key, blob.refs)));
			return { copied: false };
		}
		const staged = await this.#stage(await openSource(), Number.MAX_SAFE_INTEGER, blob.encrypted ? key : null);
		try {
			importedPlaintextCheck(key, blob, staged);
			if ((await sha256Of(await this.#readStaged(staged.tempPath, key, blob.encrypted))) !== staged.sha256) {
				throw new IntegrityError(`The copy of blob ${key} read back from disk does not match what was sent`, { key });
			}
		} catch (err) {
			await rm(staged.tempPath, { force: true });
			throw err;
		}
		const stored: BlobRef = { key, sha256: staged.sha256, size: staged.size, encrypted: blob.encrypted };
		await this.#locks.run(key, () => this.#commit(stored, staged.tempPath, blob.refs));
		return { copied: true, sha256: staged.sha256 };
	}

	async open(key: string, range?: ByteRange): Promise<Readable> {
		const row = this.#blobRow(key);
		if (!row) throw new NotFoundError("Blob", key);
		if (row.corrupt_at) throw new CorruptBlobError(key, row.corrupt_at);
		let file: FileHandle;
		try {
			file = await this.#openBlobFile(key);
		} catch (err) {
			throw err instanceof NotFoundError ? await this.#lostFile(key, row) : err;
		}
		try {
			return isEncryptedKey(key) ? await this.#readEncrypted(file, key, range) : await this.#readPlain(file, key, row, range);
		} catch (err) {
			await file.close();
			throw err;
		}
	}

	async stat(key: string): Promise<BlobInfo | null> {
		const row = this.#db
			.prepare("SELECT size, encrypted, corrupt_at, (SELECT count(*) FROM refs WHERE refs.key = blobs.key) AS refs FROM blobs WHERE key = ?")
			.get(key) as { size: number; encrypted: number; corrupt_at: string | null; refs: number } | undefined;
		if (!row) return null;
		const info: BlobInfo = { key, size: row.size, encrypted: row.encrypted === 1, refs: row.refs };
		return row.corrupt_at ? { ...info, corruptAt: row.corrupt_at } : info;
	}

	async release(key: string, ref: string): Promise<boolean> {
		const path = this.#pathOf(key);
		if (!path) return true;
		return (await this.#dropRef(key, ref, path, ANY_TIME)).gone;
	}

	async releaseStale(key: string, ref: string, addedBefore: Date): Promise<StaleRelease> {
		const path = this.#pathOf(key);
		if (!path) return { released: false, deleted: false };
		const { released, gone } = await this.#dropRef(key, ref, path, addedBefore.getTime());
		return { released, deleted: released && gone };
	}

	async listRefs(options: ListRefsOptions): Promise<RefPage> {
		return listSqliteRefs(this.#db, { refs: "refs", blobs: "blobs" }, options);
	}

	async sweepUnfinished(olderThan: Date): Promise<number> {
		return removeFilesOlderThan(this.#tmpDir, olderThan);
	}

	async rewrapAll(): Promise<RewrapReport> {
		const rows = this.#db.prepare("SELECT key FROM blobs WHERE encrypted = 1").all() as { key: string }[];
		return rewrapEach(
			rows.map(row => row.key),
			key => this.#locks.run(key, () => this.#rewrap(key))
		);
	}

	async scrub(options: ScrubOptions): Promise<ScrubReport> {
		const rows = this.#db.prepare("SELECT key FROM blobs WHERE key > ? ORDER BY key LIMIT ?").all(options.after ?? "", options.limit + 1) as { key: string }[];
		return scrubKeys(
			rows.map(row => row.key),
			options,
			key => this.open(key)
		);
	}

	async ping(): Promise<boolean> {
		try {
			this.#db.prepare("SELECT 1").get();
			await access(this.#tmpDir, constants.W_OK);
			return true;
		} catch {
			return false;
		}
	}

	async close(): Promise<void> {
		if (this.#db.isOpen) closeDatabase(this.#db);
		const wal = this.#wal;
		this.#wal = undefined;
		await (await wal?.catch(() => undefined))?.close();
	}

	/**
	 * Runs `work` in a transaction that is on disk when the promise resolves. A lost commit of a
	 * reference could let a release delete bytes another image still uses, and the image row the
	 * caller writes next must never outlive its blob's row across a power cut (docs/storage.md).
	 * SQLite's synchronous = FULL gave that with an fsync inside COMMIT, on the event loop (0.5 ms
	 * at p50, 59 ms at p99 under load, and the top cost of an upload's main thread): here the
	 * commit is NORMAL's (the log written, not synced) and the log is then fsynced on the thread
	 * pool before the caller goes on, while the event loop serves other requests.
	 */
	async #durably<T>(work: () => T): Promise<T> {
		const result = transaction(this.#db, work);
		await (await this.#walHandle()).sync();
		return result;
	}

	/**
	 * The log file stays while this connection is open (SQLite removes it only when the last
	 * connection closes). NORMAL never syncs it before a checkpoint, so neither its directory
	 * entry: that is synced here once.
	 */
	#walHandle(): Promise<FileHandle> {
		this.#wal ??= (async () => {
			const wal = await open(join(this.#root, "blobs.db-wal"), "r");
			await fsyncDirectory(this.#root);
			return wal;
		})().catch(err => {
			this.#wal = undefined;
			throw err;
		});
		return this.#wal;
	}

	/** Streams the upload into a durable temp file; on any failure the temp file is gone. */
	async #stage(source: Readable, maxBytes: number, encryptedKey: string | null): Promise<StagedUpload> {
		const tempPath = join(this.#tmpDir, randomUUID());
		const meter = new PlaintextMeter(maxBytes);
		const encryptor = encryptedKey ? new EnvelopeEncryptor(this.#keyring, encryptedKey) : null;
		// Opened here rather than by the write stream, so the file exists before any failure can
		// happen and the cleanup below cannot run ahead of its creation. The stream owns the handle
		// from then on and closes it, on failure too.
		const file = await open(tempPath, "wx", 0o600);
		try {
			const sink = file.createWriteStream();
			await pipeline(encryptor ? [source, meter, encryptor, sink] : [source, meter, sink]);
			await makeDurable(tempPath, encryptor?.header);
		} catch (err) {
			await rm(tempPath, { force: true });
			throw err;
		}
		return { tempPath, ...meter.result() };
	}

	/** Makes a staged upload visible under its key and records the references. Runs under the key's lock. */
	async #commit(blob: BlobRef, tempPath: string, refs: ImportedBlob["refs"]): Promise<void> {
		try {
			// A corrupt blob is replaced by the staged copy, which the meter has just hashed: for a
			// plain blob the same key means the same bytes, so the upload is a good copy.
			const stored = this.#blobRow(blob.key);
			if (!stored || stored.corrupt_at) await this.#install(tempPath, this.#pathOf(blob.key)!);
			await this.#durably(() => {
				this.#db
					.prepare("INSERT OR IGNORE INTO blobs (key, sha256, size, encrypted) VALUES (?, ?, ?, ?)")
					.run(blob.key, blob.sha256, blob.size, blob.encrypted ? 1 : 0);
				if (stored?.corrupt_at) this.#db.prepare("UPDATE blobs SET corrupt_at = NULL WHERE key = ?").run(blob.key);
				this.#addRefs(blob.key, refs);
			});
		} finally {
			// Already renamed away when installed; the duplicate of a stored blob otherwise.
			await rm(tempPath, { force: true });
		}
	}

	/**
	 * Records each reference with its time (a put's is now: added again, the reference is in use
	 * now and its grace period starts over). Inside the caller's transaction.
	 */
	#addRefs(key: string, refs: ImportedBlob["refs"]): void {
		const upsert = this.#db.prepare("INSERT INTO refs (key, ref, added_at) VALUES (?, ?, ?) ON CONFLICT (key, ref) DO UPDATE SET added_at = excluded.added_at");
		for (const { ref, addedAt } of refs) upsert.run(key, ref, addedAt.getTime());
	}

	/** The plaintext of a staged file, as written to disk (decrypted when encrypted). */
	async #readStaged(tempPath: string, key: string, encrypted: boolean): Promise<Readable> {
		const file = await open(tempPath, "r");
		try {
			return encrypted ? await this.#readEncrypted(file, key, undefined) : file.createReadStream({ highWaterMark: READ_CHUNK });
		} catch (err) {
			await file.close();
			throw err;
		}
	}

	/**
	 * Drops `ref` from blob `key` if it was last added before `addedBefore` (ms), and the blob with
	 * its last reference. `gone`: no reference remains.
	 */
	#dropRef(key: string, ref: string, path: string, addedBefore: number): Promise<{ released: boolean; gone: boolean }> {
		return this.#locks.run(key, async () => {
			const result = await this.#durably(() => {
				const { changes } = this.#db.prepare("DELETE FROM refs WHERE key = ? AND ref = ? AND added_at < ?").run(key, ref, addedBefore);
				const released = Number(changes) > 0;
				const { remaining } = this.#db.prepare("SELECT count(*) AS remaining FROM refs WHERE key = ?").get(key) as { remaining: number };
				if (remaining > 0) return { released, gone: false };
				this.#db.prepare("DELETE FROM blobs WHERE key = ?").run(key);
				return { released, gone: true };
			});
			if (result.gone) await rm(path, { force: true });
			return result;
		});
	}

	/** Atomically moves a durable temp file to `path`, making the new directory entries durable too. */
	async #install(tempPath: string, path: string): Promise<void> {
		const directory = dirname(path);
		if (await mkdir(directory, { recursive: true })) await fsyncDirectory(this.#root);
		await rename(tempPath, path);
		await fsyncDirectory(directory);
	}

	async #rewrap(key: string): Promise<boolean> {
		if (!this.#hasBlob(key)) return false;
		const path = this.#pathOf(key)!;
		const file = await open(path, "r");
		let header: Buffer;
		try {
			header = await this.#readHeader(file);
		} finally {
			await file.close();
		}
		if (!needsRewrap(header, this.#keyring)) return false;
		// Rewritten in a copy renamed over the original: a torn write of the header in place would
		// lose the data key, and with it the image.
		const tempPath = join(this.#tmpDir, randomUUID());
		try {
			await copyFile(path, tempPath, constants.COPYFILE_FICLONE);
			await makeDurable(tempPath, rewrapHeader(header, this.#keyring, key));
			await this.#install(tempPath, path);
		} finally {
			await rm(tempPath, { force: true });
		}
		return true;
	}

	/**
	 * A range is read as stored: checking the hash takes every byte. A full read is verified, and
	 * a mismatch marks the blob corrupt.
	 */
	async #readPlain(file: FileHandle, key: string, row: BlobRow, range: ByteRange | undefined): Promise<Readable> {
		if (range) {
			const { start, end } = satisfiableRange(range, row.size)!;
			return file.createReadStream({ start, end, highWaterMark: readChunk(end - start + 1) });
		}
		const { ino } = await file.stat();
		return verifiedPlaintext(file.createReadStream({ highWaterMark: readChunk(row.size) }), row, () => this.#markCorrupt(key, ino));
	}

	/**
	 * The error for a blob whose row was there but whose file was not: NotFoundError if a release
	 * removed both meanwhile, else IntegrityError, the plain blob marked corrupt (a put of the same
	 * bytes then installs a new file).
	 */
	async #lostFile(key: string, row: BlobRow): Promise<Error> {
		if (!this.#hasBlob(key)) return new NotFoundError("Blob", key);
		if (row.encrypted === 0) await this.#markCorrupt(key, null);
		return new IntegrityError(`The stored bytes of blob ${key} are missing`, { key });
	}

	/**
	 * Records that blob `key` failed its check when read from the file with inode `ino` (null: no
	 * file). Under the key's lock, and only while that is still the blob's file: a put may have
	 * replaced it with a good copy meanwhile.
	 */
	async #markCorrupt(key: string, ino: number | null): Promise<void> {
		await this.#locks.run(key, async () => {
			const current = await stat(this.#pathOf(key)!).catch(() => null);
			if ((current?.ino ?? null) !== ino) return;
			this.#db.prepare("UPDATE blobs SET corrupt_at = ? WHERE key = ? AND corrupt_at IS NULL").run(new Date().toISOString(), key);
		});
	}

	async #readEncrypted(file: FileHandle, key: string, range: ByteRange | undefined): Promise<Readable> {
		const envelope = openEnvelope(await this.#readHeader(file), this.#keyring, key);
		await this.#checkLength(file, envelope);
		const plaintextRange = satisfiableRange(range, envelope.plaintextSize);
		return decryptRange(envelope, plaintextRange, (start, end) => file.createReadStream({ start, end }));
	}

	async #readHeader(file: FileHandle): Promise<Buffer> {
		const header = Buffer.alloc(HEADER_SIZE);
		const { bytesRead } = await file.read(header, 0, HEADER_SIZE, 0);
		if (bytesRead < HEADER_SIZE) throw new IntegrityError("Encrypted blob is truncated inside its header");
		return header;
	}

	/** Catches truncation or padding up front, before a reader gets any byte. */
	async #checkLength(file: FileHandle, envelope: Envelope): Promise<void> {
		const { size } = await file.stat();
		const expected = envelopeLength(envelope);
		if (size !== expected) throw new IntegrityError(`Encrypted blob is ${size} bytes, its header says ${expected}`);
	}

	async #openBlobFile(key: string): Promise<FileHandle> {
		const path = this.#pathOf(key);
		if (!path) throw new NotFoundError("Blob", key);
		try {
			return await open(path, "r");
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new NotFoundError("Blob", key);
			throw err;
		}
	}

	#hasBlob(key: string): boolean {
		return this.#db.prepare("SELECT 1 FROM blobs WHERE key = ?").get(key) !== undefined;
	}

	#blobRow(key: string): BlobRow | undefined {
		// Prepared once: every read asks, and preparing costs ten times the look-up.
		this.#blobRowStatement ??= this.#db.prepare("SELECT sha256, size, encrypted, corrupt_at FROM blobs WHERE key = ?");
		return this.#blobRowStatement.get(key) as BlobRow | undefined;
	}

	/** Where a blob lives; null for anything that is not a well-formed key (never a path outside root). */
	#pathOf(key: string): string | null {
		const id = blobIdOf(key);
		return id && join(this.#root, id.slice(0, 2), key);
	}
}
