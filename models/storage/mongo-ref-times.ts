/**
 * When each reference of a blob was last added, as the MongoDB-backed stores keep it: a `refTimes`
 * map in the blob's own document (by field-safe ref), beside its `refs` array, so that a reference
 * and its time change in one update. Shared by GridFsBlobStore (`blobs`) and the S3 store's MongoDB
 * index (`s3blobs`), whose documents differ in everything else.
 */
import { Binary, type Collection, type Filter, type OptionalUnlessRequiredId, type UpdateFilter } from "mongodb";
import { isDuplicateKey } from "../db/mongo.ts";
import type { BlobRef, ListRefsOptions, RefEntry, RefPage } from "./blob-store.ts";

/** What a blob document holds for the garbage collector. */
export interface RefTimedRecord {
	_id: string;
	size: number;
	refs: string[];
	/** Absent on blobs stored before references had times, until stampRefTimes gives them one. */
	refTimes?: Record<string, Date>;
}

/** A blob document of either store; a field named by the caller locates its bytes (a GridFS file, an S3 object). */
interface LocatedRecord extends RefTimedRecord {
	sha256: string;
	encrypted: boolean;
	header?: Binary;
	corruptAt?: Date;
}

/**
 * Records `ref` on the blob, creating its document (its bytes at `location`, in field `where`) when
 * the key is new, or pointing it at `location` when its bytes were found corrupt: the caller has just
 * hashed the new copy, and for a plain blob the same key means the same bytes. Says whether
 * `location` is now in use and which location it replaced. The caller holds the key's lock.
 */
export async function attachRef<L, T extends LocatedRecord>(
	blobs: Collection<T>,
	where: string,
	location: L,
	blob: BlobRef,
	header: Buffer | null | undefined,
	ref: string,
	now: Date
): Promise<{ kept: boolean; replaced?: L }> {
	for (;;) {
		// Added again: the reference is in use now, its grace period starts over.
		const addedAt = { [refTimePath(ref)]: now };
		const { matchedCount } = await blobs.updateOne({ _id: blob.key, corruptAt: { $exists: false } } as Filter<T>, { $addToSet: { refs: ref }, $set: addedAt } as unknown as UpdateFilter<T>);
		if (matchedCount === 1) return { kept: false };
		const repaired = await blobs.findOneAndUpdate(
			{ _id: blob.key, corruptAt: { $exists: true } } as Filter<T>,
			{ $addToSet: { refs: ref }, $set: { [where]: location, ...addedAt }, $unset: { corruptAt: "" } } as unknown as UpdateFilter<T>,
			{ returnDocument: "before" }
		);
		if (repaired) return { kept: true, replaced: (repaired as unknown as Record<string, L>)[where] };
		const record = {
			_id: blob.key,
			sha256: blob.sha256,
			size: blob.size,
			encrypted: blob.encrypted,
			[where]: location,
			refs: [ref],
			refTimes: firstRefTime(ref, now),
			...(header ? { header: new Binary(header) } : {})
		};
		try {
			await blobs.insertOne(record as unknown as OptionalUnlessRequiredId<T>);
			return { kept: true };
		} catch (err) {
			// Another node stored the same bytes first: add the reference to its blob.
			if (!isDuplicateKey(err)) throw err;
		}
	}
}

/** Blob documents read per round while listing references. */
const LIST_BATCH = 200;

/**
 * A reference as a field name under `refTimes`: a field name may hold neither a dot nor a leading
 * `$`, which a reference (any string) may. Escaped as in URLs, so two refs never share a field.
 */
function refField(ref: string): string {
	return ref.replaceAll("%", "%25").replaceAll(".", "%2E").replace(/^\$/, "%24");
}

/** The path of a reference's time, for updates and filters. */
export function refTimePath(ref: string): string {
	return `refTimes.${refField(ref)}`;
}

/** The `refTimes` of a new blob document held by `ref` alone. */
export function firstRefTime(ref: string, at: Date): Record<string, Date> {
	return { [refField(ref)]: at };
}

/**
 * Gives the references of blobs stored before references had times the time of now: their grace
 * period starts now, later than it really did, never earlier.
 */
export async function stampRefTimes<T extends RefTimedRecord>(blobs: Collection<T>): Promise<void> {
	const now = new Date();
	const unstamped = { refTimes: { $exists: false } } as Filter<T>;
	for await (const record of blobs.find(unstamped, { projection: { refs: 1 } })) {
		const refTimes = Object.fromEntries(record.refs.map(ref => [refField(ref), now]));
		await blobs.updateOne({ _id: record._id, ...unstamped } as Filter<T>, { $set: { refTimes } as Partial<T> });
	}
}

/** BlobStore.listRefs over the blob documents of `blobs`. */
export async function listRefTimes<T extends RefTimedRecord>(blobs: Collection<T>, options: ListRefsOptions): Promise<RefPage> {
	const { after, olderThan, limit } = options;
	const refs: RefEntry[] = [];
	let fromKey = after?.key ?? "";
	for (;;) {
		const records = (await blobs
			.find({ _id: { $gte: fromKey } } as Filter<T>, { projection: { refs: 1, refTimes: 1, size: 1 } })
			.sort({ _id: 1 })
			.limit(LIST_BATCH)
			.toArray()) as unknown as RefTimedRecord[];
		for (const record of records) {
			for (const ref of [...record.refs].sort()) {
				if (after && (record._id < after.key || (record._id === after.key && ref <= after.ref))) continue;
				const addedAt = record.refTimes?.[refField(ref)];
				// No time yet (stored before times, not stamped yet): not judged on this pass.
				if (!addedAt || addedAt >= olderThan) continue;
				refs.push({ key: record._id, ref, addedAt, size: record.size });
				if (refs.length === limit) return { refs, next: { key: record._id, ref } };
			}
		}
		if (records.length < LIST_BATCH) return { refs, next: null };
		// The last blob was read whole: the next round starts after it.
		fromKey = `${records.at(-1)!._id}\u0000`;
	}
}
