/**
 * A real S3-compatible server for tests: SeaweedFS (`weed server -s3`: master, volume server,
 * filer and S3 gateway in one process) in a temp dir, on free loopback ports, with its own
 * credentials and one bucket. One per test file; each store takes a fresh object prefix from
 * `location()`, so tests share the bucket without seeing each other's objects.
 *
 * The binary comes from `$IMGMESH_TOOLS_DIR/bin/weed` (default `~/.cache/imgmesh-tools`; `.ci/run`
 * builds it). Outside CI a missing binary skips the S3 suites with the reason; with CI=true it
 * fails them, as does any failed start anywhere.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import type { S3Location } from "../../models/storage/s3-blob-store.ts";
import { freePort } from "./server.ts";

const TOOLS_DIR = process.env.IMGMESH_TOOLS_DIR || join(homedir(), ".cache", "imgmesh-tools");
export const WEED_BINARY = join(TOOLS_DIR, "bin", "weed");
const START_TIMEOUT_MS = 60_000;
const BUCKET = "imgmesh-test";
const REGION = "us-east-1";

export interface TestS3 {
	endpoint: string;
	bucket: string;
	credentials: { accessKeyId: string; secretAccessKey: string };
	/** Where a new store keeps its objects: this server's bucket under a prefix no test used before. */
	location(): S3Location;
	/** A client signed for this server, to look at and damage what a store wrote. */
	client(): S3Client;
	/** The environment that makes a node store on this server (STORAGE=s3, S3_*), under `location`'s prefix. */
	nodeEnv(location: S3Location): Record<string, string>;
	/** The server's process id (the benchmarks report its CPU). */
	pid(): number | undefined;
	/** Kills the server and deletes its data. */
	stop(): Promise<void>;
}

/**
 * Why the S3 suites cannot run here, or false when they can. Pass it as `skip` to describe.
 * Throws under CI=true, where skipping would hide a broken setup.
 */
export function s3SkipReason(): string | false {
	if (existsSync(WEED_BINARY)) return false;
	const reason = `SeaweedFS not found at ${WEED_BINARY} (.ci/run builds it)`;
	if (process.env.CI === "true") throw new Error(`${reason}; CI=true requires the S3 suites to run`);
	return reason;
}

export async function startS3(): Promise<TestS3> {
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-s3-"));
	const credentials = { accessKeyId: randomBytes(8).toString("hex"), secretAccessKey: randomBytes(20).toString("hex") };
	const identities = { identities: [{ name: "imgmesh", credentials: [{ accessKey: credentials.accessKeyId, secretKey: credentials.secretAccessKey }], actions: ["Admin", "Read", "Write", "List", "Tagging"] }] };
	writeFileSync(join(dir, "s3.json"), JSON.stringify(identities));
	const s3Port = await freePort();
	const endpoint = `http://127.0.0.1:${s3Port}`;
	const client = () => new S3Client({ endpoint, region: REGION, credentials, forcePathStyle: true, requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" });
	let server: Server | null = null;
	try {
		server = await launch(dir, s3Port);
		const admin = client();
		try {
			await waitForBucket(admin, server);
		} finally {
			admin.destroy();
		}
	} catch (err) {
		if (server) await terminate(server.child);
		rmSync(dir, { recursive: true, force: true });
		throw err;
	}
	const { child: running } = server;
	return {
		endpoint,
		bucket: BUCKET,
		credentials,
		location: () => ({ endpoint, region: REGION, bucket: BUCKET, prefix: `t-${randomBytes(6).toString("hex")}/`, credentials, forcePathStyle: true }),
		client,
		nodeEnv: location => ({
			STORAGE: "s3",
			S3_ENDPOINT: endpoint,
			S3_BUCKET: BUCKET,
			S3_PREFIX: location.prefix,
			S3_ACCESS_KEY_ID: credentials.accessKeyId,
			S3_SECRET_ACCESS_KEY: credentials.secretAccessKey
		}),
		pid: () => running.pid,
		async stop() {
			await terminate(running);
			rmSync(dir, { recursive: true, force: true });
		}
	};
}

interface Server {
	child: ChildProcess;
	/** The end of what it printed, for a failed start. */
	log(): string;
}

/** Every port of the four parts (and their gRPC ports, which default to port + 10000) chosen free. */
async function launch(dir: string, s3Port: number): Promise<Server> {
	const ports = { master: await freePort(), volume: await freePort(), filer: await freePort() };
	const grpc = { master: await freePort(), volume: await freePort(), filer: await freePort(), s3: await freePort() };
	let log = "";
	const child = spawn(
		WEED_BINARY,
		[
			"server",
			`-dir=${dir}`,
			"-ip=127.0.0.1",
			"-ip.bind=127.0.0.1",
			`-master.port=${ports.master}`,
			`-master.port.grpc=${grpc.master}`,
			// Volumes of 256 MB, as many as the disk holds (the default is 8 of 30 GB).
			"-master.volumeSizeLimitMB=256",
			"-volume.max=0",
			`-volume.port=${ports.volume}`,
			`-volume.port.grpc=${grpc.volume}`,
			"-filer",
			`-filer.port=${ports.filer}`,
			`-filer.port.grpc=${grpc.filer}`,
			"-s3",
			`-s3.port=${s3Port}`,
			`-s3.port.grpc=${grpc.s3}`,
			`-s3.config=${join(dir, "s3.json")}`,
			// Listeners on fixed ports by default: two servers at once would clash.
			"-s3.port.iceberg=0",
			"-s3.port.lance=0"
		],
		{ stdio: ["ignore", "pipe", "pipe"] }
	);
	child.stdout!.on("data", chunk => (log = (log + chunk).slice(-20_000)));
	child.stderr!.on("data", chunk => (log = (log + chunk).slice(-20_000)));
	await new Promise<void>((resolve, reject) => {
		child.once("spawn", resolve);
		child.once("error", reject);
	});
	return { child, log: () => log };
}

/** Creates the bucket once the gateway, the filer and a volume answer (a bounded poll). */
async function waitForBucket(client: S3Client, { child, log }: Server): Promise<void> {
	const deadline = Date.now() + START_TIMEOUT_MS;
	let last: unknown;
	while (Date.now() < deadline) {
		if (child.exitCode !== null) throw new Error(`SeaweedFS exited with ${child.exitCode}:\n${log()}`);
		try {
			await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
			return;
		} catch (err) {
			if ((err as Error).name === "BucketAlreadyOwnedByYou" || (err as Error).name === "BucketAlreadyExists") return;
			last = err;
			await new Promise(resolve => setTimeout(resolve, 200));
		}
	}
	throw new Error(`SeaweedFS did not create the bucket within ${START_TIMEOUT_MS} ms (${String(last)}):\n${log()}`);
}

async function terminate(child: ChildProcess): Promise<void> {
	if (child.exitCode !== null || child.signalCode !== null) return;
	const exited = new Promise(resolve => child.once("exit", resolve));
	child.kill("SIGKILL");
	await exited;
}
