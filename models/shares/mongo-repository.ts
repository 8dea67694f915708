/** ShareRepository on MongoDB (distributed mode); the same contract as the SQLite one. */
import type { Collection, Filter } from "mongodb";
import { isDuplicateKey, MongoBackend, type MongoOptions } from "../db/mongo.ts";
import { ConflictError } from "../shared/errors.ts";
import { definedFields, pick } from "../shared/fields.ts";
import { nowIso } from "../shared/ids.ts";
import { KeyedLock } from "../shared/keyed-lock.ts";
import { decodeShareCursor, SHARE_FIELDS, sharePageOf, type ShareDoc, type SharePage, type SharePatch, type ShareRepository, type ShareTarget } from "./share.ts";

interface ShareDocument extends Omit<ShareDoc, "id"> {
	_id: string;
}

function fromDocument(doc: ShareDocument): ShareDoc {
	return { id: doc._id, ...pick(doc, SHARE_FIELDS) };
}

export class MongoShareRepository extends MongoBackend implements ShareRepository {
	private readonly shares: Collection<ShareDocument>;
	/** Serializes this process's patches of one link: FerretDB v1 runs an update as a read then a write. */
	private readonly writes = new KeyedLock();

	constructor(options: MongoOptions) {
		super(options, "The share store");
		this.shares = this.db.collection<ShareDocument>("shares");
	}

	protected async prepare(): Promise<void> {
		await this.ensureIndexes(this.shares, [
			{ key: { tokenHash: 1 }, unique: true },
			{ key: { owner: 1, createdAt: -1, _id: -1 } },
			{ key: { imageId: 1 } },
			{ key: { albumId: 1 } }
		]);
	}

	async insert(share: ShareDoc): Promise<void> {
		await this.run(async () => {
			const { id, ...fields } = share;
			try {
				await this.shares.insertOne({ _id: id, ...fields });
			} catch (err) {
				if (isDuplicateKey(err)) throw new ConflictError("The share link exists already", "SHARE_EXISTS", { id });
				throw err;
			}
		});
	}

	async get(id: string): Promise<ShareDoc | null> {
		return this.findOne({ _id: id });
	}

	async findByTokenHash(tokenHash: string): Promise<ShareDoc | null> {
		return this.findOne({ tokenHash });
	}

	async listByOwner(owner: string, limit: number, cursor?: string): Promise<SharePage> {
		const after = cursor ? decodeShareCursor(cursor) : null;
		const filter: Filter<ShareDocument> = after
			? { owner, $or: [{ createdAt: { $lt: after.createdAt } }, { createdAt: after.createdAt, _id: { $lt: after.id } }] }
			: { owner };
		return this.run(async () => {
			const docs = await this.shares.find(filter).sort({ createdAt: -1, _id: -1 }).limit(limit + 1).toArray();
			return sharePageOf(docs.map(fromDocument), limit);
		});
	}

	async update(id: string, patch: SharePatch): Promise<ShareDoc | null> {
		return this.writes.run(id, () =>
			this.run(async () => {
				const doc = await this.shares.findOneAndUpdate({ _id: id }, { $set: { ...definedFields(patch), updatedAt: nowIso() } }, { returnDocument: "after" });
				return doc && fromDocument(doc);
			})
		);
	}

	async remove(id: string): Promise<boolean> {
		return this.run(async () => (await this.shares.deleteOne({ _id: id })).deletedCount === 1);
	}

	async removeByTarget(target: ShareTarget): Promise<number> {
		const filter: Filter<ShareDocument> = "imageId" in target ? { imageId: target.imageId } : { albumId: target.albumId };
		return this.run(async () => (await this.shares.deleteMany(filter)).deletedCount);
	}

	async removeByOwner(owner: string): Promise<number> {
		return this.run(async () => (await this.shares.deleteMany({ owner })).deletedCount);
	}

	private async findOne(filter: Filter<ShareDocument>): Promise<ShareDoc | null> {
		return this.run(async () => {
			const doc = await this.shares.findOne(filter);
			return doc && fromDocument(doc);
		});
	}
}
