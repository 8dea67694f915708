/**
 * Albums: an owner's named lists of images, shared with members who view them or contribute their
 * own images. The albums service keeps the lists and the roles; the images stay the images
 * service's, which asks here (grantsView, imageIdsFor) whether a membership opens an image it
 * would otherwise hide. Anyone without a role in an album gets 404 (existence stays private); a
 * member trying what their role does not allow gets 403.
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { getConfig } from "../config/index.ts";
import { repositoryMixin } from "../mixins/repository.mixin.ts";
import { openAlbumRepository } from "../models/backends.ts";
import { ALBUM_SORTS, type Album, type AlbumEntry, type AlbumRepository, type AlbumRole, type AlbumSort, type AlbumSummary } from "../models/albums/album.ts";
import type { PublicImage } from "../models/images/public-image.ts";
import { canManage, type Viewer } from "../models/shared/access.ts";
import { BadRequestError, ForbiddenError, NotFoundError } from "../models/shared/errors.ts";
import { newId, nowIso } from "../models/shared/ids.ts";
import { KeyedLock } from "../models/shared/keyed-lock.ts";
import { ID } from "../models/shared/params.ts";
import type { AuthUser } from "../models/users/user.ts";

/** Images one call may add or remove: bounds the work and the size of one request. */
export const MAX_IDS_PER_CALL = 1000;

const NAME = { type: "string", min: 1, max: 200, trim: true };
const DESCRIPTION = { type: "string", max: 5000, trim: true, optional: true };
const IDS = { type: "array", items: ID, min: 1, max: MAX_IDS_PER_CALL };
const PAGE = {
	limit: { type: "number", integer: true, min: 1, max: 100, convert: true, optional: true },
	cursor: { type: "string", max: 500, optional: true },
	sort: { type: "enum", values: [...ALBUM_SORTS], optional: true }
};

/** What each role may do beyond reading. */
const MANAGERS: AlbumRole[] = ["owner"];
const CONTRIBUTORS: AlbumRole[] = ["owner", "contributor"];

interface Access {
	album: Album;
	role: AlbumRole;
}

type AlbumsContext = Context<Record<string, any>, { user?: AuthUser | null; $statusCode?: number; $location?: string }>;

interface AlbumsMethods {
	viewerOf(ctx: AlbumsContext): Viewer;
	access(albumId: string, viewer: Viewer): Promise<Access>;
	accessAs(ctx: AlbumsContext, albumId: string, allowed: AlbumRole[]): Promise<Access>;
	summary(access: Access): Promise<AlbumSummary>;
	imagesByIds(ctx: AlbumsContext, ids: string[]): Promise<PublicImage[]>;
	imagePage(ctx: AlbumsContext, albumId: string, params: { sort?: AlbumSort; limit?: number; cursor?: string }): Promise<{ items: PublicImage[]; nextCursor: string | null }>;
	followTrash(ctx: AlbumsContext, imageId: string): Promise<void>;
}

interface AlbumsVars {
	repo: AlbumRepository;
	/** One trash change of an image at a time (followTrash). */
	trashChanges: KeyedLock;
}

/** Where an image sorts under `sort=takenAt`: when the camera took it, else when it was uploaded. */
function takenAtOf(image: PublicImage): string {
	return image.metadata?.takenAt ?? image.createdAt;
}

const albums: ServiceSchema<ServiceSettingSchema, AlbumsMethods, AlbumsVars> = {
	name: "albums",
	mixins: [repositoryMixin(() => openAlbumRepository(getConfig()), "The album store")],
	settings: { rest: "/albums" },

	actions: {
		/** The caller's albums and those shared with them, newest first, with counts and a cover. */
		list: {
			rest: "GET /",
			params: { $$strict: true },
			async handler(ctx: AlbumsContext) {
				return { items: await this.repo.listFor(ctx.meta.user!.id) };
			}
		},

		create: {
			rest: "POST /",
			params: { $$strict: true, name: NAME, description: DESCRIPTION },
			async handler(ctx: AlbumsContext) {
				const user = ctx.meta.user!;
				const now = nowIso();
				const album: Album = { id: newId(), owner: user.id, ownerName: user.username, name: ctx.params.name, description: ctx.params.description ?? "", createdAt: now, updatedAt: now };
				await this.repo.insert(album);
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/albums/${album.id}`;
				return { album: await this.summary({ album, role: "owner" }) };
			}
		},

		/** The album; its owner also gets the members with their roles. */
		get: {
			rest: "GET /:id",
			params: { $$strict: true, id: ID },
			async handler(ctx: AlbumsContext) {
				const access = await this.accessAs(ctx, ctx.params.id, ["owner", "contributor", "viewer"]);
				const album = await this.summary(access);
				return access.role === "owner" ? { album, members: await this.repo.members(access.album.id) } : { album };
			}
		},

		update: {
			rest: "PATCH /:id",
			params: { $$strict: true, id: ID, name: { ...NAME, optional: true }, description: DESCRIPTION },
			async handler(ctx: AlbumsContext) {
				const { album } = await this.accessAs(ctx, ctx.params.id, MANAGERS);
				// An optional parameter may also be null; here that means "not given", as undefined does.
				const updated = await this.repo.update(album.id, { name: ctx.params.name ?? undefined, description: ctx.params.description ?? undefined });
				if (!updated) throw new NotFoundError("Album", album.id);
				return { album: await this.summary({ album: updated, role: "owner" }) };
			}
		},

		/** Removes the album with its memberships; the images stay where they are. */
		remove: {
			rest: "DELETE /:id",
			params: { $$strict: true, id: ID },
			async handler(ctx: AlbumsContext) {
				const { album } = await this.accessAs(ctx, ctx.params.id, MANAGERS);
				// Share links of the album go with it (services/shares.service.ts).
				if (await this.repo.remove(album.id)) ctx.emit("album.deleted", { id: album.id, owner: album.owner });
				ctx.meta.$statusCode = 204;
				return null;
			}
		},

		/**
		 * Adds images the caller may manage (owners and contributors; admins any image); 404 for any
		 * other id, before anything is added. Images already in the album stay as they were.
		 */
		addImages: {
			rest: "POST /:id/images",
			params: { $$strict: true, id: ID, ids: IDS },
			async handler(ctx: AlbumsContext) {
				const { album } = await this.accessAs(ctx, ctx.params.id, CONTRIBUTORS);
				const ids = [...new Set<string>(ctx.params.ids)];
				const found = new Map((await this.imagesByIds(ctx, ids)).map(image => [image.id, image]));
				const viewer = this.viewerOf(ctx);
				const refused = ids.find(id => !found.has(id) || !canManage(viewer, found.get(id)!));
				if (refused) throw new NotFoundError("Image", refused);
				const now = nowIso();
				const entries: AlbumEntry[] = ids.map(id => {
					const image = found.get(id)!;
					return { imageId: id, imageOwner: image.owner, addedBy: viewer!.id, addedAt: now, takenAt: takenAtOf(image) };
				});
				return { added: await this.repo.addImages(album.id, entries) };
			}
		},

		/** Owners remove any image; contributors only their own (403 for any other, before anything goes). */
		removeImages: {
			rest: "DELETE /:id/images",
			params: { $$strict: true, id: ID, ids: IDS },
			async handler(ctx: AlbumsContext) {
				const { album, role } = await this.accessAs(ctx, ctx.params.id, CONTRIBUTORS);
				if (role !== "owner") {
					const others = (await this.repo.entries(album.id, ctx.params.ids)).filter(entry => entry.imageOwner !== ctx.meta.user!.id);
					if (others.length > 0) throw new ForbiddenError("Contributors remove only their own images from an album", "NOT_YOUR_IMAGE");
				}
				return { removed: await this.repo.removeImages(album.id, ctx.params.ids) };
			}
		},

		/** A keyset page of the album's images, newest added first unless `sort` says otherwise. */
		images: {
			rest: "GET /:id/images",
			params: { $$strict: true, id: ID, ...PAGE },
			async handler(ctx: AlbumsContext) {
				const { album } = await this.accessAs(ctx, ctx.params.id, ["owner", "contributor", "viewer"]);
				return this.imagePage(ctx, album.id, ctx.params);
			}
		},

		/** Adds a member by username, or changes their role: 201 when they were not a member yet. */
		addMember: {
			rest: "POST /:id/members",
			params: { $$strict: true, id: ID, username: { type: "string", min: 1, max: 64 }, role: { type: "enum", values: ["viewer", "contributor"] } },
			async handler(ctx: AlbumsContext) {
				const { album } = await this.accessAs(ctx, ctx.params.id, MANAGERS);
				const userId = await ctx.call<string | null, { username: string }>("users.idOf", { username: ctx.params.username });
				if (!userId) throw new NotFoundError("User", ctx.params.username);
				if (userId === album.owner) throw new BadRequestError("The owner of an album is no member of it", "OWNER_NOT_MEMBER");
				const known = await this.repo.memberRole(album.id, userId);
				await this.repo.setMember(album.id, { userId, username: ctx.params.username, role: ctx.params.role, addedAt: nowIso() });
				const member = (await this.repo.members(album.id)).find(candidate => candidate.userId === userId);
				ctx.meta.$statusCode = known === null ? 201 : 200;
				return { member };
			}
		},

		/** The owner removes a member; a member may leave. Takes effect on the next request. */
		removeMember: {
			rest: "DELETE /:id/members/:userId",
			params: { $$strict: true, id: ID, userId: ID },
			async handler(ctx: AlbumsContext) {
				const viewer = this.viewerOf(ctx);
				const { album } = await this.accessAs(ctx, ctx.params.id, viewer?.id === ctx.params.userId ? ["owner", "contributor", "viewer"] : MANAGERS);
				await this.repo.removeMember(album.id, ctx.params.userId);
				ctx.meta.$statusCode = 204;
				return null;
			}
		},

		/** Whether the user owns or is a member of an album holding the image (images.visibleImage asks). */
		grantsView: {
			visibility: "public",
			params: { $$strict: true, imageId: ID, userId: ID },
			async handler(ctx: AlbumsContext): Promise<boolean> {
				return this.repo.grantsView(ctx.params.imageId, ctx.params.userId);
			}
		},

		/** Every image id of an album the user may read (`album:` searches); 404 otherwise. */
		imageIdsFor: {
			visibility: "public",
			params: { $$strict: true, albumId: ID, userId: { ...ID, optional: true, nullable: true } },
			async handler(ctx: AlbumsContext): Promise<{ ids: string[] }> {
				const user = ctx.meta.user;
				// The caller's role counts when the question is about the caller (admins read any album).
				const viewer: Viewer = ctx.params.userId ? { id: ctx.params.userId, role: user && user.id === ctx.params.userId ? user.role : "user" } : null;
				const { album } = await this.access(ctx.params.albumId, viewer);
				return { ids: await this.repo.imageIds(album.id) };
			}
		},

		/** A page of an album's images as its owner sees them, for share links (no caller role). */
		sharedPage: {
			visibility: "public",
			params: { $$strict: true, albumId: ID, ...PAGE },
			async handler(ctx: AlbumsContext) {
				const album = await this.repo.get(ctx.params.albumId);
				if (!album) throw new NotFoundError("Album", ctx.params.albumId);
				const { albumId: _id, ...page } = ctx.params;
				return this.imagePage(ctx, album.id, page);
			}
		},

		/** Whether the image is in the album (share links of albums serve only those). */
		contains: {
			visibility: "public",
			params: { $$strict: true, albumId: ID, imageId: ID },
			async handler(ctx: AlbumsContext): Promise<boolean> {
				return (await this.repo.entries(ctx.params.albumId, [ctx.params.imageId])).length > 0;
			}
		}
	},

	events: {
		/** A deleted image (purged, past the trash) leaves every album. */
		"image.deleted": {
			params: { id: "string" },
			async handler(ctx: AlbumsContext) {
				await this.repo.removeImageEverywhere(ctx.params.id);
			}
		},

		/** An image went to the trash: its albums keep its place but leave it out of counts, covers and pages. */
		"image.trashed": {
			params: { id: "string" },
			async handler(ctx: AlbumsContext) {
				await this.followTrash(ctx, ctx.params.id);
			}
		},

		/** Restored: back in its albums' counts, covers and pages, where it was. */
		"image.restored": {
			params: { id: "string" },
			async handler(ctx: AlbumsContext) {
				await this.followTrash(ctx, ctx.params.id);
			}
		},

		/** The pipeline read when the photo was taken: its albums sort it by that from now on. */
		"image.processed": {
			params: { id: "string" },
			async handler(ctx: AlbumsContext) {
				const [image] = await this.imagesByIds(ctx, [ctx.params.id]);
				if (image) await this.repo.setTakenAt(image.id, takenAtOf(image));
			}
		},

		/** users.changed also tells of a deleted account: its albums and memberships go with it. */
		"users.changed": {
			params: { id: "string" },
			async handler(ctx: AlbumsContext) {
				if (!(await ctx.call<boolean, { id: string }>("users.exists", { id: ctx.params.id }))) await this.repo.removeUser(ctx.params.id);
			}
		}
	},

	methods: {
		viewerOf(ctx: AlbumsContext): Viewer {
			const user = ctx.meta.user;
			return user ? { id: user.id, role: user.role } : null;
		},

		/** The album and the viewer's role in it (admins: owner); 404 when they have none. */
		async access(albumId: string, viewer: Viewer): Promise<Access> {
			const album = viewer ? await this.repo.get(albumId) : null;
			if (!album || !viewer) throw new NotFoundError("Album", albumId);
			if (canManage(viewer, album)) return { album, role: "owner" };
			const role = await this.repo.memberRole(album.id, viewer.id);
			if (!role) throw new NotFoundError("Album", albumId);
			return { album, role };
		},

		/** As access, and 403 when the caller's role does not allow what they ask. */
		async accessAs(ctx: AlbumsContext, albumId: string, allowed: AlbumRole[]): Promise<Access> {
			const access = await this.access(albumId, this.viewerOf(ctx));
			if (!allowed.includes(access.role)) throw new ForbiddenError(`A ${access.role} of this album cannot do this`, "FORBIDDEN");
			return access;
		},

		async summary({ album, role }: Access): Promise<AlbumSummary> {
			const [ids, members] = await Promise.all([this.repo.imageIds(album.id), this.repo.members(album.id)]);
			return { ...album, role, imageCount: ids.length, memberCount: members.length, cover: ids[0] ?? null };
		},

		/**
		 * The images of these ids that are shown (not in the trash), in the same order; asked
		 * MAX_IDS_PER_CALL at a time (the covers of a user's albums may be more).
		 */
		async imagesByIds(ctx: AlbumsContext, ids: string[]): Promise<PublicImage[]> {
			const found: PublicImage[] = [];
			for (let start = 0; start < ids.length; start += MAX_IDS_PER_CALL) {
				found.push(...(await ctx.call<PublicImage[], { ids: string[] }>("images.byIds", { ids: ids.slice(start, start + MAX_IDS_PER_CALL) })));
			}
			return found;
		},

		async imagePage(ctx: AlbumsContext, albumId: string, params: { sort?: AlbumSort; limit?: number; cursor?: string }) {
			const page = await this.repo.imagePage(albumId, { sort: params.sort ?? "-addedAt", limit: params.limit ?? 50, cursor: params.cursor });
			// The repository leaves the trash out; an image trashed since its event was handled is not
			// shown either (byIds answers only shown images), so a page may then be one short.
			return { items: await this.imagesByIds(ctx, page.items.map(entry => entry.imageId)), nextCursor: page.nextCursor };
		},

		/**
		 * Marks the image's entries in or out of the trash as the images service has it now, not as
		 * the event said: a trash and a restore handled out of order still end on the truth. One
		 * change of an image at a time on this node, so a later read is never overwritten by an
		 * earlier one.
		 */
		async followTrash(ctx: AlbumsContext, imageId: string): Promise<void> {
			await this.trashChanges.run(imageId, async () => {
				const shown = (await this.imagesByIds(ctx, [imageId])).length > 0;
				await this.repo.setTrashed(imageId, !shown);
			});
		}
	},

	created() {
		this.trashChanges = new KeyedLock();
	}
};

export default albums;
