/**
 * The S3 store's index in MongoDB (distributed mode: every node shares it), collection `s3blobs`:
 * one document per key with sha256, size, encrypted, the bucket object, the references and when
 * each was last added (`refTimes`, see mongo-ref-times.ts), for encrypted blobs the header, and
 * `corruptAt` once a read or a scrub found the bytes changed.
 * A collection of its own, not GridFS's `blobs`: both stores can then share a database while blobs
 * move from one backend to the other.
 */
import { Binary, type Collection } from "mongodb";
import type { BlobRef, ListRefsOptions, RefPage } from "./blob-store.ts";
import type { Attached, Detached, IndexedBlob, S3BlobIndex } from "./s3-blob-index.ts";
import { blobIdOf } from "./blob-support.ts";
import { attachRef, listRefTimes, type RefTimedRecord, refTimePath, stampRefTimes } from "./mongo-ref-times.ts";
import { KeyedLock } from "../shared/keyed-lock.ts";
import { MongoBackend, type MongoOptions } from "../db/mongo.ts";

interface BlobRecord extends RefTimedRecord {
	sha256: string;
	encrypted: boolean;
	object: string;
	header?: Binary;
	corruptAt?: Date;
}

export class MongoS3BlobIndex extends MongoBackend implements S3BlobIndex {
	readonly #blobs: Collection<BlobRecord>;
	/**
	 * Serializes this process's reference changes per key. MongoDB would not need it, but FerretDB
	 * v1 runs $addToSet and $pull as a read then a write, which loses concurrent changes.
	 */
	readonly #locks = new KeyedLock();

	constructor(options: MongoOptions) {
		super(options, "Blob storage");
		this.#blobs = this.db.collection<BlobRecord>("s3blobs");
	}

	protected async prepare(): Promise<void> {
		await this.ensureIndexes(this.#blobs, [{ key: { encrypted: 1 } }, { key: { object: 1 } }]);
		await stampRefTimes(this.#blobs);
	}

	async find(key: string): Promise<IndexedBlob | null> {
		if (blobIdOf(key) === null) return null;
		const record = await this.run(() => this.#blobs.findOne({ _id: key }));
		if (!record) return null;
		return {
			key,
			sha256: record.sha256,
			size: record.size,
			encrypted: record.encrypted,
			object: record.object,
			header: record.header ? Buffer.from(record.header.buffer) : null,
			corruptAt: record.corruptAt?.toISOString() ?? null,
			refs: record.refs.length
		};
	}

	async attach(blob: BlobRef, object: string, header: Buffer | null, ref: string, addedAt = new Date()): Promise<Attached> {
		return this.run(() => this.#locks.run(blob.key, () => this.#attach(blob, object, header, ref, addedAt)));
	}

	async detach(key: string, ref: string, addedBefore?: Date): Promise<Detached> {
		if (blobIdOf(key) === null) return { released: false, gone: true };
		const stale = addedBefore ? { [refTimePath(ref)]: { $lt: addedBefore } } : {};
		return this.run(() =>
			this.#locks.run(key, async () => {
				const record = await this.#blobs.findOneAndUpdate(
					{ _id: key, refs: ref, ...stale },
					{ $pull: { refs: ref }, $unset: { [refTimePath(ref)]: "" } },
					{ returnDocument: "after" }
				);
				const released = record !== null;
				const remaining = record ?? (await this.#blobs.findOne({ _id: key }, { projection: { refs: 1 } }));
				if (!remaining) return { released, gone: true };
				if (remaining.refs.length > 0) return { released, gone: false };
				// Only while still unreferenced: a put on another node may have just added one.
				const removed = await this.#blobs.findOneAndDelete({ _id: key, refs: { $size: 0 } });
				return removed ? { released, gone: true, object: removed.object } : { released, gone: false };
			})
		);
	}

	async listRefs(options: ListRefsOptions): Promise<RefPage> {
		return this.run(() => listRefTimes(this.#blobs, options));
	}

	async markCorrupt(key: string, object: string): Promise<void> {
		await this.run(() => this.#blobs.updateOne({ _id: key, object, corruptAt: { $exists: false } }, { $set: { corruptAt: new Date() } }));
	}

	async replaceHeader(key: string, previous: Buffer, header: Buffer): Promise<void> {
		await this.run(() => this.#blobs.updateOne({ _id: key, header: new Binary(previous) }, { $set: { header: new Binary(header) } }));
	}

	async encryptedKeys(): Promise<string[]> {
		return this.run(() => this.#blobs.distinct("_id", { encrypted: true }));
	}

	async keysAfter(after: string, limit: number): Promise<string[]> {
		const records = await this.run(() => this.#blobs.find({ _id: { $gt: after } }, { projection: { _id: 1 } }).sort({ _id: 1 }).limit(limit).toArray());
		return records.map(record => record._id);
	}

	async objectsInUse(objects: string[]): Promise<Set<string>> {
		const used: string[] = await this.run(() => this.#blobs.distinct("object", { object: { $in: objects } }));
		return new Set(used);
	}

	/** Runs under the key's lock; see S3BlobIndex.attach. */
	#attach(blob: BlobRef, object: string, header: Buffer | null, ref: string, now: Date): Promise<Attached> {
		return attachRef(this.#blobs, "object", object, blob, header, ref, now);
	}
}
