/** Liveness (/api/health) and readiness (/api/ready) for load balancers and operators. */
import type { Context, ServiceSchema } from "moleculer";

/** Services a node needs reachable (anywhere in the cluster) to serve requests. */
export const REQUIRED = ["users", "images", "categories", "storage"];
const PING_TIMEOUT_MS = 2000;

async function check(ctx: Context, service: string): Promise<{ service: string; ok: boolean; error?: string }> {
	try {
		await ctx.call(`${service}.ping`, {}, { timeout: PING_TIMEOUT_MS, retries: 0 });
		return { service, ok: true };
	} catch (err) {
		return { service, ok: false, error: (err as Error).message };
	}
}

/** A gateway is ready once its REST routes reflect the live services (it rebuilds them debounced). */
async function routesCheck(ctx: Context, nodeID: string): Promise<{ service: string; ok: boolean; error?: string }> {
	const current = await ctx.call<boolean, object>("api.routesCurrent", {}, { nodeID });
	return current ? { service: "api", ok: true } : { service: "api", ok: false, error: "REST routes are being rebuilt after a cluster change" };
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
				const checks = await Promise.all(REQUIRED.map(service => check(ctx, service)));
				if (this.broker.getLocalService("api")) checks.push(await routesCheck(ctx, this.broker.nodeID));
				const ready = checks.every(result => result.ok);
				if (!ready) ctx.meta.$statusCode = 503;
				return { status: ready ? "ready" : "unavailable", node: this.broker.nodeID, checks };
			}
		}
	}
};

export default health;
