/**
 * Fault injection on a real cluster (issue 13): one cluster started like `npm start` (a gateway,
 * a data node with images and storage, two workers, over a Redis of its own, with the metadata in
 * SQLite on a shared DATA_DIR or in MongoDB with GridFS), and one fault after another while
 * images are being processed. Each phase uploads a batch of encrypted photos (acknowledged: 201),
 * injects its fault at once (the workers have just taken the first jobs, the rest are queued),
 * ends the fault, and measures how long until every image of the batch is `ready`.
 *
 * At the end it checks what every fault must leave intact: every acknowledged upload present and
 * byte-identical, every image ready with one set of renditions, and, after the garbage collector's
 * grace period and one collection, not one stored blob more than the images reference.
 *
 * Used by test/cluster/chaos.test.ts (small batches, asserting) and bench/chaos.ts (larger
 * batches, the recovery-time table).
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { ServiceBroker } from "moleculer";
import type { ScrubReport } from "../../models/storage/blob-store.ts";
import { Client } from "./client.ts";
import { clusterEnv, startNode, startObserver, startRedis, waitForRoutes, type RedisServer } from "./cluster.ts";
import { startFerretDb, type FerretDb } from "./ferretdb.ts";
import { withComment } from "./image-host.ts";
import { cameraJpeg, waitFor } from "./jobs.ts";
import { ADMIN_PASSWORD, type RunningServer } from "./server.ts";

export type ChaosBackend = "sqlite" | "mongo";

export interface ChaosOptions {
	backend: ChaosBackend;
	/** Photos uploaded per phase. */
	imagesPerPhase: number;
	/** How long a phase may take to end with every image ready before the run fails. */
	phaseTimeoutMs: number;
}

export interface PhaseResult {
	fault: string;
	/** What was in flight when the fault struck. */
	load: string;
	/** From the fault's start until every image of the phase was `ready`, in ms. */
	recoveryMs: number;
	/** Acknowledged uploads of the phase missing or changed at the end. */
	imagesLost: number;
}

export interface ChaosResult {
	backend: ChaosBackend;
	phases: PhaseResult[];
	images: number;
	/** Images not `ready` at the end (each phase waits for them, so 0 unless something regressed). */
	notReady: number;
	/** Images whose renditions are not one set (a name twice). */
	duplicateRenditions: number;
	/** Blobs in the store after a collection past the grace period, and how many the images reference. */
	blobs: number;
	referencedBlobs: number;
}

/** Short enough that a run waits it out in seconds, far longer than a put and its record take. */
const GC_GRACE_MS = 3000;

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

interface Uploaded {
	id: string;
	sha256: string;
	phase: string;
}

class ChaosCluster {
	readonly env: Record<string, string>;
	readonly dataDir = mkdtempSync(join(tmpdir(), "imgmesh-chaos-"));
	readonly redis: RedisServer;
	readonly mongo: FerretDb | undefined;
	gateway!: RunningServer;
	data!: RunningServer;
	readonly workers = new Map<string, RunningServer>();
	observer!: ServiceBroker;
	alice!: Client;
	admin!: Client;

	constructor(redis: RedisServer, mongo: FerretDb | undefined) {
		this.redis = redis;
		this.mongo = mongo;
		this.env = {
			...clusterEnv(redis),
			...(mongo ? { MONGO_URL: mongo.databaseUrl(), STORAGE: "gridfs" } : {}),
			// A killed worker's job returns after 2 s; a stopping one hands its job back at once.
			JOB_REDELIVER_AFTER_MS: "2000",
			JOB_CLAIM_INTERVAL_MS: "100",
			JOB_STOP_GRACE_MS: "1000",
			SHUTDOWN_TIMEOUT_MS: "8000",
			JOB_RETRY_BASE_MS: "200",
			JOB_RETRY_MAX_MS: "2000",
			RECONCILE_INTERVAL_MS: "1000",
			RECONCILE_STUCK_AFTER_MS: "8000",
			GC_GRACE_MS: String(GC_GRACE_MS),
			GC_INTERVAL_MS: "0",
			RATE_LIMIT_PER_MINUTE: "0"
		};
	}

	static async start(backend: ChaosBackend): Promise<ChaosCluster> {
		const [redis, mongo] = await Promise.all([startRedis(), backend === "mongo" ? startFerretDb() : undefined]);
		const cluster = new ChaosCluster(redis, mongo);
		await cluster.startData();
		cluster.gateway = await startNode(cluster.env, ["api", "users", "health", "jobs"], { dataDir: cluster.dataDir, nodeId: "gateway" });
		await waitForRoutes(cluster.gateway.url);
		await Promise.all(["w1", "w2"].map(name => cluster.startWorker(name)));
		cluster.observer = await startObserver(cluster.env);
		await cluster.observer.waitForServices(["storage", "images", "worker"]);
		cluster.alice = await new Client(cluster.gateway.url).register("alice");
		cluster.admin = await new Client(cluster.gateway.url).login("admin", ADMIN_PASSWORD);
		return cluster;
	}

	async startData(): Promise<void> {
		this.data = await startNode(this.env, ["images", "categories", "storage"], { dataDir: this.dataDir, nodeId: "data" });
	}

	async startWorker(name: string): Promise<void> {
		this.workers.set(name, await startNode(this.env, ["worker"], { dataDir: this.dataDir, nodeId: name }));
	}

	worker(name: string): RunningServer {
		const node = this.workers.get(name);
		if (!node) throw new Error(`no worker ${name}`);
		return node;
	}

	/** The last lines each node printed, for a failure's message. */
	logTails(): string {
		const nodes: [string, RunningServer][] = [["gateway", this.gateway], ["data", this.data], ...this.workers.entries()];
		return nodes.map(([name, node]) => `--- ${name}\n${node.output().split("\n").slice(-25).join("\n")}`).join("\n");
	}

	async stop(): Promise<void> {
		await this.observer?.stop();
		await Promise.all([...this.workers.values()].map(node => node.stop({ keepData: true })));
		await this.gateway?.stop({ keepData: true });
		await this.data?.stop({ keepData: true });
		await Promise.all([this.redis.stop(), this.mongo?.stop()]);
		rmSync(this.dataDir, { recursive: true, force: true });
	}
}

/** SIGKILL: the process gets no chance to finish or hand anything back. */
async function kill(node: RunningServer): Promise<void> {
	if (node.process.exitCode !== null || node.process.signalCode !== null) return;
	const exited = new Promise(resolve => node.process.once("exit", resolve));
	node.process.kill("SIGKILL");
	await exited;
}

async function statusOf(client: Client, id: string): Promise<string | undefined> {
	const res = await client.get(`/api/images/${id}`);
	return res.status === 200 ? (res.body.status as string) : undefined;
}

async function readyCount(client: Client, ids: string[]): Promise<number> {
	const statuses = await Promise.all(ids.map(id => statusOf(client, id).catch(() => undefined)));
	return statuses.filter(status => status === "ready").length;
}

interface Fault {
	name: string;
	/** Strikes while the phase's images are in flight; resolves once the fault has ended. */
	inject(cluster: ChaosCluster): Promise<void>;
}

/** The faults of the issue, one per phase, after a phase without any fault as the reference. */
export function faultsFor(backend: ChaosBackend): Fault[] {
	const faults: Fault[] = [
		{ name: "none (reference)", inject: async () => undefined },
		{
			name: "worker killed (kill -9) mid-job, restarted",
			async inject(cluster) {
				await kill(cluster.worker("w1"));
				await cluster.startWorker("w1");
			}
		},
		{
			name: "data node (images, storage) killed (kill -9) mid-job, restarted",
			async inject(cluster) {
				await kill(cluster.data);
				await cluster.startData();
			}
		},
		{
			name: "Redis restarted without persistence mid-job",
			async inject(cluster) {
				await cluster.redis.kill();
				await cluster.redis.start();
			}
		},
		{
			name: "worker stopped (SIGTERM) mid-job, replaced",
			async inject(cluster) {
				await cluster.worker("w2").stop({ keepData: true });
				await cluster.startWorker("w2");
			}
		}
	];
	if (backend === "mongo") {
		faults.push({
			name: "MongoDB down for 3 s mid-job",
			async inject(cluster) {
				await cluster.mongo!.down();
				await new Promise(resolve => setTimeout(resolve, 3000));
				await cluster.mongo!.up();
			}
		});
	}
	return faults;
}

/** Distinct photos: one generated camera photo, made unique per upload by a comment segment. */
async function photos(count: number, phase: number): Promise<{ name: string; bytes: Buffer }[]> {
	const base = await cameraJpeg(1600, 1067);
	return Array.from({ length: count }, (_, i) => ({ name: `chaos-${phase}-${i}.jpg`, bytes: withComment(base, `chaos ${phase}-${i}`) }));
}

async function runPhase(cluster: ChaosCluster, fault: Fault, index: number, options: ChaosOptions, uploaded: Uploaded[]): Promise<PhaseResult> {
	const files = await photos(options.imagesPerPhase, index);
	const res = await cluster.alice.upload(files, { encrypted: "true" });
	if (res.status !== 201) throw new Error(`upload in phase "${fault.name}": ${res.status} ${JSON.stringify(res.body)}`);
	const ids: string[] = res.body.images.map((image: { id: string }) => image.id);
	ids.forEach((id, i) => uploaded.push({ id, sha256: sha256(files[i]!.bytes), phase: fault.name }));

	// Struck as soon as the upload is acknowledged: the workers have just taken the first jobs.
	const inFlight = ids.length - (await readyCount(cluster.alice, ids));
	const started = performance.now();
	await fault.inject(cluster);
	await waitFor(
		`every image of "${fault.name}" to be ready`,
		async () => ((await readyCount(cluster.alice, ids)) === ids.length ? true : undefined),
		options.phaseTimeoutMs
	).catch(async (err: Error) => {
		const statuses = await Promise.all(ids.map(id => cluster.alice.get(`/api/images/${id}`).then(r => `${id} ${r.status} ${r.body?.status} ${r.body?.statusReason ?? ""}`)));
		throw new Error(`${err.message}\n${statuses.join("\n")}\n${cluster.logTails()}`);
	});
	return { fault: fault.name, load: `${inFlight} of ${ids.length} images processing or queued`, recoveryMs: Math.round(performance.now() - started), imagesLost: 0 };
}

/** Counts the store's blobs through storage.scrub (every backend), which reads each one: nothing missing either. */
async function blobCount(observer: ServiceBroker): Promise<number> {
	let count = 0;
	let after: string | null = null;
	do {
		const report: ScrubReport = await observer.call("storage.scrub", { limit: 1000, ...(after ? { after } : {}) }, { timeout: 0 });
		if (report.corrupt.length > 0) throw new Error(`corrupt blobs: ${JSON.stringify(report.corrupt)}`);
		count += report.checked;
		after = report.next;
	} while (after);
	return count;
}

async function verify(cluster: ChaosCluster, uploaded: Uploaded[], phases: PhaseResult[]): Promise<Omit<ChaosResult, "backend" | "phases">> {
	let notReady = 0;
	let duplicateRenditions = 0;
	let referencedBlobs = 0;
	for (const image of uploaded) {
		const content = await cluster.alice.download(`/api/images/${image.id}/content`);
		const doc = (await cluster.alice.get(`/api/images/${image.id}`)).body;
		if (content.status !== 200 || sha256(content.bytes) !== image.sha256) phases.find(phase => phase.fault === image.phase)!.imagesLost++;
		if (doc?.status !== "ready") notReady++;
		const names: string[] = (doc?.renditions ?? []).map((r: { name: string }) => r.name);
		if (new Set(names).size !== names.length) duplicateRenditions++;
		referencedBlobs += 1 + names.length;
	}
	// Past the grace period for everything stored so far, then one collection.
	const lastStored = Date.now();
	await waitFor("the GC grace period to pass", async () => (Date.now() > lastStored + GC_GRACE_MS + 500 ? true : undefined), GC_GRACE_MS + 5000);
	const gc = await cluster.admin.post("/api/admin/storage/gc", {});
	if (gc.status !== 200 || gc.body.errors.length > 0) throw new Error(`storage gc: ${gc.status} ${JSON.stringify(gc.body)}`);
	return { images: uploaded.length, notReady, duplicateRenditions, blobs: await blobCount(cluster.observer), referencedBlobs };
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
	const cluster = await ChaosCluster.start(options.backend);
	try {
		const uploaded: Uploaded[] = [];
		const phases: PhaseResult[] = [];
		const faults = faultsFor(options.backend);
		for (const [index, fault] of faults.entries()) phases.push(await runPhase(cluster, fault, index, options, uploaded));
		return { backend: options.backend, phases, ...(await verify(cluster, uploaded, phases)) };
	} finally {
		await cluster.stop();
	}
}
