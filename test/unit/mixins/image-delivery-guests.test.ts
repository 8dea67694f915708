/**
 * The delivery mixin's guest rule on its own: who is a guest, what ctx.meta.grant changes (share
 * links set it; their REST tests live with the shares service), and what each kind of request is
 * served as. The mixin's methods run against a stand-in service whose serving ends are recorded.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { ImageDoc } from "../../../models/images/image.ts";
import type { Grant, ImagesContext } from "../../../types/images-service.ts";

// The mixin reads the configuration on import: a DATA_DIR of its own for its generated secrets.
process.env.DATA_DIR = mkdtempSync(join(tmpdir(), "imgmesh-delivery-"));
const { ImageDeliveryMixin } = await import("../../../mixins/image-delivery.mixin.ts");

const DOC = {
	id: "img1", owner: "u-alice", filename: "home at 12 Elm St.jpg", format: "jpeg", width: 4000, height: 3000, showMetadata: false,
	blob: "b", renditions: [], sha256: "0".repeat(64), encrypted: false, visibility: "public", metadata: { cameraMake: "Canon", cameraModel: "R5", takenAt: "2024-01-01T00:00:00", hasGps: true }
} as unknown as ImageDoc;

type Served = { as: string; spec?: unknown };

/** The mixin's methods on a stand-in service: serving ends record what they were asked for. */
function service() {
	const self: Record<string, unknown> = {
		viewerOf: (ctx: ImagesContext) => (ctx.meta.user ? { id: ctx.meta.user.id, role: ctx.meta.user.role } : null),
		serveContent: async (): Promise<Served> => ({ as: "original" }),
		serveStripped: async (): Promise<Served> => ({ as: "stripped" }),
		serveVariant: async (_ctx: unknown, _doc: unknown, spec: unknown): Promise<Served> => ({ as: "variant", spec })
	};
	for (const [name, method] of Object.entries(ImageDeliveryMixin.methods!)) {
		if (!(name in self)) self[name] = (method as (...args: unknown[]) => unknown).bind(self);
	}
	return self as Record<string, (...args: any[]) => any>;
}

function ctx(user: { id: string; role: string } | null, grant?: Grant): ImagesContext {
	return { meta: { user, grant, request: { accept: "image/webp" } } } as unknown as ImagesContext;
}

const alice = { id: "u-alice", role: "user" };
const bob = { id: "u-bob", role: "user" };
const admin = { id: "u-admin", role: "admin" };

describe("guests in image delivery", () => {
	it("serves owners and admins the original, everyone else the stripped copy", async () => {
		const images = service();
		assert.equal((await images.serveDownload(ctx(alice), DOC, {})).as, "original");
		assert.equal((await images.serveDownload(ctx(admin), DOC, {})).as, "original");
		assert.equal((await images.serveDownload(ctx(bob), DOC, {})).as, "stripped");
		assert.equal((await images.serveDownload(ctx(null), DOC, {})).as, "stripped");
	});

	it("serves the original to guests whose grant or image allows metadata, and names it as uploaded", async () => {
		const images = service();
		const allowed = ctx(null, { showMetadata: true, allowDownload: true });
		assert.equal((await images.serveDownload(allowed, DOC, {})).as, "original");
		assert.equal(images.downloadName(allowed, DOC, "jpeg"), "home at 12 Elm St.jpg");
		assert.equal((await images.serveDownload(ctx(null), { ...DOC, showMetadata: true }, {})).as, "original");
		assert.equal(images.downloadName(ctx(null, { showMetadata: false, allowDownload: true }), DOC, "webp"), "img1.webp");
	});

	it("serves the large preset instead of the original when the grant allows no download", async () => {
		const images = service();
		for (const showMetadata of [false, true]) {
			const served = await images.serveDownload(ctx(null, { showMetadata, allowDownload: false }), DOC, {});
			assert.deepEqual(served, { as: "variant", spec: { format: "webp", width: 2048, height: 2048, fit: "inside", quality: 80 } });
		}
		const thumb = await images.serveDownload(ctx(null, { showMetadata: false, allowDownload: false }), DOC, { preset: "thumb" });
		assert.equal((thumb.spec as { width: number }).width, 240, "presets stay as asked");
		assert.equal((await images.serveDownload(ctx(alice, { showMetadata: false, allowDownload: false }), DOC, {})).as, "original", "a grant never limits the owner");
	});

	it("hides the uploaded name and the camera from guests' JSON", () => {
		const images = service();
		const seen = images.imageView(ctx(bob), DOC);
		assert.equal(seen.filename, "img1.jpg");
		assert.deepEqual(seen.metadata, { cameraMake: null, cameraModel: null, takenAt: null, hasGps: true });
		assert.equal(images.imageView(ctx(alice), DOC).filename, DOC.filename);
		assert.equal(images.imageView(ctx(null, { showMetadata: true, allowDownload: false }), DOC).metadata.cameraMake, "Canon");
	});
});
