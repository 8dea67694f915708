/**
 * The one access rule of imgmesh: who may see and who may change what. Everything owned by a
 * user (images, import jobs) goes through these functions, in services and in every repository's
 * queries, so the rule cannot drift between places. Whatever a viewer may not see answers 404,
 * never 403: existence stays private. The web app imports Role (type-only) and compiles this
 * file without Node's types: import nothing here that needs them.
 */

export type Role = "user" | "admin";

/** The caller of a request; null for anonymous callers. */
export type Viewer = { id: string; role: Role } | null;

/** Stored roles outside this list (a hand-edited record) read as the least privilege. */
export function roleOf(value: unknown): Role {
	return value === "admin" ? "admin" : "user";
}

export function isAdmin(viewer: Viewer): boolean {
	return viewer?.role === "admin";
}

/** The owner and administrators may change (and see) a thing; nobody else. */
export function canManage(viewer: Viewer, owned: { owner: string }): boolean {
	return isAdmin(viewer) || (viewer !== null && viewer.id === owned.owner);
}

/** Public things are for everyone; the rest only for those who may manage them. */
export function canSee(viewer: Viewer, item: { owner: string; visibility: string }): boolean {
	return item.visibility === "public" || canManage(viewer, item);
}

/**
 * The same rule as a query scope, for listings that repositories compile into their own query
 * language: everything (admins), public things only (anonymous callers), or public things plus
 * the viewer's own.
 */
export type AccessScope = { all: true } | { all: false; owner: string | null };

export function accessScope(viewer: Viewer): AccessScope {
	if (isAdmin(viewer)) return { all: true };
	return { all: false, owner: viewer?.id ?? null };
}

/** Whose things a listing of owned things (import jobs) covers: null means everyone's. */
export function ownerScope(viewer: { id: string; role: Role }): string | null {
	return isAdmin(viewer) ? null : viewer.id;
}
