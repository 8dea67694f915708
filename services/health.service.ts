/** Liveness (/api/health) and readiness (/api/ready) for load balancers and operators. */
import type { Context, ServiceSchema } from "moleculer";
import { getConfig } from "../config/index.ts";

/** Services a node needs reachable (anywhere in the cluster) to serve requests. */
const REQUIRED = ["users", "images", "categories", "storage"];
const PING_TIMEOUT_MS = 2000;

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

async function check(ctx: Context, service: string): Promise<{ service: string; ok: boolean; error?: string }> {
	try {
		await ctx.call(`${service}.ping`, {}, { timeout: PING_TIMEOUT_MS, retries: 0 });
		return { service, ok: true };
	} catch (err) {
		return { service, ok: false, error: (err as Error).message };
	}
}

const health: ServiceSchema = {
	name: "health",
	settings: { rest: "/" },

	// The gateway (moleculer-web) rebuilds its routes 500 ms, debounced, after services change;
	// until it has, a new service's routes answer 404. A starting node with a gateway is not ready
	// before the routes of all its services exist; later changes (nodes joining or leaving) do
	// not make a running node unready.
	created() {
		this.routesPending = true;
	},
	events: {
		"$services.changed"() {
			if (!this.broker.started) this.routesPending = true;
		},
		"$api.aliases.regenerated"(ctx: Context) {
			// Broadcast by every gateway of the cluster: only this node's own counts.
			if (ctx.nodeID === this.broker.nodeID) this.routesPending = false;
		}
	},

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
				const [checks, classifier] = await Promise.all([Promise.all(REQUIRED.map(service => check(ctx, service))), classifierState(ctx)]);
				const routes = this.broker.getLocalService("api") && this.routesPending ? "rebuilding" : "current";
				const ready = checks.every(result => result.ok) && (classifier.enabled === true || !getConfig().classifierModel) && routes === "current";
				if (!ready) ctx.meta.$statusCode = 503;
				return { status: ready ? "ready" : "unavailable", node: this.broker.nodeID, checks, classifier, routes };
			}
		}
	}
};

export default health;
