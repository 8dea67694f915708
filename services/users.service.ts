/**
 * Users: registration, login (JWT), profile, and the admin's user management. The gateway
 * verifies tokens itself and asks `users.identify` (cached) whether the user still exists.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { getConfig } from "../config/index.ts";
import { openUserRepository } from "../models/backends.ts";
import { ConflictError, ForbiddenError, NotFoundError, UnauthorizedError } from "../models/shared/errors.ts";
import { newId, nowIso } from "../models/shared/ids.ts";
import type { Role } from "../models/shared/access.ts";
import { TokenSigner } from "../models/users/token.ts";
import { LoginThrottle } from "../models/users/login-throttle.ts";
import { closePasswordPool, configurePasswordPool, dummyHash, hashPassword, verifyPassword } from "../models/users/password.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { toPublicUser, type PublicUser, type UserPatch, type UserRecord, type UserRepository } from "../models/users/user.ts";
import type { AuthUser, Identity } from "../models/users/user.ts";

const USERNAME = { type: "string", min: 3, max: 32, pattern: /^[a-z0-9_.-]+$/, messages: { stringPattern: "Username may only contain a-z, 0-9, '_', '.' and '-'" } };
const PASSWORD = { type: "string", min: 8, max: 256 };
const DISPLAY_NAME = { type: "string", max: 100, trim: true, optional: true };
const BAD_CREDENTIALS = "Invalid username or password";

const tokens = new TokenSigner(getConfig().jwtSecret, getConfig().jwtExpiresIn);

interface UsersVars {
	repo: UserRepository;
	throttle: LoginThrottle;
}
interface UsersMethods {
	createUser(username: string, password: string, name: string | undefined, role: Role): Promise<UserRecord>;
	changeAccount(ctx: Context, id: string, patch: { role?: Role; disabled?: boolean }): Promise<PublicUser>;
	issueToken(user: UserRecord): { token: string; expiresIn: number };
	revokeTokens(ctx: Context, id: string): Promise<void>;
	requireUser(ctx: Context): Promise<UserRecord>;
	userChanged(ctx: Context, id: string): Promise<void>;
	forgetIdentity(id: string): Promise<void>;
	ensureAdmin(): Promise<void>;
}

type UsersContext = Context<Record<string, any>, { user?: AuthUser | null; clientAddress?: string; $statusCode?: number; $location?: string }>;

const users: ServiceSchema<ServiceSettingSchema, UsersMethods, UsersVars> = {
	name: "users",
	mixins: [repositoryMixin(() => openUserRepository(getConfig()), "The user store")],
	settings: { rest: "/" },

	actions: {
		register: {
			rest: "POST /auth/register",
			auth: "public",
			params: { $$strict: true, username: USERNAME, password: PASSWORD, name: DISPLAY_NAME },
			async handler(ctx: UsersContext) {
				const { username, password, name } = ctx.params;
				const user = await this.createUser(username, password, name, "user");
				ctx.meta.$statusCode = 201;
				// The new account is the caller's own from now on.
				ctx.meta.$location = "/api/auth/me";
				return { user: toPublicUser(user), token: this.issueToken(user).token };
			}
		},

		/** Operator (REPL) account creation; never exposed over REST. */
		create: {
			visibility: "public",
			params: { $$strict: true, username: USERNAME, password: PASSWORD, name: DISPLAY_NAME, role: { type: "enum", values: ["user", "admin"] } },
			async handler(ctx: UsersContext) {
				const { username, password, name, role } = ctx.params;
				return toPublicUser(await this.createUser(username, password, name, role));
			}
		},

		login: {
			rest: "POST /auth/login",
			auth: "public",
			params: { $$strict: true, username: { type: "string", max: 64 }, password: { type: "string", max: 256 } },
			async handler(ctx: UsersContext) {
				// Throttled usernames and addresses are refused (429) before any scrypt work. The
				// address is the gateway's (ctx.meta.clientAddress); calls from inside have none.
				const attempt = this.throttle.begin(ctx.params.username, ctx.meta.clientAddress);
				let user: UserRecord | null;
				let valid: boolean;
				try {
					user = await this.repo.findByUsername(ctx.params.username);
					// Verify against a dummy hash for unknown users too: equal timing, equal answer.
					valid = await verifyPassword(ctx.params.password, user?.passwordHash ?? (await dummyHash()));
				} catch (err) {
					attempt.abandoned();
					throw err;
				}
				if (!user || !valid || user.disabled) {
					attempt.failed();
					throw new UnauthorizedError(BAD_CREDENTIALS, "INVALID_CREDENTIALS");
				}
				attempt.succeeded();
				return { ...this.issueToken(user), user: toPublicUser(user) };
			}
		},

		me: {
			rest: "GET /auth/me",
			params: { $$strict: true },
			async handler(ctx: UsersContext) {
				return toPublicUser(await this.requireUser(ctx));
			}
		},

		updateMe: {
			rest: "PATCH /auth/me",
			params: { $$strict: true, name: DISPLAY_NAME, password: { ...PASSWORD, optional: true } },
			async handler(ctx: UsersContext) {
				const user = await this.requireUser(ctx);
				const patch: UserPatch = {};
				if (ctx.params.name) patch.name = ctx.params.name;
				if (ctx.params.password) patch.passwordHash = await hashPassword(ctx.params.password);
				// A new password signs out every session, this one included: whoever held the old
				// password may hold a token too.
				const revokeTokens = patch.passwordHash !== undefined;
				const updated = await this.repo.update(user.id, patch, { revokeTokens });
				if (!updated) throw new UnauthorizedError();
				if (revokeTokens) await this.userChanged(ctx, user.id);
				return toPublicUser(updated);
			}
		},

		/** "Sign out everywhere": every token of the caller issued so far stops working. */
		logoutAll: {
			rest: "POST /auth/logout-all",
			params: { $$strict: true },
			async handler(ctx: UsersContext) {
				const user = await this.requireUser(ctx);
				await this.revokeTokens(ctx, user.id);
				ctx.meta.$statusCode = 204;
				return null;
			}
		},

		removeMe: {
			rest: "DELETE /auth/me",
			params: { $$strict: true },
			async handler(ctx: UsersContext) {
				const user = await this.requireUser(ctx);
				// Imports and images first: if either fails the account still exists and the call can
				// be retried.
				await ctx.call("imports.removeByOwner", { owner: user.id });
				await ctx.call("images.removeByOwner", { owner: user.id });
				await this.repo.remove(user.id);
				await this.userChanged(ctx, user.id);
				// Imports that were mid-download may have stored an image between the first sweep and
				// the removal; images.ingest refuses the owner from now on, and removes what it stored
				// if the owner went meanwhile, so this second sweep leaves nothing behind.
				await ctx.call("images.removeByOwner", { owner: user.id });
				ctx.meta.$statusCode = 204;
				return null;
			}
		},

		list: {
			rest: "GET /users",
			auth: "admin",
			params: { $$strict: true },
			async handler() {
				return { items: (await this.repo.list()).map(toPublicUser) };
			}
		},

		adminUpdate: {
			rest: "PATCH /users/:id",
			auth: "admin",
			params: {
				$$strict: true,
				id: { type: "string", max: 64 },
				role: { type: "enum", values: ["user", "admin"], optional: true },
				disabled: { type: "boolean", convert: true, optional: true }
			},
			async handler(ctx: UsersContext) {
				const { id, role, disabled } = ctx.params as { id: string; role?: Role; disabled?: boolean };
				if (id === ctx.meta.user?.id && (role === "user" || disabled === true)) {
					throw new ForbiddenError("Admins cannot demote or disable themselves", "SELF_LOCKOUT");
				}
				return this.changeAccount(ctx, id, { role, disabled });
			}
		},

		/** Operator (REPL) role and access changes by username; never exposed over REST. */
		updateByName: {
			visibility: "public",
			params: {
				$$strict: true,
				username: { type: "string", max: 64 },
				role: { type: "enum", values: ["user", "admin"], optional: true },
				disabled: { type: "boolean", optional: true }
			},
			async handler(ctx: UsersContext) {
				const { username, role, disabled } = ctx.params as { username: string; role?: Role; disabled?: boolean };
				const user = await this.repo.findByUsername(username);
				if (!user) throw new NotFoundError("User", username);
				return this.changeAccount(ctx, user.id, { role, disabled });
			}
		},

		/**
		 * Gateway look-up: who a token's subject is now and which token version it accepts (throws
		 * when gone or disabled). Cached; every change that matters forgets the entry (userChanged).
		 */
		identify: {
			visibility: "public",
			params: { $$strict: true, id: { type: "string", max: 64 } },
			cache: { keys: ["id"], ttl: 30 },
			async handler(ctx: Context<{ id: string }>): Promise<Identity> {
				const user = await this.repo.get(ctx.params.id);
				if (!user || user.disabled) throw new UnauthorizedError("Account no longer active", "ACCOUNT_INACTIVE");
				return { id: user.id, username: user.username, role: user.role, tokenVersion: user.tokenVersion };
			}
		},

		/** The id of the account that has this username now, or null (owner search, images.list). */
		idOf: {
			visibility: "public",
			params: { $$strict: true, username: { type: "string", max: 500 } },
			async handler(ctx: Context<{ username: string }>): Promise<string | null> {
				return (await this.repo.findByUsername(ctx.params.username))?.id ?? null;
			}
		},

		/**
		 * Whether the account exists (disabled or not): images.ingest asks before and after storing
		 * for an import, so a deleted account gets no images. Not cached: a deletion counts at once.
		 */
		exists: {
			visibility: "public",
			params: { $$strict: true, id: { type: "string", max: 64 } },
			async handler(ctx: Context<{ id: string }>): Promise<boolean> {
				return (await this.repo.get(ctx.params.id)) !== null;
			}
		},

		count: {
			visibility: "public",
			params: { $$strict: true },
			async handler() {
				return this.repo.count();
			}
		},

	},

	events: {
		// Any node that caches identities drops them when a user changes.
		"users.changed": {
			params: { id: "string" },
			async handler(ctx: Context<{ id: string }>) {
				await this.forgetIdentity(ctx.params.id);
			}
		}
	},

	methods: {
		async createUser(username: string, password: string, name: string | undefined, role: Role): Promise<UserRecord> {
			const now = nowIso();
			const user: UserRecord = {
				id: newId(),
				username,
				name: name || username,
				role,
				disabled: false,
				passwordHash: await hashPassword(password),
				tokenVersion: 0,
				createdAt: now,
				updatedAt: now
			};
			await this.repo.insert(user);
			return user;
		},

		/**
		 * Role or access change; cached identities everywhere forget the user at once. Disabling
		 * revokes the tokens too, so enabling the account again does not bring them back.
		 */
		async changeAccount(ctx: Context, id: string, patch: { role?: Role; disabled?: boolean }): Promise<PublicUser> {
			const updated = await this.repo.update(id, patch, { revokeTokens: patch.disabled === true });
			if (!updated) throw new NotFoundError("User", id);
			await this.userChanged(ctx, id);
			return toPublicUser(updated);
		},

		async revokeTokens(ctx: Context, id: string): Promise<void> {
			if (!(await this.repo.update(id, {}, { revokeTokens: true }))) throw new NotFoundError("User", id);
			await this.userChanged(ctx, id);
		},

		issueToken(user: UserRecord) {
			return tokens.issue(user);
		},

		async requireUser(ctx: UsersContext): Promise<UserRecord> {
			const id = ctx.meta.user?.id;
			const user = id ? await this.repo.get(id) : null;
			if (!user) throw new UnauthorizedError();
			return user;
		},

		/** Forgets cached identities of the user here at once, and on every other users node. */
		async userChanged(ctx: Context, id: string) {
			await this.forgetIdentity(id);
			await ctx.broadcast("users.changed", { id });
		},

		async forgetIdentity(id: string) {
			// Moleculer's key for `cache.keys: ["id"]` is the action name and the JSON of the value.
			await this.broker.cacher?.clean(`users.identify:${JSON.stringify(id)}`);
		},

		/** Creates or updates the configured admin account at start. */
		async ensureAdmin() {
			const { adminUsername, adminPassword } = getConfig();
			const existing = await this.repo.findByUsername(adminUsername);
			if (existing) {
				// A configured password that differs from the stored one is a reset: the old
				// password's tokens go. An unchanged one keeps the admin signed in across restarts.
				const reset = !(await verifyPassword(adminPassword, existing.passwordHash));
				const passwordHash = reset ? await hashPassword(adminPassword) : undefined;
				await this.repo.update(existing.id, { role: "admin", disabled: false, passwordHash }, { revokeTokens: reset });
				return;
			}
			const passwordHash = await hashPassword(adminPassword);
			const now = nowIso();
			try {
				await this.repo.insert({
					id: newId(),
					username: adminUsername,
					name: "Administrator",
					role: "admin",
					disabled: false,
					passwordHash,
					tokenVersion: 0,
					createdAt: now,
					updatedAt: now
				});
				this.logger.info(`Admin account '${adminUsername}' created (password: ADMIN_PASSWORD, or secrets.json in DATA_DIR).`);
			} catch (err) {
				// Another node created it at the same moment: that is the same outcome.
				if (!(err instanceof ConflictError)) throw err;
			}
		}
	},

	created() {
		const config = getConfig();
		configurePasswordPool({ workers: config.passwordHashWorkers, maxQueue: config.passwordHashQueue });
		this.throttle = new LoginThrottle({
			perAccount: config.loginFailuresPerAccount,
			perAddress: config.loginFailuresPerAddress,
			baseMs: config.loginThrottleBaseMs,
			maxMs: config.loginThrottleMaxMs
		});
	},

	async started() {
		await this.ensureAdmin();
	},

	async stopped() {
		await closePasswordPool();
	}
};

export default users;
