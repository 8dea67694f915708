/**
 * Users: the stored shape, the public shape and the backend-neutral repository contract. The web
 * app imports PublicUser (type-only) and compiles this file without Node's types: import nothing
 * here that needs them.
 */
import type { Role } from "../shared/access.ts";

export interface UserRecord {
	id: string;
	username: string;
	name: string;
	role: Role;
	disabled: boolean;
	passwordHash: string;
	createdAt: string;
	updatedAt: string;
}

/** Every field of a UserRecord but its id, for stores that map records field by field. */
export const USER_FIELDS = ["username", "name", "role", "disabled", "passwordHash", "createdAt", "updatedAt"] as const satisfies readonly (keyof UserRecord)[];

/** The caller of a request, as the gateway authenticated it. */
export interface AuthUser {
	id: string;
	username: string;
	role: Role;
}

/** What clients see of a user: never the password hash. */
export type PublicUser = Omit<UserRecord, "passwordHash">;

export type UserPatch = Partial<Pick<UserRecord, "name" | "role" | "disabled" | "passwordHash">>;

export interface UserRepository {
	/** Throws ConflictError when the username is taken. */
	insert(user: UserRecord): Promise<void>;
	get(id: string): Promise<UserRecord | null>;
	findByUsername(username: string): Promise<UserRecord | null>;
	update(id: string, patch: UserPatch): Promise<UserRecord | null>;
	remove(id: string): Promise<boolean>;
	list(): Promise<UserRecord[]>;
	count(): Promise<number>;
	ping(): Promise<boolean>;
	close(): Promise<void>;
}

export function toPublicUser(user: UserRecord): PublicUser {
	const { passwordHash: _hidden, ...rest } = user;
	return rest;
}
