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
	/**
	 * Tokens carry the version current when they were issued; moving it forward (password change,
	 * disabling, "sign out everywhere") revokes all of them at once. A counter, not a time: JWT
	 * `iat` has 1-second resolution, so a time could not tell a token issued just before a change
	 * from one issued just after it.
	 */
	tokenVersion: number;
	createdAt: string;
	updatedAt: string;
}

/** Every field of a UserRecord but its id, for stores that map records field by field. */
export const USER_FIELDS = ["username", "name", "role", "disabled", "passwordHash", "tokenVersion", "createdAt", "updatedAt"] as const satisfies readonly (keyof UserRecord)[];

/** The caller of a request, as the gateway authenticated it. */
export interface AuthUser {
	id: string;
	username: string;
	role: Role;
}

/** What the gateway needs of a token's user, cached by `users.identify`: the caller and the tokens it still accepts. */
export interface Identity extends AuthUser {
	tokenVersion: number;
}

/** What clients see of a user: never the password hash nor the token version. */
export type PublicUser = Omit<UserRecord, "passwordHash" | "tokenVersion">;

export type UserPatch = Partial<Pick<UserRecord, "name" | "role" | "disabled" | "passwordHash">>;

export interface UserRepository {
	/** Throws ConflictError when the username is taken. */
	insert(user: UserRecord): Promise<void>;
	get(id: string): Promise<UserRecord | null>;
	findByUsername(username: string): Promise<UserRecord | null>;
	/** `revokeTokens` moves tokenVersion forward by one, atomically with the patch. */
	update(id: string, patch: UserPatch, options?: { revokeTokens?: boolean }): Promise<UserRecord | null>;
	remove(id: string): Promise<boolean>;
	list(): Promise<UserRecord[]>;
	count(): Promise<number>;
	ping(): Promise<boolean>;
	close(): Promise<void>;
}

export function toPublicUser(user: UserRecord): PublicUser {
	const { passwordHash: _hidden, tokenVersion: _internal, ...rest } = user;
	return rest;
}
