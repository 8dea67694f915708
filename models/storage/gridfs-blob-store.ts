/**
 * BlobStore on MongoDB GridFS (distributed mode): every node reads and writes the same blobs, so a
 * cluster needs no shared disk. Same keys, references and envelopes as FsBlobStore.
 *
 * Collections:
 *   blobdata.files, blobdata.chunks   the GridFS layout: one file per blob, the bytes as stored;
 *                                     chunk ids are `<file id>-<n>`, so a reader fetches each
 *                                     chunk by _id (any GridFS reader can still read the files)
 *   blobs                             one document per key: sha256, size, encrypted, the GridFS
 *                                     file id, the references and when each was last added
 *                                     (`refTimes`, by field-safe ref), for encrypted blobs the header,
 *                                     and `corruptAt` once a read or a scrub found the bytes changed
 *
 * An encrypted blob's GridFS file is its whole envelope with the header slot left zero (the
 * encryptor knows the header only at the end); the real header lives in its `blobs` document, so
 * re-wrapping a data key rewrites one small document and no chunk.
 *
 * A file is written chunk by chunk, awaiting each, and its `blobs` document is inserted only
 * after the file is complete: nothing is visible before that, and a failed upload has no write
 * in flight when its chunks are deleted. A crash between the file and its document leaves an
 * unreferenced file, never a document without its file; the next store to open sweeps it away.
 */
import { pipeline, Readable } from "node:stream";
import { Binary, type Collection, ObjectId } from "mongodb";
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
import { attachRef, listRefTimes, type RefTimedRecord, refTimePath, stampRefTimes } from "./mongo-ref-times.ts";
import {
	blobIdOf,
	importedPlaintextCheck,
	newEncryptedKey,
	PlaintextMeter,
	plainKey,
	rewrapEach,
	satisfiableRange,
	scrubKeys,
	sha256Of,
	verifiedPlaintext
} from "./blob-support.ts";
import { decryptRange, EnvelopeEncryptor, envelopeLength, type Keyring, needsRewrap, openEnvelope, rewrapHeader } from "./envelope-crypto.ts";
import { CorruptBlobError, IntegrityError, NotFoundError } from "../shared/errors.ts";
import { KeyedLock } from "../shared/keyed-lock.ts";
import { MongoBackend, type MongoOptions } from "../db/mongo.ts";

export interface GridFsBlobStoreOptions extends MongoOptions {
	keyring: Keyring;
	/** Opened to read only, by a node without the storage service: indexes and sweeps are the storage service's. */
	readOnly?: boolean;
}

const BUCKET = "blobdata";
/** Far longer than any upload takes (REQUEST_TIMEOUT_MS bounds them). */
const ORPHAN_AGE_MS = 60 * 60 * 1000;
/** GridFS's default chunk size: under the 16 MiB document limit with room to spare. */
const CHUNK_BYTES = 255 * 1024;

/** A blob's document; its references and their times as mongo-ref-times.ts keeps them. */
interface BlobRecord extends RefTimedRecord {
	sha256: string;
	encrypted: boolean;
	fileId: ObjectId;
	/** The envelope header of an encrypted blob. */
	header?: Binary;
	/** When a read or a scrub found the bytes of file `fileId` changed; absent while sound. */
	corruptAt?: Date;
}

interface FileRecord {
	_id: ObjectId;
	length: number;
	chunkSize: number;
	uploadDate: Date;
	filename: string;
}

interface ChunkRecord {
	/** `<file id>-<n>`, so a chunk is found by _id (see #download). */
	_id: string;
	files_id: ObjectId;
	n: number;
	data: Binary;
}

function chunkId(fileId: ObjectId, n: number): string {
	return `${fileId.toHexString()}-${n}`;
}

interface Attached {
	/** Whether the new file is now the blob's. */
	kept: boolean;
	/** The corrupt file it replaced. */
	replaced?: ObjectId;
}

interface Staged {
	sha256: string;
	size: number;
	header: Buffer | undefined;
}

export class GridFsBlobStore extends MongoBackend implements BlobStore {
	readonly #keyring: Keyring;
	readonly #readOnly: boolean;
	readonly #blobs: Collection<BlobRecord>;
	readonly #files: Collection<FileRecord>;
	readonly #chunks: Collection<ChunkRecord>;
	/**
	 * Serializes this process's reference changes per key. MongoDB would not need it, but FerretDB
	 * v1 runs $addToSet and $pull as a read then a write, which loses concurrent changes.
	 */
	readonly #locks = new KeyedLock();

	constructor(options: GridFsBlobStoreOptions) {
		super(options, "Blob storage");
		this.#keyring = options.keyring;
		this.#readOnly = options.readOnly ?? false;
		this.#blobs = this.db.collection<BlobRecord>("blobs");
		this.#files = this.db.collection<FileRecord>(`${BUCKET}.files`);
		this.#chunks = this.db.collection<ChunkRecord>(`${BUCKET}.chunks`);
	}

	/**
	 * The indexes GridFS readers expect (files are written here, not through the driver's upload
	 * stream), then the sweep of what dead uploads left.
	 */
	protected async prepare(): Promise<void> {
		if (this.#readOnly) return;
		await this.ensureIndexes(this.#files, [{ key: { filename: 1, uploadDate: 1 } }]);
		await this.ensureIndexes(this.#chunks, [{ key: { files_id: 1, n: 1 }, unique: true }]);
		await this.ensureIndexes(this.#blobs, [{ key: { encrypted: 1 } }]);
		await stampRefTimes(this.#blobs);
		await this.#sweepOrphans(new Date(Date.now() - ORPHAN_AGE_MS));
	}

	/**
	 * Deletes what a node that died mid-upload left: chunks and files that no blob document points
	 * at, begun before `olderThan` (at start, ORPHAN_AGE_MS ago). A file id is an ObjectId, which
	 * carries its creation time; younger files may belong to an upload still under way on another
	 * node. Returns how many files it deleted.
	 */
	async #sweepOrphans(olderThan: Date): Promise<number> {
		const cutoff = ObjectId.createFromTime(Math.floor(olderThan.getTime() / 1000));
		const [chunked, filed, used] = await Promise.all([
			this.#chunks.distinct("files_id", { files_id: { $lt: cutoff } }),
			this.#files.distinct("_id", { _id: { $lt: cutoff } }),
			this.#blobs.distinct("fileId")
		]);
		const inUse = new Set(used.map(String));
		const orphans = new Map([...chunked, ...filed].filter(id => !inUse.has(String(id))).map(id => [String(id), id]));
		for (const id of orphans.values()) await this.#deleteFile(id);
		return orphans.size;
	}

	async sweepUnfinished(olderThan: Date): Promise<number> {
		return this.run(() => this.#sweepOrphans(olderThan));
	}

	async put(source: Readable, options: PutOptions): Promise<BlobRef> {
		const fileId = new ObjectId();
		// An encrypted blob's key is random and its envelope is bound to it: chosen before the bytes.
		const encryptedKey = options.encrypt ? newEncryptedKey() : null;
		const staged = await this.run(() => this.#stage(fileId, source, options.maxBytes, encryptedKey));
		const key = encryptedKey ?? plainKey(staged.sha256);
		const blob: BlobRef = { key, sha256: staged.sha256, size: staged.size, encrypted: options.encrypt };
		await this.run(async () => {
			let attached: Attached;
			try {
				attached = await this.#locks.run(key, () => this.#attach(blob, fileId, staged.header, options.ref, new Date()));
			} catch (err) {
				await this.#deleteFile(fileId).catch(() => {});
				throw err;
			}
			// The same bytes were stored already: this copy is not needed. Or they were stored, found
			// corrupt and now replaced by this copy: the corrupt one goes.
			if (!attached.kept) await this.#deleteFile(fileId);
			if (attached.replaced) await this.#deleteFile(attached.replaced);
		});
		return blob;
	}

	async importBlob(key: string, openSource: () => Promise<Readable>, blob: ImportedBlob): Promise<ImportResult> {
		if (blobIdOf(key) === null) throw new IntegrityError(`Not a blob key: ${key}`);
		const present = await this.run(() => this.#find(key));
		if (present && !present.corruptAt && present.size === blob.size) {
			await this.run(() => this.#attachAll(present, present._id, present.fileId, undefined, blob.refs));
			return { copied: false };
		}
		const fileId = new ObjectId();
		const staged = await this.run(async () => this.#stage(fileId, await openSource(), Number.MAX_SAFE_INTEGER, blob.encrypted ? key : null));
		const stored: BlobRef = { key, sha256: staged.sha256, size: staged.size, encrypted: blob.encrypted };
		try {
			importedPlaintextCheck(key, blob, staged);
			if ((await sha256Of(this.#plaintextOf(key, fileId, staged))) !== staged.sha256) {
				throw new IntegrityError(`The copy of blob ${key} read back from GridFS does not match what was sent`, { key });
			}
			// Another node stored the same bytes meanwhile: this copy is not needed.
			if (!(await this.run(() => this.#attachAll(stored, key, fileId, staged.header, blob.refs)))) await this.#deleteFile(fileId);
		} catch (err) {
			await this.#deleteFile(fileId).catch(() => {});
			throw err;
		}
		return { copied: true, sha256: staged.sha256 };
	}

	async open(key: string, range?: ByteRange): Promise<Readable> {
		const record = await this.run(() => this.#find(key));
		if (!record) throw new NotFoundError("Blob", key);
		if (record.corruptAt) throw new CorruptBlobError(key, record.corruptAt.toISOString());
		if (!record.header) {
			// A range is read as stored: checking the hash takes every byte. A full read is verified.
			if (range) return this.#download(record.fileId, record.size, satisfiableRange(range, record.size));
			return verifiedPlaintext(this.#download(record.fileId, record.size, undefined), record, () => this.#markCorrupt(key, record.fileId));
		}
		const envelope = openEnvelope(Buffer.from(record.header.buffer), this.#keyring, key);
		// Catches truncation or padding up front, before a reader gets any byte.
		const file = await this.run(() => this.#files.findOne({ _id: record.fileId }));
		const expected = envelopeLength(envelope);
		if (file?.length !== expected) throw new IntegrityError(`Encrypted blob is ${file?.length ?? 0} bytes, its header says ${expected}`);
		const wanted = satisfiableRange(range, envelope.plaintextSize);
		return decryptRange(envelope, wanted, (start, end) => this.#download(record.fileId, expected, { start, end }));
	}

	async stat(key: string): Promise<BlobInfo | null> {
		const record = await this.run(() => this.#find(key));
		if (!record) return null;
		const info: BlobInfo = { key, size: record.size, encrypted: record.encrypted, refs: record.refs.length };
		return record.corruptAt ? { ...info, corruptAt: record.corruptAt.toISOString() } : info;
	}

	async scrub(options: ScrubOptions): Promise<ScrubReport> {
		const after = options.after ?? "";
		const keys = await this.run(async () =>
			(await this.#blobs.find({ _id: { $gt: after } }, { projection: { _id: 1 } }).sort({ _id: 1 }).limit(options.limit + 1).toArray()).map(record => record._id)
		);
		return scrubKeys(keys, options, key => this.open(key));
	}

	/**
	 * Records that blob `key` failed its check when read from file `fileId`; only while that is still
	 * its file, as a put may have replaced it with a good copy during the read.
	 */
	async #markCorrupt(key: string, fileId: ObjectId): Promise<void> {
		await this.run(() => this.#blobs.updateOne({ _id: key, fileId, corruptAt: { $exists: false } }, { $set: { corruptAt: new Date() } }));
	}

	async release(key: string, ref: string): Promise<boolean> {
		if (blobIdOf(key) === null) return true;
		return (await this.#dropRef(key, ref, {})).gone;
	}

	async releaseStale(key: string, ref: string, addedBefore: Date): Promise<StaleRelease> {
		if (blobIdOf(key) === null) return { released: false, deleted: false };
		const { released, gone } = await this.#dropRef(key, ref, { [refTimePath(ref)]: { $lt: addedBefore } });
		return { released, deleted: released && gone };
	}

	/**
	 * Drops `ref` from blob `key` when the blob also matches `condition`, and deletes the blob once
	 * unreferenced. `gone`: the blob is no more.
	 */
	async #dropRef(key: string, ref: string, condition: object): Promise<{ released: boolean; gone: boolean }> {
		return this.run(() =>
			this.#locks.run(key, async () => {
				const record = await this.#blobs.findOneAndUpdate(
					{ _id: key, refs: ref, ...condition },
					{ $pull: { refs: ref }, $unset: { [refTimePath(ref)]: "" } },
					{ returnDocument: "after" }
				);
				const remaining = record ?? (await this.#blobs.findOne({ _id: key }, { projection: { refs: 1 } }));
				if (!remaining) return { released: record !== null, gone: true };
				if (remaining.refs.length > 0) return { released: record !== null, gone: false };
				// Only while still unreferenced: a put on another node may have just added one.
				const gone = await this.#blobs.findOneAndDelete({ _id: key, refs: { $size: 0 } });
				if (gone) await this.#deleteFile(gone.fileId);
				return { released: record !== null, gone: gone !== null };
			})
		);
	}

	async listRefs(options: ListRefsOptions): Promise<RefPage> {
		return this.run(() => listRefTimes(this.#blobs, options));
	}

	async rewrapAll(): Promise<RewrapReport> {
		const keys: string[] = await this.run(() => this.#blobs.distinct("_id", { encrypted: true }));
		return rewrapEach(keys, key => this.run(() => this.#locks.run(key, () => this.#rewrap(key))));
	}

	async #rewrap(key: string): Promise<boolean> {
		const record = await this.#blobs.findOne({ _id: key });
		if (!record?.header) return false;
		const header = Buffer.from(record.header.buffer);
		if (!needsRewrap(header, this.#keyring)) return false;
		await this.#blobs.updateOne({ _id: key }, { $set: { header: new Binary(rewrapHeader(header, this.#keyring, key)) } });
		return true;
	}

	async #find(key: string): Promise<BlobRecord | null> {
		return blobIdOf(key) === null ? null : this.#blobs.findOne({ _id: key });
	}

	/**
	 * Writes the (encrypted) bytes as GridFS file `fileId`, then its files document. On any
	 * failure its chunks are deleted before the error goes on.
	 */
	async #stage(fileId: ObjectId, source: Readable, maxBytes: number, encryptedKey: string | null): Promise<Staged> {
		const meter = new PlaintextMeter(maxBytes);
		const encryptor = encryptedKey ? new EnvelopeEncryptor(this.#keyring, encryptedKey) : null;
		// Errors of any stage end the iteration below with that error.
		const body: Readable = encryptor ? pipeline(source, meter, encryptor, () => {}) : pipeline(source, meter, () => {});
		let length = 0;
		try {
			let n = 0;
			for await (const chunk of chunksOf(body, CHUNK_BYTES)) {
				await this.#chunks.insertOne({ _id: chunkId(fileId, n), files_id: fileId, n: n++, data: new Binary(chunk) });
				length += chunk.length;
			}
			await this.#files.insertOne({ _id: fileId, length, chunkSize: CHUNK_BYTES, uploadDate: new Date(), filename: fileId.toHexString() });
		} catch (err) {
			body.destroy();
			await this.#deleteFile(fileId).catch(() => {});
			throw err;
		}
		return { ...meter.result(), header: encryptor?.header };
	}

	/** Records `ref` on the blob, its bytes in file `fileId` (attachRef). Runs under the key's lock. */
	#attach(blob: BlobRef, fileId: ObjectId, header: Buffer | undefined, ref: string, now: Date): Promise<Attached> {
		return attachRef(this.#blobs, "fileId", fileId, blob, header, ref, now);
	}

	/**
	 * Records every reference of an imported blob held by file `fileId`, each with its time; a
	 * corrupt file it replaces is deleted. Whether `fileId` is the blob's file now.
	 */
	async #attachAll(blob: { sha256: string; size: number; encrypted: boolean }, key: string, fileId: ObjectId, header: Buffer | undefined, refs: ImportedBlob["refs"]): Promise<boolean> {
		const stored: BlobRef = { key, sha256: blob.sha256, size: blob.size, encrypted: blob.encrypted };
		let kept = false;
		for (const { ref, addedAt } of refs) {
			const attached = await this.#locks.run(key, () => this.#attach(stored, fileId, header, ref, addedAt));
			kept ||= attached.kept;
			if (attached.replaced) await this.#deleteFile(attached.replaced);
		}
		return kept;
	}

	/** The plaintext of a file just staged, read back from GridFS (decrypted when encrypted). */
	#plaintextOf(key: string, fileId: ObjectId, staged: Staged): Readable {
		if (!staged.header) return this.#download(fileId, staged.size, undefined);
		const envelope = openEnvelope(staged.header, this.#keyring, key);
		return decryptRange(envelope, undefined, (start, end) => this.#download(fileId, envelopeLength(envelope), { start, end }));
	}

	async #deleteFile(fileId: ObjectId): Promise<void> {
		await this.#files.deleteOne({ _id: fileId });
		await this.#chunks.deleteMany({ files_id: fileId });
	}

	/**
	 * Streams the stored bytes start..end (inclusive; all `length` of them without a range). Each
	 * chunk is fetched by _id, not by the driver's GridFS reader: FerretDB v1 answers its
	 * `files_id` query by scanning every chunk of every blob.
	 */
	#download(fileId: ObjectId, length: number, range: ByteRange | undefined): Readable {
		const { start, end } = range ?? { start: 0, end: length - 1 };
		const chunks = this.#chunks;
		return Readable.from(
			(async function* () {
				for (let n = Math.floor(start / CHUNK_BYTES); n * CHUNK_BYTES <= end; n++) {
					const chunk = await chunks.findOne({ _id: chunkId(fileId, n) });
					const data = chunk ? Buffer.from(chunk.data.buffer) : Buffer.alloc(0);
					if (data.length !== Math.min(CHUNK_BYTES, length - n * CHUNK_BYTES)) throw new IntegrityError(`Chunk ${n} of blob file ${fileId} is missing or cut`);
					yield data.subarray(Math.max(start - n * CHUNK_BYTES, 0), end - n * CHUNK_BYTES + 1);
				}
			})()
		);
	}
}

/** Re-cuts a stream into pieces of exactly `size` bytes (the last one shorter, none if empty). */
async function* chunksOf(stream: Readable, size: number): AsyncGenerator<Buffer> {
	let pending: Buffer[] = [];
	let pendingBytes = 0;
	for await (const data of stream as AsyncIterable<Buffer>) {
		pending.push(data);
		pendingBytes += data.length;
		while (pendingBytes >= size) {
			const joined = Buffer.concat(pending);
			yield joined.subarray(0, size);
			pending = [joined.subarray(size)];
			pendingBytes -= size;
		}
	}
	if (pendingBytes > 0) yield Buffer.concat(pending);
}
