/**
 * Share links (issue 15): an owner opens one image or one album to whoever holds a link's
 * unguessable token, until the link expires (410) or its owner deletes it (404 at once), and
 * optionally only after a password. The owner manages links under /api/shares; guests use
 * /s/<token> (routes in services/api.service.ts), with no account. The bytes come from the images
 * service's shared-delivery actions, which serve them as to a guest under the link's grant.
 * docs/sharing.md has the model and its threat model.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { openShareRepository } from "../models/backends.ts";
import type { RequestInfo } from "../models/http/request.ts";
import { THUMBNAIL_SIZE, TRANSFORM } from "../models/images/params.ts";
import type { PublicImage } from "../models/images/public-image.ts";
import { canManage, type Viewer } from "../models/shared/access.ts";
import { BadRequestError, GoneError, NotFoundError, UnauthorizedError } from "../models/shared/errors.ts";
import { newId, nowIso } from "../models/shared/ids.ts";
import { ID } from "../models/shared/params.ts";
import { ShareAccessSigner } from "../models/shares/access-token.ts";
import { grantOf, isExpired, toGuestImage, toGuestShare, toOwnerShare } from "../models/shares/public-share.ts";
import { newShareToken, tokenHashOf, type ShareDoc, type SharePatch, type ShareRepository } from "../models/shares/share.ts";
import { LoginThrottle } from "../models/users/login-throttle.ts";
import { configurePasswordPool, hashPassword, verifyPassword } from "../models/users/password.ts";
import type { AuthUser } from "../models/users/user.ts";

const config = getConfig();

/** How long an unlocked link stays open to its unlocker (the cookie and the access token). */
const ACCESS_TTL_SECONDS = 24 * 3600;
/** The unlock cookie's name; its Path keeps it to one link. */
const ACCESS_COOKIE = "imgmesh_share";

/** Tokens are 43 characters; anything up to this length is looked up (and not found), longer is no token (400). */
const TOKEN = { type: "string", min: 1, max: 128 } as const;
const ACCESS = { type: "string", max: 2048, optional: true } as const;
const PASSWORD = { type: "string", min: 4, max: 256 } as const;
const EXPIRES_AT = { type: "date", convert: true, optional: true, nullable: true } as const;
const FLAG = { type: "boolean", optional: true } as const;
const PAGE = {
	limit: { type: "number", integer: true, min: 1, max: 100, convert: true, optional: true },
	cursor: { type: "string", max: 500, optional: true }
} as const;

interface SharesMeta {
	user?: AuthUser | null;
	request?: RequestInfo;
	clientAddress?: string;
	$statusCode?: number;
	$location?: string;
	$responseHeaders?: Record<string, string | number>;
}
type SharesContext = Context<Record<string, any>, SharesMeta>;

interface SharesVars {
	repo: ShareRepository;
	throttle: LoginThrottle;
	access: ShareAccessSigner;
}

interface SharesMethods {
	viewerOf(ctx: SharesContext): Viewer;
	ownShare(ctx: SharesContext, id: string): Promise<ShareDoc>;
	checkTarget(ctx: SharesContext, target: { imageId?: string; albumId?: string }): Promise<void>;
	linkByToken(token: string): Promise<ShareDoc>;
	linkOf(token: string): Promise<ShareDoc>;
	openLink(ctx: SharesContext, token: string, access: string | undefined): Promise<ShareDoc>;
	unlocked(ctx: SharesContext, share: ShareDoc, access: string | undefined): boolean;
	imageOfLink(ctx: SharesContext, share: ShareDoc, imageId: string | undefined): Promise<string>;
	serveContent(ctx: SharesContext, share: ShareDoc, imageId: string, query: Record<string, unknown>): Promise<Readable | null>;
	serveThumbnail(ctx: SharesContext, share: ShareDoc, imageId: string, size: string): Promise<Readable | null>;
}

/** A future ISO time, or null for none; a time already past is refused (400). */
function expiryOf(value: Date | null | undefined): string | null | undefined {
	if (value === undefined || value === null) return value;
	if (value.getTime() <= Date.now()) throw new BadRequestError("expiresAt must be in the future", "EXPIRED");
	return value.toISOString();
}

/** The values of cookie `name` in a Cookie header (a browser may send several). */
function cookieValues(header: string | undefined, name: string): string[] {
	if (!header) return [];
	return header
		.split(";")
		.map(part => {
			const eq = part.indexOf("=");
			return eq < 0 ? ["", ""] : [part.slice(0, eq).trim(), part.slice(eq + 1).trim()];
		})
		.filter(([key, value]) => key === name && value)
		.map(([, value]) => value!);
}

/** The transform parameters of a request to a link's content: everything but the link's own. */
function transformQuery(params: Record<string, unknown>): Record<string, unknown> {
	const { token: _token, access: _access, imageId: _image, ...query } = params;
	return query;
}

const shares: ServiceSchema<ServiceSettingSchema, SharesMethods, SharesVars> = {
	name: "shares",
	mixins: [repositoryMixin(() => openShareRepository(config), "The share store")],
	settings: { rest: "/shares" },

	actions: {
		/** A new link to an image or an album of the caller's; its URL (with the token) is in this answer only. */
		create: {
			rest: "POST /",
			params: {
				$$strict: true,
				imageId: { ...ID, optional: true },
				albumId: { ...ID, optional: true },
				expiresAt: EXPIRES_AT,
				password: { ...PASSWORD, optional: true, nullable: true },
				allowDownload: FLAG,
				showMetadata: FLAG
			},
			async handler(ctx: SharesContext) {
				const { imageId, albumId, password } = ctx.params;
				if (Boolean(imageId) === Boolean(albumId)) throw new BadRequestError("Give exactly one of imageId and albumId", "SHARE_TARGET");
				const expiresAt = expiryOf(ctx.params.expiresAt) ?? null;
				await this.checkTarget(ctx, { imageId, albumId });
				const token = newShareToken();
				const now = nowIso();
				const share: ShareDoc = {
					id: newId(),
					owner: ctx.meta.user!.id,
					imageId: imageId ?? null,
					albumId: albumId ?? null,
					tokenHash: tokenHashOf(token),
					passwordHash: password ? await hashPassword(password) : null,
					expiresAt,
					allowDownload: ctx.params.allowDownload ?? true,
					showMetadata: ctx.params.showMetadata ?? false,
					createdAt: now,
					updatedAt: now
				};
				await this.repo.insert(share);
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/shares/${share.id}`;
				return { share: { ...toOwnerShare(share), url: `/s/${token}` } };
			}
		},

		/** The caller's links, newest first, without their URLs. */
		list: {
			rest: "GET /",
			params: { $$strict: true, ...PAGE },
			async handler(ctx: SharesContext) {
				const page = await this.repo.listByOwner(ctx.meta.user!.id, ctx.params.limit ?? 50, ctx.params.cursor);
				return { items: page.items.map(toOwnerShare), nextCursor: page.nextCursor };
			}
		},

		get: {
			rest: "GET /:id",
			params: { $$strict: true, id: ID },
			async handler(ctx: SharesContext) {
				return toOwnerShare(await this.ownShare(ctx, ctx.params.id));
			}
		},

		/** Changes expiry (null: none), password (null: none), allowDownload and showMetadata; at once for every guest. */
		update: {
			rest: "PATCH /:id",
			params: { $$strict: true, id: ID, expiresAt: EXPIRES_AT, password: { ...PASSWORD, optional: true, nullable: true }, allowDownload: FLAG, showMetadata: FLAG },
			async handler(ctx: SharesContext) {
				const share = await this.ownShare(ctx, ctx.params.id);
				const { password, allowDownload, showMetadata } = ctx.params;
				const patch: SharePatch = { expiresAt: expiryOf(ctx.params.expiresAt), allowDownload, showMetadata };
				if (password !== undefined) patch.passwordHash = password === null ? null : await hashPassword(password);
				const updated = await this.repo.update(share.id, patch);
				if (!updated) throw new NotFoundError("Share link", share.id);
				return toOwnerShare(updated);
			}
		},

		/** A link by its token, whoever made it, expired or not (operators: REPL `share show`). */
		byToken: {
			visibility: "public",
			params: { $$strict: true, token: TOKEN },
			async handler(ctx: SharesContext) {
				return toOwnerShare(await this.linkByToken(ctx.params.token));
			}
		},

		/** Revokes a link by its token, whoever made it (operators taking a link down: REPL `share revoke`). */
		revokeByToken: {
			visibility: "public",
			params: { $$strict: true, token: TOKEN },
			async handler(ctx: SharesContext) {
				const share = await this.linkByToken(ctx.params.token);
				if (!(await this.repo.remove(share.id))) throw new NotFoundError("Share link");
				return toOwnerShare(share);
			}
		},

		/** Revokes the link: its URL answers 404 from now on. */
		remove: {
			rest: "DELETE /:id",
			params: { $$strict: true, id: ID },
			async handler(ctx: SharesContext) {
				const share = await this.ownShare(ctx, ctx.params.id);
				if (!(await this.repo.remove(share.id))) throw new NotFoundError("Share link", share.id);
				ctx.meta.$statusCode = 204;
				return null;
			}
		},

		/** GET /s/<token>: the link and its image, or a page of its album's images. */
		open: {
			auth: "public",
			params: { $$strict: true, token: TOKEN, access: ACCESS, ...PAGE },
			async handler(ctx: SharesContext) {
				const share = await this.openLink(ctx, ctx.params.token, ctx.params.access);
				const grant = grantOf(share);
				if (share.imageId !== null) {
					// The grant travels in meta: the images service shows metadata by it (imageView).
					const image = await ctx.call<PublicImage, { id: string }>("images.sharedGet", { id: share.imageId }, { meta: { grant } });
					return { share: toGuestShare(share), image: toGuestImage(image, grant) };
				}
				const { cursor, limit } = ctx.params;
				const page = await ctx.call<{ items: PublicImage[]; nextCursor: string | null }, object>("albums.sharedPage", { albumId: share.albumId, cursor, limit }, { meta: { grant } });
				return { share: toGuestShare(share), items: page.items.map(image => toGuestImage(image, grant)), nextCursor: page.nextCursor };
			}
		},

		/** GET /s/<token>/content: an image link's image (original or variant, as the link allows). */
		content: {
			auth: "public",
			params: { $$strict: true, token: TOKEN, access: ACCESS, ...TRANSFORM },
			async handler(ctx: SharesContext) {
				const share = await this.openLink(ctx, ctx.params.token, ctx.params.access);
				return this.serveContent(ctx, share, await this.imageOfLink(ctx, share, undefined), transformQuery(ctx.params));
			}
		},

		thumbnail: {
			auth: "public",
			params: { $$strict: true, token: TOKEN, access: ACCESS, size: THUMBNAIL_SIZE },
			async handler(ctx: SharesContext) {
				const share = await this.openLink(ctx, ctx.params.token, ctx.params.access);
				return this.serveThumbnail(ctx, share, await this.imageOfLink(ctx, share, undefined), ctx.params.size);
			}
		},

		/** GET /s/<token>/images/<imageId>/content: an image of an album link's album. */
		albumContent: {
			auth: "public",
			params: { $$strict: true, token: TOKEN, imageId: ID, access: ACCESS, ...TRANSFORM },
			async handler(ctx: SharesContext) {
				const share = await this.openLink(ctx, ctx.params.token, ctx.params.access);
				return this.serveContent(ctx, share, await this.imageOfLink(ctx, share, ctx.params.imageId), transformQuery(ctx.params));
			}
		},

		albumThumbnail: {
			auth: "public",
			params: { $$strict: true, token: TOKEN, imageId: ID, access: ACCESS, size: THUMBNAIL_SIZE },
			async handler(ctx: SharesContext) {
				const share = await this.openLink(ctx, ctx.params.token, ctx.params.access);
				return this.serveThumbnail(ctx, share, await this.imageOfLink(ctx, share, ctx.params.imageId), ctx.params.size);
			}
		},

		/**
		 * POST /s/<token>/unlock {password}: throttled per link and per address like logins. Sets an
		 * HttpOnly cookie for the link's path and answers an access token for `?access=` (<img> sources).
		 */
		unlock: {
			auth: "public",
			params: { $$strict: true, token: TOKEN, password: { type: "string", min: 1, max: 256 } },
			async handler(ctx: SharesContext) {
				const share = await this.linkOf(ctx.params.token);
				if (share.passwordHash !== null) {
					const attempt = this.throttle.begin(share.id, ctx.meta.clientAddress);
					let valid: boolean;
					try {
						valid = await verifyPassword(ctx.params.password, share.passwordHash);
					} catch (err) {
						attempt.abandoned();
						throw err;
					}
					if (!valid) {
						attempt.failed();
						throw new UnauthorizedError("Wrong password for this link", "INVALID_PASSWORD");
					}
					attempt.succeeded();
				}
				const accessToken = this.access.issue(share);
				const cookie = [`${ACCESS_COOKIE}=${accessToken}`, `Path=/s/${ctx.params.token}`, `Max-Age=${ACCESS_TTL_SECONDS}`, "HttpOnly", "SameSite=Lax"];
				ctx.meta.$responseHeaders = { "Set-Cookie": cookie.join("; "), "Cache-Control": "no-store" };
				return { accessToken, expiresIn: ACCESS_TTL_SECONDS };
			}
		}
	},

	events: {
		// A deleted (purged) image takes its links with it; a trashed one keeps them, shut (404), for its restore.
		"image.deleted": {
			params: { id: "string" },
			async handler(ctx: Context<{ id: string }>) {
				await this.repo.removeByTarget({ imageId: ctx.params.id });
			}
		},
		// A deleted album takes its links with it (they would answer 404, its page being gone).
		"album.deleted": {
			params: { id: "string" },
			async handler(ctx: Context<{ id: string }>) {
				await this.repo.removeByTarget({ albumId: ctx.params.id });
			}
		},
		// users.changed also tells of a deleted account (as albums hear it): its links go with it. Image
		// links would go with its images anyway; album links would only stop answering.
		"users.changed": {
			params: { id: "string" },
			async handler(ctx: Context<{ id: string }>) {
				if (!(await ctx.call<boolean, { id: string }>("users.exists", { id: ctx.params.id }))) await this.repo.removeByOwner(ctx.params.id);
			}
		}
	},

	methods: {
		viewerOf(ctx: SharesContext): Viewer {
			const user = ctx.meta.user;
			return user ? { id: user.id, role: user.role } : null;
		},

		/** A link its owner (or an admin) manages; 404 for everyone else. */
		async ownShare(ctx: SharesContext, id: string): Promise<ShareDoc> {
			const share = await this.repo.get(id);
			if (!share || !canManage(this.viewerOf(ctx), share)) throw new NotFoundError("Share link", id);
			return share;
		},

		/**
		 * Only what the caller may manage can be shared: their own image, or an album they own. What
		 * they may merely see (someone's public image, an album shared with them) answers 404 like
		 * what does not exist.
		 */
		async checkTarget(ctx: SharesContext, { imageId, albumId }: { imageId?: string; albumId?: string }): Promise<void> {
			const viewer = this.viewerOf(ctx);
			if (imageId) {
				const image = await ctx.call<PublicImage, { id: string }>("images.get", { id: imageId });
				if (!canManage(viewer, image)) throw new NotFoundError("Image", imageId);
				return;
			}
			const { album } = await ctx.call<{ album: { owner: string } }, { id: string }>("albums.get", { id: albumId! });
			if (!canManage(viewer, album)) throw new NotFoundError("Album", albumId);
		},

		/** The link a token names, found by the token's hash; 404 when there is none (never was, or revoked). */
		async linkByToken(token: string): Promise<ShareDoc> {
			const share = await this.repo.findByTokenHash(tokenHashOf(token));
			if (!share) throw new NotFoundError("Share link");
			return share;
		},

		/** linkByToken, and 410 once the link has expired. */
		async linkOf(token: string): Promise<ShareDoc> {
			const share = await this.linkByToken(token);
			if (isExpired(share)) throw new GoneError("This share link has expired", "SHARE_EXPIRED");
			return share;
		},

		/** linkOf, and for a password link 401 unless this request carries its unlock cookie or access token. */
		async openLink(ctx: SharesContext, token: string, access: string | undefined): Promise<ShareDoc> {
			const share = await this.linkOf(token);
			if (share.passwordHash !== null && !this.unlocked(ctx, share, access)) {
				throw new UnauthorizedError(`This link needs its password: POST /s/${token}/unlock`, "PASSWORD_REQUIRED");
			}
			return share;
		},

		unlocked(ctx: SharesContext, share: ShareDoc, access: string | undefined): boolean {
			const candidates = [...(access ? [access] : []), ...cookieValues(ctx.meta.request?.cookie, ACCESS_COOKIE)];
			return candidates.some(candidate => this.access.opens(candidate, share));
		},

		/**
		 * Which image a request to a link names: an image link's own (no image id in the path), or one
		 * of an album link's album (the album says whether it holds it now). Anything else: 404.
		 */
		async imageOfLink(ctx: SharesContext, share: ShareDoc, imageId: string | undefined): Promise<string> {
			if (imageId === undefined) {
				if (share.imageId === null) throw new NotFoundError("Image");
				return share.imageId;
			}
			const held = share.albumId !== null && (await ctx.call<boolean, object>("albums.contains", { albumId: share.albumId, imageId }));
			if (!held) throw new NotFoundError("Image", imageId);
			return imageId;
		},

		serveContent(ctx: SharesContext, share: ShareDoc, imageId: string, query: Record<string, unknown>): Promise<Readable | null> {
			return ctx.call("images.sharedContent", { ...query, id: imageId, grant: grantOf(share) });
		},

		serveThumbnail(ctx: SharesContext, share: ShareDoc, imageId: string, size: string): Promise<Readable | null> {
			return ctx.call("images.sharedThumbnail", { id: imageId, grant: grantOf(share), size });
		}
	},

	created() {
		// Password links hash and verify in the password pool's threads, as logins do; a node
		// without the users service sizes the pool here.
		configurePasswordPool({ workers: config.passwordHashWorkers, maxQueue: config.passwordHashQueue });
		this.throttle = new LoginThrottle({
			perAccount: config.loginFailuresPerAccount,
			perAddress: config.loginFailuresPerAddress,
			baseMs: config.loginThrottleBaseMs,
			maxMs: config.loginThrottleMaxMs,
			refusal: { attempts: "unlocks of this link", type: "UNLOCK_THROTTLED" }
		});
		this.access = new ShareAccessSigner(config.jwtSecret, ACCESS_TTL_SECONDS);
	}
};

export default shares;
