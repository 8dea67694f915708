/** Liveness (/api/health) and readiness (/api/ready) for load balancers and operators. */
import type { Context, ServiceSchema } from "moleculer";
import { statfs } from "node:fs/promises";
import { liveServiceNames } from "../cluster/live-services.ts";
import { getConfig, REQUIRED_SERVICES } from "../config/index.ts";
import { localStorageDirs } from "../models/backends.ts";

const PING_TIMEOUT_MS = 2000;

interface Check {
	service: string;
	ok: boolean;
	error?: string;
}

/** A service no live node runs (yet: a starting node registers its services one by one). */
function notRunning(service: string): Check {
	return { service, ok: false, error: "no live node runs it (yet)" };
}

/**
 * The classifier's state. Required only when a model is configured (images would wait for tags
 * that never come); with none, the API serves without it and this just says so.
 */
async function classifierState(ctx: Context): Promise<Record<string, unknown>> {
	try {
		return await ctx.call("classifier.status", {}, { timeout: PING_TIMEOUT_MS, retries: 0 });
	} catch (err) {
		return { enabled: false, reason: (err as Error).message };
	}
}

async function check(ctx: Context, service: string): Promise<Check> {
	try {
		await ctx.call(`${service}.ping`, {}, { timeout: PING_TIMEOUT_MS, retries: 0 });
		return { service, ok: true };
	} catch (err) {
		return { service, ok: false, error: (err as Error).message };
	}
}

const MIB = 1024 * 1024;

/**
 * Free space on this node's disks against STORAGE_MIN_FREE_BYTES: a node about to fill its disk
 * stops taking traffic before its writes start failing (507). A directory this node has not
 * created (no storage service here) has nothing to fill.
 */
async function diskSpaceCheck(): Promise<Check> {
	const floor = getConfig().storageMinFreeBytes;
	for (const dir of floor > 0 ? localStorageDirs(getConfig()) : []) {
		const disk = await statfs(dir.path).catch(() => null);
		const free = disk ? disk.bavail * disk.bsize : Infinity;
		if (free < floor) {
			return { service: "disk-space", ok: false, error: `${(free / MIB).toFixed(1)} MiB free for ${dir.name}, under STORAGE_MIN_FREE_BYTES (${(floor / MIB).toFixed(1)} MiB)` };
		}
	}
	return { service: "disk-space", ok: true };
}

/** A gateway is ready once its REST routes reflect the live services (it rebuilds them debounced). */
async function routesCheck(ctx: Context, nodeID: string): Promise<Check> {
	const current = await ctx.call<boolean, object>("api.routesCurrent", {}, { nodeID });
	return current ? { service: "api", ok: true } : { service: "api", ok: false, error: "REST routes are being built for the live services" };
}

const health: ServiceSchema = {
	name: "health",
	settings: { rest: "/" },
	actions: {
		live: {
			rest: "GET /health",
			auth: "public",
			params: { $$strict: true },
			handler() {
				return { status: "ok", node: this.broker.nodeID, uptime: Math.round(process.uptime()) };
			}
		},
		ready: {
			rest: "GET /ready",
			auth: "public",
			params: { $$strict: true },
			async handler(ctx: Context<unknown, { $statusCode?: number }>) {
				// Only services with a live node are called: the others are reported, not looked for
				// (a call to an unregistered service is a broker warning, and means the same).
				const live = new Set(liveServiceNames(this.broker));
				const [checks, classifier] = await Promise.all([
					Promise.all(REQUIRED_SERVICES.map(service => (live.has(service) ? check(ctx, service) : notRunning(service)))),
					live.has("classifier") ? classifierState(ctx) : { enabled: false, reason: "No classifier service is running" }
				]);
				if (this.broker.getLocalService("api")) checks.push(live.has("api") ? await routesCheck(ctx, this.broker.nodeID) : notRunning("api"));
				checks.push(await diskSpaceCheck());
				const ready = checks.every(result => result.ok) && (classifier.enabled === true || !getConfig().classifierModel);
				if (!ready) ctx.meta.$statusCode = 503;
				return { status: ready ? "ready" : "unavailable", node: this.broker.nodeID, checks, classifier };
			}
		}
	}
};

export default health;
