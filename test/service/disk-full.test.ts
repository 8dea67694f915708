/**
 * A full disk, for real: the node's blob directory (DATA_DIR/blobs) is a small tmpfs, filled by a
 * file of the test's own. Uploads are refused with 507 and leave nothing behind, readiness says
 * so while free space is under STORAGE_MIN_FREE_BYTES, a DELETE whose bytes cannot be released is
 * still done, and an image whose renditions hit ENOSPC waits and ends `ready` once space is back.
 * A second node keeps its SQLite databases on the tmpfs: an upload it cannot record answers 507
 * and releases its blob. Mounting a tmpfs needs root (CAP_SYS_ADMIN): elsewhere the suite is skipped, saying so.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { Client, type UploadFile } from "../helpers/client.ts";
import { blobFiles, tempFiles, tinyJpeg } from "../helpers/hostile-uploads.ts";
import { settled, waitFor } from "../helpers/jobs.ts";
import { startServer, type RunningServer } from "../helpers/server.ts";

const TMPFS_BYTES = 16 * 1024 * 1024;
const MIN_FREE_BYTES = 4 * 1024 * 1024;

/** Mounts a tmpfs of `tmpfsBytes`, or the directory `bind`, at `dir`; the reason it could not, or null. */
function mount(dir: string, how: { tmpfsBytes: number } | { bind: string }): string | null {
	const args = "bind" in how ? ["--bind", how.bind, dir] : ["-t", "tmpfs", "-o", `size=${how.tmpfsBytes}`, "tmpfs", dir];
	try {
		execFileSync("mount", args, { stdio: "pipe" });
		return null;
	} catch (err) {
		return `cannot mount here (needs root): ${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}`;
	}
}

/** A file that fills the file system of `dir` on demand, and frees it again. */
function filler(dir: string) {
	const path = join(dir, "filler");
	const freeBytes = () => {
		const disk = statfsSync(dir);
		return disk.bavail * disk.bsize;
	};
	return {
		/** Until `leave` bytes are free (0: until a write finds no space at all). */
		fill(leave = 0): void {
			appendFileSync(path, Buffer.alloc(Math.max(0, freeBytes() - leave)));
			if (leave > 0) return;
			try {
				for (;;) appendFileSync(path, Buffer.alloc(4096));
			} catch (err) {
				if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
			}
		},
		free(): void {
			rmSync(path, { force: true });
		}
	};
}

/** Why this machine cannot mount a tmpfs, or null: found out once, on a mount of its own. */
function tmpfsUnavailable(): string | null {
	const probe = mkdtempSync(join(tmpdir(), "imgmesh-tmpfs-probe-"));
	try {
		const reason = mount(probe, { tmpfsBytes: 64 * 1024 });
		if (!reason) execFileSync("umount", [probe]);
		return reason;
	} finally {
		rmSync(probe, { recursive: true, force: true });
	}
}

const skip = tmpfsUnavailable();

/**
 * A PNG of black and white noise: small as a file (one bit a pixel) but a large WebP rendition
 * (about 126 KB against 520 KB for the 720 px one), so a disk with room for the upload has none
 * for its renditions.
 */
async function noisePng(): Promise<Buffer> {
	const size = 1000;
	const pixels = Buffer.from(randomBytes(size * size).map(byte => (byte & 1) * 255));
	return sharp(pixels, { raw: { width: size, height: size, channels: 1 } }).png({ palette: true, colours: 2 }).toBuffer();
}

describe("a full disk", { skip: skip ?? false }, () => {
	let dataDir: string;
	let blobsDir: string;
	let blobDisk: ReturnType<typeof filler>;
	const fill = (leave?: number) => blobDisk.fill(leave);
	const freeSpace = () => blobDisk.free();
	let mounted = false;
	let server: RunningServer;
	let alice: Client;

	before(async () => {
		dataDir = mkdtempSync(join(tmpdir(), "imgmesh-diskfull-"));
		blobsDir = join(dataDir, "blobs");
		blobDisk = filler(blobsDir);
		mkdirSync(blobsDir);
		assert.equal(mount(blobsDir, { tmpfsBytes: TMPFS_BYTES }), null);
		mounted = true;
		server = await startServer(
			{ STORAGE_MIN_FREE_BYTES: String(MIN_FREE_BYTES), JOB_RETRY_BASE_MS: "200", JOB_RETRY_MAX_MS: "1000" },
			{ dataDir }
		);
		alice = await new Client(server.url).register("alice");
	});
	after(async () => {
		await server?.stop({ keepData: true });
		if (mounted) execFileSync("umount", [blobsDir]);
		rmSync(dataDir, { recursive: true, force: true });
	});

	it("refuses an upload with 507 INSUFFICIENT_STORAGE and keeps nothing of it; the same upload succeeds once space is back", async () => {
		const photo: UploadFile = { name: "small.jpg", bytes: await tinyJpeg() };
		fill();
		try {
			const refused = await alice.upload([photo, photo]);
			assert.equal(refused.status, 507, JSON.stringify(refused.body));
			assert.equal(refused.body.type, "INSUFFICIENT_STORAGE");
			assert.match(refused.body.message, /out of storage space/);
			assert.doesNotMatch(JSON.stringify(refused.body), /imgmesh-diskfull|ENOSPC: no space/, "no server path or raw system error");
			assert.deepEqual(tempFiles(server), [], "no temp file left");
			assert.deepEqual(blobFiles(server), [], "no blob left");
			assert.equal((await alice.get("/api/images")).body.total, 0, "no image");
		} finally {
			freeSpace();
		}
		const stored = await alice.upload([photo]);
		assert.equal(stored.status, 201, JSON.stringify(stored.body));
		assert.equal((await settled(alice, stored.body.images[0].id)).status, "ready");
	});

	it("answers /api/ready 503 naming disk-space while free space is under STORAGE_MIN_FREE_BYTES, 200 again above it", async () => {
		fill(MIN_FREE_BYTES / 2);
		try {
			const low = await fetch(`${server.url}/api/ready`);
			const body = (await low.json()) as { status: string; checks: { service: string; ok: boolean; error?: string }[] };
			assert.equal(low.status, 503, JSON.stringify(body));
			const disk = body.checks.find(check => check.service === "disk-space");
			assert.equal(disk?.ok, false, JSON.stringify(body.checks));
			assert.match(disk!.error!, /DATA_DIR\/blobs.*STORAGE_MIN_FREE_BYTES/);
		} finally {
			freeSpace();
		}
		const again = await fetch(`${server.url}/api/ready`);
		assert.equal(again.status, 200, await again.text());
	});

	it("answers a purge whose bytes cannot be released 204: the image is gone", async () => {
		const uploaded = await alice.upload([{ name: "gone.jpg", bytes: await tinyJpeg() }], { name: "gone" });
		const id = uploaded.body.images[0].id;
		assert.equal((await settled(alice, id)).status, "ready");
		// Into the trash first: purging it is what releases the bytes.
		assert.equal((await alice.delete(`/api/images/${id}`)).status, 204);
		fill();
		try {
			const removed = await alice.delete(`/api/trash/${id}`);
			assert.equal(removed.status, 204, JSON.stringify(removed.body));
			assert.equal((await alice.get(`/api/images/${id}`)).status, 404);
			assert.match(server.output(), new RegExp(`Could not release blob .* of ${id}`), "the failed release is logged");
		} finally {
			freeSpace();
		}
	});

	it("retries an image whose renditions hit ENOSPC and makes it ready once space is back", async () => {
		const png = await noisePng();
		// Room for the upload (and SQLite's pages), not for its 720 px rendition.
		fill(png.length + 200 * 1024);
		let id: string;
		try {
			const uploaded = await alice.upload([{ name: "noise.png", bytes: png }]);
			assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
			id = uploaded.body.images[0].id;
			const waiting = await waitFor("the image to wait for a retry", async () => {
				const image = (await alice.get(`/api/images/${id}`)).body;
				assert.equal(image.status, "processing", `not failed for good: ${JSON.stringify(image)}`);
				return image.statusReason ? image : undefined;
			});
			assert.match(waiting.statusReason, /retry .*out of storage space/);
		} finally {
			freeSpace();
		}
		const ready = await settled(alice, id);
		assert.equal(ready.status, "ready", JSON.stringify(ready));
		assert.equal(ready.statusReason, null);
		assert.deepEqual(ready.renditions.map((r: { name: string }) => r.name).sort(), ["240", "720"]);
	});
});

describe("a full metadata disk", { skip: skip ?? false }, () => {
	// DATA_DIR (the SQLite databases) on a small tmpfs, the blob files on the ordinary disk.
	let dir: string;
	let blobs: string;
	let server: RunningServer;
	let alice: Client;
	let mounted: string[] = [];

	before(async () => {
		dir = mkdtempSync(join(tmpdir(), "imgmesh-metafull-"));
		blobs = mkdtempSync(join(tmpdir(), "imgmesh-metafull-blobs-"));
		assert.equal(mount(dir, { tmpfsBytes: TMPFS_BYTES }), null);
		mounted = [dir];
		mkdirSync(join(dir, "blobs"));
		assert.equal(mount(join(dir, "blobs"), { bind: blobs }), null);
		mounted = [join(dir, "blobs"), dir];
		server = await startServer({ STORAGE_MIN_FREE_BYTES: "0" }, { dataDir: dir });
		alice = await new Client(server.url).register("alice");
	});
	after(async () => {
		await server?.stop({ keepData: true });
		for (const path of mounted) execFileSync("umount", [path]);
		rmSync(dir, { recursive: true, force: true });
		rmSync(blobs, { recursive: true, force: true });
	});

	it("refuses an upload whose image cannot be recorded with 507, and releases its stored bytes", async () => {
		const metadata = filler(dir);
		const photo: UploadFile = { name: "small.jpg", bytes: await tinyJpeg() };
		metadata.fill();
		try {
			const refused = await alice.upload([photo]);
			assert.equal(refused.status, 507, JSON.stringify(refused.body));
			assert.equal(refused.body.type, "INSUFFICIENT_STORAGE");
			assert.deepEqual(blobFiles(server), [], "the blob stored before the insert failed is released");
		} finally {
			metadata.free();
		}
		assert.equal((await alice.get("/api/images")).body.total, 0);
		assert.equal((await alice.upload([photo])).status, 201, "accepted once space is back");
	});
});
