/** Gateway hardening: exact CORS origins, rate limits keyed on the socket, health and readiness. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { waitFor } from "../helpers/jobs.ts";
import { startServer, type RunningServer } from "../helpers/server.ts";

describe("gateway", () => {
	let server: RunningServer;

	before(async () => {
		server = await startServer({ CORS_ORIGINS: "https://app.example.com", RATE_LIMIT_PER_MINUTE: "20" });
	});
	after(() => server.stop());

	it("answers /api/health and /api/ready", async () => {
		const health = await fetch(`${server.url}/api/health`);
		assert.equal(health.status, 200);
		const body = (await health.json()) as { status: string; node: string };
		assert.equal(body.status, "ok");
		assert.ok(body.node);
		const ready = (await (await fetch(`${server.url}/api/ready`)).json()) as { status: string; checks: { ok: boolean }[] };
		assert.equal(ready.status, "ready");
		assert.ok(ready.checks.every(check => check.ok));
	});

	it("reports 503 with the failing checks when a required service is missing", async () => {
		const partial = await startServer({ SERVICES: "api,health,users" }, { readyPath: "/api/health" });
		try {
			// The gateway's own check fails too until its routes reflect the live services (a moment
			// after start), and users counts once it has checked the admin's password (one scrypt in
			// the password pool's thread, slow on a busy machine): wait for both, so what is left
			// failing is the missing services alone.
			const res = await waitFor("the gateway's routes and the users service to settle", async () => {
				const answer = await fetch(`${partial.url}/api/ready`);
				const checks = ((await answer.clone().json()) as { checks?: { service: string; ok: boolean }[] }).checks;
				const ok = (service: string) => checks?.find(check => check.service === service)?.ok;
				return ok("api") && ok("users") ? answer : undefined;
			});
			assert.equal(res.status, 503);
			const body = (await res.json()) as { status: string; checks: { service: string; ok: boolean }[] };
			assert.equal(body.status, "unavailable");
			const failing = body.checks.filter(check => !check.ok).map(check => check.service).sort();
			assert.deepEqual(failing, ["categories", "images", "storage"]);
		} finally {
			await partial.stop();
		}
	});

	it("allows exactly the configured CORS origin, not look-alikes", async () => {
		const good = await fetch(`${server.url}/api/health`, { headers: { origin: "https://app.example.com" } });
		assert.equal(good.headers.get("access-control-allow-origin"), "https://app.example.com");
		for (const origin of ["https://app.example.com.evil.net", "https://app.example.co", "https://evil.net"]) {
			const res = await fetch(`${server.url}/api/health`, { headers: { origin } });
			assert.equal(res.status, 403, origin);
			assert.equal(res.headers.get("access-control-allow-origin"), null, origin);
			assert.equal(((await res.json()) as { code: number }).code, 403);
		}
	});

	it("rate-limits by socket address, whatever X-Forwarded-For says", async () => {
		const statuses: number[] = [];
		for (let i = 0; i < 30; i++) {
			const res = await fetch(`${server.url}/api/health`, { headers: { "x-forwarded-for": `10.0.0.${i}` } });
			statuses.push(res.status);
			await res.arrayBuffer();
		}
		assert.ok(statuses.includes(429), `expected a 429 among ${statuses.join(",")}`);
	});
});
