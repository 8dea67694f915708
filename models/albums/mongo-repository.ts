/**
 * AlbumRepository on MongoDB (distributed mode), behaving exactly like the SQLite one: the same
 * contract suite runs against both. Three collections: `albums`, `album_members` and
 * `album_images`, the last two keyed by JSON [albumId, userId|imageId], so that a member or an
 * image is in an album once whatever ids contain. Without transactions (FerretDB v1) an album is
 * removed dependents first: a removal cut short leaves an album to remove again, never a
 * membership or an entry that outlives its album and still grants a view (see grantsView too).
 */
import type { Collection, Filter } from "mongodb";
import { isDuplicateKey, MongoBackend, type MongoOptions } from "../db/mongo.ts";
import { ConflictError } from "../shared/errors.ts";
import { definedFields } from "../shared/fields.ts";
import { nowIso } from "../shared/ids.ts";
import { KeyedLock } from "../shared/keyed-lock.ts";
import type { Album, AlbumEntry, AlbumMember, AlbumPageRequest, AlbumRepository, AlbumSummary, MemberRole } from "./album.ts";
import { albumPageOf, albumPageRequest, type AlbumCursor, type AlbumSortSpec } from "./paging.ts";

interface AlbumRecord extends Omit<Album, "id"> {
	_id: string;
}

interface MemberRecord extends AlbumMember {
	_id: string;
	albumId: string;
}

interface EntryRecord extends AlbumEntry {
	_id: string;
	albumId: string;
	/** True while the image is in the trash (absent on entries stored before the trash existed). */
	trashed?: boolean;
}

/** Entries shown: those whose image is not in the trash. */
const SHOWN = { trashed: { $ne: true } } as const;

/** One key per (album, member or image), unambiguous whatever characters the ids hold. */
function pairKey(albumId: string, otherId: string): string {
	return JSON.stringify([albumId, otherId]);
}

function albumFromRecord(record: AlbumRecord): Album {
	return {
		id: record._id,
		owner: record.owner,
		ownerName: record.ownerName,
		name: record.name,
		description: record.description,
		createdAt: record.createdAt,
		updatedAt: record.updatedAt
	};
}

function memberFromRecord(record: MemberRecord): AlbumMember {
	return { userId: record.userId, username: record.username, role: record.role, addedAt: record.addedAt };
}

function entryFromRecord(record: EntryRecord): AlbumEntry {
	return { imageId: record.imageId, imageOwner: record.imageOwner, addedBy: record.addedBy, addedAt: record.addedAt, takenAt: record.takenAt };
}

/** Entries strictly after the cursor's entry in the sort order. */
function afterCursor(spec: AlbumSortSpec, cursor: AlbumCursor): Filter<EntryRecord> {
	const beyond = spec.descending ? "$lt" : "$gt";
	return { $or: [{ [spec.field]: { [beyond]: cursor.value } }, { [spec.field]: cursor.value, imageId: { [beyond]: cursor.imageId } }] } as Filter<EntryRecord>;
}

/** Newest first, as the SQLite backend lists them. */
function newestFirst(a: Album, b: Album): number {
	if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
	return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

export class MongoAlbumRepository extends MongoBackend implements AlbumRepository {
	private readonly albums: Collection<AlbumRecord>;
	private readonly membersOf: Collection<MemberRecord>;
	private readonly images: Collection<EntryRecord>;
	/**
	 * Serializes this process's read-then-write changes of one album (members, entries, edits):
	 * FerretDB v1 has no transactions and runs conditional updates as a read and a write.
	 */
	private readonly writes = new KeyedLock();

	constructor(options: MongoOptions) {
		super(options, "The album store");
		this.albums = this.db.collection<AlbumRecord>("albums");
		this.membersOf = this.db.collection<MemberRecord>("album_members");
		this.images = this.db.collection<EntryRecord>("album_images");
	}

	protected async prepare(): Promise<void> {
		await this.ensureIndexes(this.albums, [{ key: { owner: 1, createdAt: 1 } }]);
		await this.ensureIndexes(this.membersOf, [{ key: { albumId: 1, addedAt: 1 } }, { key: { userId: 1 } }]);
		// Pages in either order are index range scans; the image index serves grants and clean-ups.
		await this.ensureIndexes(this.images, [
			{ key: { albumId: 1, addedAt: 1, imageId: 1 } },
			{ key: { albumId: 1, takenAt: 1, imageId: 1 } },
			{ key: { imageId: 1 } }
		]);
	}

	async insert(album: Album): Promise<void> {
		await this.run(async () => {
			const { id, ...fields } = album;
			try {
				await this.albums.insertOne({ _id: id, ...fields });
			} catch (err) {
				if (isDuplicateKey(err)) throw new ConflictError(`Album ${id} already exists`, "ALBUM_EXISTS");
				throw err;
			}
		});
	}

	async get(id: string): Promise<Album | null> {
		return this.run(async () => {
			const record = await this.albums.findOne({ _id: id });
			return record && albumFromRecord(record);
		});
	}

	async update(id: string, patch: Partial<Pick<Album, "name" | "description">>): Promise<Album | null> {
		return this.run(() =>
			this.writes.run(id, async () => {
				const record = await this.albums.findOne({ _id: id });
				if (!record) return null;
				const next: Album = { ...albumFromRecord(record), ...definedFields(patch), updatedAt: nowIso() };
				const { matchedCount } = await this.albums.updateOne({ _id: id }, { $set: { name: next.name, description: next.description, updatedAt: next.updatedAt } });
				return matchedCount === 1 ? next : null;
			})
		);
	}

	async remove(id: string): Promise<boolean> {
		return this.run(() =>
			this.writes.run(id, async () => {
				await this.images.deleteMany({ albumId: id });
				await this.membersOf.deleteMany({ albumId: id });
				return (await this.albums.deleteOne({ _id: id })).deletedCount === 1;
			})
		);
	}

	async listFor(userId: string): Promise<AlbumSummary[]> {
		return this.run(async () => {
			const memberships = await this.membersOf.find({ userId: userId }).toArray();
			const roles = new Map(memberships.map(member => [member.albumId, member.role]));
			const [owned, shared] = await Promise.all([
				this.albums.find({ owner: userId }).toArray(),
				roles.size > 0 ? this.albums.find({ _id: { $in: [...roles.keys()] } }).toArray() : Promise.resolve([])
			]);
			const albums = [...owned, ...shared.filter(record => record.owner !== userId)].map(albumFromRecord).sort(newestFirst);
			return Promise.all(
				albums.map(async album => {
					const [imageCount, memberCount, cover] = await Promise.all([
						this.images.countDocuments({ albumId: album.id, ...SHOWN }),
						this.membersOf.countDocuments({ albumId: album.id }),
						this.images.find({ albumId: album.id, ...SHOWN }).sort({ addedAt: -1, imageId: -1 }).limit(1).toArray()
					]);
					const role = album.owner === userId ? "owner" : roles.get(album.id)!;
					return { ...album, role, imageCount, memberCount, cover: cover[0]?.imageId ?? null };
				})
			);
		});
	}

	async memberRole(albumId: string, userId: string): Promise<MemberRole | null> {
		return this.run(async () => (await this.membersOf.findOne({ _id: pairKey(albumId, userId) }))?.role ?? null);
	}

	async members(albumId: string): Promise<AlbumMember[]> {
		return this.run(async () => {
			const records = await this.membersOf.find({ albumId: albumId }).sort({ addedAt: 1, userId: 1 }).toArray();
			return records.map(memberFromRecord);
		});
	}

	async setMember(albumId: string, member: AlbumMember): Promise<void> {
		const _id = pairKey(albumId, member.userId);
		await this.run(() =>
			this.writes.run(albumId, async () => {
				// A member whose role changes keeps their place (addedAt) in the list.
				const { matchedCount } = await this.membersOf.updateOne({ _id }, { $set: { role: member.role } });
				if (matchedCount === 1) return;
				try {
					await this.membersOf.insertOne({ _id, albumId, ...member });
				} catch (err) {
					// Another node added them meanwhile: set the role asked for here.
					if (!isDuplicateKey(err)) throw err;
					await this.membersOf.updateOne({ _id }, { $set: { role: member.role } });
				}
			})
		);
	}

	async removeMember(albumId: string, userId: string): Promise<boolean> {
		return this.run(async () => (await this.membersOf.deleteOne({ _id: pairKey(albumId, userId) })).deletedCount === 1);
	}

	async addImages(albumId: string, entries: AlbumEntry[]): Promise<number> {
		if (entries.length === 0) return 0;
		return this.run(() =>
			this.writes.run(albumId, async () => {
				const keys = entries.map(entry => pairKey(albumId, entry.imageId));
				const present = new Set((await this.images.find({ _id: { $in: keys } }).project<{ _id: string }>({ _id: 1 }).toArray()).map(record => record._id));
				const fresh = new Map<string, EntryRecord>();
				for (const entry of entries) {
					const _id = pairKey(albumId, entry.imageId);
					if (!present.has(_id) && !fresh.has(_id)) fresh.set(_id, { _id, albumId, ...entry });
				}
				if (fresh.size === 0) return 0;
				try {
					return (await this.images.insertMany([...fresh.values()], { ordered: false })).insertedCount;
				} catch (err) {
					// Another node added some of them meanwhile: they are in the album, which is what was asked.
					if (!isDuplicateKey(err)) throw err;
					return (err as { insertedCount?: number }).insertedCount ?? 0;
				}
			})
		);
	}

	async removeImages(albumId: string, imageIds: string[]): Promise<number> {
		if (imageIds.length === 0) return 0;
		return this.run(async () => (await this.images.deleteMany({ _id: { $in: imageIds.map(id => pairKey(albumId, id)) } })).deletedCount);
	}

	async entries(albumId: string, imageIds: string[]): Promise<AlbumEntry[]> {
		if (imageIds.length === 0) return [];
		return this.run(async () => {
			const records = await this.images.find({ _id: { $in: imageIds.map(id => pairKey(albumId, id)) } }).sort({ addedAt: 1, imageId: 1 }).toArray();
			return records.map(entryFromRecord);
		});
	}

	async imagePage(albumId: string, request: AlbumPageRequest): Promise<{ items: AlbumEntry[]; nextCursor: string | null }> {
		const { spec, after } = albumPageRequest(request);
		const direction = spec.descending ? -1 : 1;
		const filter: Filter<EntryRecord> = after ? { $and: [{ albumId: albumId, ...SHOWN }, afterCursor(spec, after)] } : { albumId: albumId, ...SHOWN };
		return this.run(async () => {
			const records = await this.images.find(filter).sort({ [spec.field]: direction, imageId: direction }).limit(request.limit + 1).toArray();
			return albumPageOf(records.map(entryFromRecord), request, spec);
		});
	}

	async imageIds(albumId: string): Promise<string[]> {
		return this.run(async () => {
			const records = await this.images.find({ albumId: albumId, ...SHOWN }).sort({ addedAt: -1, imageId: -1 }).project<{ imageId: string }>({ imageId: 1 }).toArray();
			return records.map(record => record.imageId);
		});
	}

	async grantsView(imageId: string, userId: string): Promise<boolean> {
		return this.run(async () => {
			const holding = await this.images.find({ imageId: imageId }).project<{ albumId: string }>({ albumId: 1 }).toArray();
			if (holding.length === 0) return false;
			// Only albums that exist: the entries of one whose removal was cut short grant nothing.
			const albums = await this.albums.find({ _id: { $in: holding.map(entry => entry.albumId) } }).project<{ _id: string; owner: string }>({ owner: 1 }).toArray();
			if (albums.some(album => album.owner === userId)) return true;
			if (albums.length === 0) return false;
			return (await this.membersOf.countDocuments({ _id: { $in: albums.map(album => pairKey(album._id, userId)) } })) > 0;
		});
	}

	async setTakenAt(imageId: string, takenAt: string): Promise<number> {
		return this.run(async () => (await this.images.updateMany({ imageId: imageId, takenAt: { $ne: takenAt } }, { $set: { takenAt } })).modifiedCount);
	}

	async setTrashed(imageId: string, trashed: boolean): Promise<number> {
		const filter: Filter<EntryRecord> = trashed ? { imageId: imageId, ...SHOWN } : { imageId: imageId, trashed: true };
		return this.run(async () => (await this.images.updateMany(filter, { $set: { trashed } })).modifiedCount);
	}

	async removeImageEverywhere(imageId: string): Promise<number> {
		return this.run(async () => (await this.images.deleteMany({ imageId: imageId })).deletedCount);
	}

	async removeUser(userId: string): Promise<number> {
		const owned = await this.run(() => this.albums.find({ owner: userId }).project<{ _id: string }>({ _id: 1 }).toArray());
		let removed = 0;
		for (const album of owned) if (await this.remove(album._id)) removed++;
		await this.run(() => this.membersOf.deleteMany({ userId: userId }));
		return removed;
	}
}
