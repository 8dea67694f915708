/**
 * Helpers for the ingest pipeline and durable-job tests: waiting for an image's status over
 * REST, generated test photos, worker nodes without HTTP, and a look into a data directory.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import type { Client } from "./client.ts";
import { ADMIN_PASSWORD, benchPassThrough, startCommand } from "./server.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const POLL_MS = 50;

/** Polls `probe` until it returns a value other than undefined; fails after `timeoutMs` with `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const value = await probe();
		if (value !== undefined) return value;
		if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
		await new Promise(resolve => setTimeout(resolve, POLL_MS));
	}
}

/** The image once its status is no longer `processing` (as its owner sees it over REST). */
export async function settled(client: Client, id: string, timeoutMs?: number): Promise<any> {
	return waitFor(`image ${id} to leave processing`, async () => {
		const res = await client.get(`/api/images/${id}`);
		if (res.status !== 200) throw new Error(`GET image ${id}: ${res.status} ${JSON.stringify(res.body)}`);
		return res.body.status === "processing" ? undefined : res.body;
	}, timeoutMs);
}

/**
 * A JPEG of noise (so it compresses like a photo) with camera EXIF and GPS coordinates; stored
 * with `orientation` so that auto-orientation swaps its edges when 5-8. The noise is made at a
 * quarter of the size and scaled up (making noise is slow; decoding the result is not).
 */
export async function cameraJpeg(width: number, height: number, orientation = 1): Promise<Buffer> {
	const noise = { type: "gaussian", mean: 128, sigma: 40 } as const;
	const tile = await sharp({ create: { width: Math.ceil(width / 4), height: Math.ceil(height / 4), channels: 3, background: "#808080", noise } })
		.raw()
		.toBuffer({ resolveWithObject: true });
	return sharp(tile.data, { raw: tile.info })
		.resize(width, height, { kernel: "nearest" })
		.jpeg({ quality: 85 })
		.withExif({
			IFD0: { Make: "TestCam", Model: "Model 7", DateTime: "2024:05:01 12:30:00" },
			IFD2: { DateTimeOriginal: "2023:04:05 06:07:08" },
			IFD3: { GPSLatitudeRef: "N", GPSLatitude: "48/1 51/1 24/1", GPSLongitudeRef: "E", GPSLongitude: "2/1 21/1 3/1" }
		})
		.withMetadata({ orientation })
		.toBuffer();
}

/**
 * A poison image: the header of a valid JPEG (the upload sniffer accepts it, dimensions and all)
 * and its end marker, with garbage between; decoding it fails.
 */
export function poisonJpeg(jpeg: Buffer): Buffer {
	return Buffer.concat([jpeg.subarray(0, 2000), Buffer.alloc(jpeg.length - 2002, 0x5a), jpeg.subarray(-2)]);
}

/** Number of blob files in a data directory's fs blob store (blobs/<xx>/<key>). */
export function blobFileCount(dataDir: string): number {
	const root = `${dataDir}/blobs`;
	return readdirSync(root, { withFileTypes: true })
		.filter(entry => entry.isDirectory() && entry.name.length === 2)
		.reduce((count, dir) => count + readdirSync(`${root}/${dir.name}`).length, 0);
}

/**
 * Files under `dir` (recursively) whose bytes contain `needle`. The store keeps working while the
 * test looks (temp files are renamed into place, released blobs deleted): a file gone between the
 * listing and its read is not there, so it holds nothing.
 */
export function findFilesContaining(dir: string, needle: Buffer): string[] {
	return readdirSync(dir, { recursive: true, withFileTypes: true })
		.filter(entry => entry.isFile())
		.map(entry => `${entry.parentPath}/${entry.name}`)
		.filter(path => readIfPresent(path)?.includes(needle) ?? false);
}

function readIfPresent(path: string): Buffer | null {
	try {
		return readFileSync(path);
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
		throw err;
	}
}

export interface Node {
	process: ChildProcess;
	output(): string;
	/** SIGTERM and wait for the exit. */
	stop(): Promise<void>;
}

/**
 * An imgmesh node without a gateway (e.g. SERVICES=worker), started like `npm start` on the
 * given data directory; resolves once its broker has started.
 */
export async function startNode(dataDir: string, env: Record<string, string>): Promise<Node> {
	const command = startCommand();
	let log = "";
	const child = spawn(process.execPath, command.nodeArgs, {
		cwd: ROOT,
		env: { ...command.env, PATH: process.env.PATH, HOME: process.env.HOME, ...benchPassThrough(), DATA_DIR: dataDir, LOG_LEVEL: "info", ADMIN_PASSWORD, ...env },
		stdio: ["ignore", "pipe", "pipe"]
	});
	child.stdout!.on("data", chunk => (log += chunk));
	child.stderr!.on("data", chunk => (log += chunk));
	const output = () => log;
	await waitFor(`node ${env.NODE_ID ?? ""} to start`, async () => {
		if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode}:\n${log}`);
		return /ServiceBroker with \d+ service\(s\) started/.test(log) ? true : undefined;
	});
	const stop = async () => {
		if (child.exitCode !== null || child.signalCode !== null) return;
		const exited = new Promise(resolve => child.once("exit", resolve));
		child.kill("SIGTERM");
		await exited;
	};
	return { process: child, output, stop };
}
