/** UserRepository on MongoDB (distributed mode); the same contract as the SQLite one. */
import type { Collection, Filter } from "mongodb";
import { roleOf } from "../shared/access.ts";
import { ConflictError } from "../shared/errors.ts";
import { definedFields, pick } from "../shared/fields.ts";
import { nowIso } from "../shared/ids.ts";
import { KeyedLock } from "../shared/keyed-lock.ts";
import { isDuplicateKey, MongoBackend, type MongoOptions } from "../db/mongo.ts";
import { USER_FIELDS, type UserPatch, type UserRecord, type UserRepository } from "./user.ts";

interface UserDocument extends Omit<UserRecord, "id"> {
	_id: string;
}

function fromDocument(doc: UserDocument): UserRecord {
	// Accounts stored before token versions existed have none: version 0, as their tokens claim.
	return { id: doc._id, ...pick(doc, USER_FIELDS), role: roleOf(doc.role), tokenVersion: doc.tokenVersion ?? 0 };
}

export class MongoUserRepository extends MongoBackend implements UserRepository {
	private readonly users: Collection<UserDocument>;
	/**
	 * Serializes this process's updates of one user. MongoDB's $inc is atomic, but FerretDB v1 runs
	 * it as a read then a write, and a lost token-version increment would keep revoked tokens alive.
	 */
	private readonly writes = new KeyedLock();

	constructor(options: MongoOptions) {
		super(options, "The user store");
		this.users = this.db.collection<UserDocument>("users");
	}

	protected async prepare(): Promise<void> {
		await this.ensureIndexes(this.users, [{ key: { username: 1 }, unique: true }]);
	}

	async insert(user: UserRecord): Promise<void> {
		await this.run(async () => {
			const { id, ...fields } = user;
			try {
				await this.users.insertOne({ _id: id, ...fields });
			} catch (err) {
				if (isDuplicateKey(err)) throw new ConflictError("Username is already taken", "USERNAME_TAKEN");
				throw err;
			}
		});
	}

	async get(id: string): Promise<UserRecord | null> {
		return this.findOne({ _id: id });
	}

	async findByUsername(username: string): Promise<UserRecord | null> {
		return this.findOne({ username: username });
	}

	async update(id: string, patch: UserPatch, options: { revokeTokens?: boolean } = {}): Promise<UserRecord | null> {
		return this.writes.run(id, () => this.run(async () => {
			// Usernames never change, so an update cannot collide with another user. $inc makes the
			// field on accounts stored without it.
			const doc = await this.users.findOneAndUpdate(
				{ _id: id },
				{ $set: { ...definedFields(patch), updatedAt: nowIso() }, ...(options.revokeTokens ? { $inc: { tokenVersion: 1 } } : {}) },
				{ returnDocument: "after" }
			);
			return doc && fromDocument(doc);
		}));
	}

	async remove(id: string): Promise<boolean> {
		return this.run(async () => (await this.users.deleteOne({ _id: id })).deletedCount === 1);
	}

	async list(): Promise<UserRecord[]> {
		return this.run(async () => (await this.users.find({}).sort({ username: 1 }).toArray()).map(fromDocument));
	}

	async count(): Promise<number> {
		return this.run(() => this.users.countDocuments({}));
	}

	private async findOne(filter: Filter<UserDocument>): Promise<UserRecord | null> {
		return this.run(async () => {
			const doc = await this.users.findOne(filter);
			return doc && fromDocument(doc);
		});
	}
}
