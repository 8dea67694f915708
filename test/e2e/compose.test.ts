/**
 * docker-compose.yml cannot run here (no Docker engine), so its wiring is checked against the
 * code: every variable it sets is one config/ reads and docs/configuration.md documents, every SERVICES
 * name is a service, every node can be scaled and is health-checked, and the Dockerfile is the
 * Node 24 production image.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse } from "yaml";

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");

/** Variables config/ reads: `env.NAME` and `env, "NAME"` (the typed readers). */
function configVariables(): Set<string> {
	const files = readdirSync(new URL("../../config/", import.meta.url)).filter(file => file.endsWith(".ts"));
	const source = files.map(file => read(`config/${file}`)).join("\n");
	return new Set([...source.matchAll(/env\.([A-Z][A-Z0-9_]*)|env, "([A-Z][A-Z0-9_]*)"/g)].map(match => match[1] ?? match[2]));
}

const documented = new Set([...read("docs/configuration.md").matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map(match => match[1]));
const services = new Set(readdirSync(new URL("../../services/", import.meta.url)).filter(f => f.endsWith(".service.ts")).map(f => f.slice(0, -".service.ts".length)));

interface ComposeService {
	image?: string;
	build?: unknown;
	environment?: Record<string, string>;
	env_file?: { path: string; required: boolean }[];
	healthcheck?: { test: string[] };
	depends_on?: Record<string, { condition: string }>;
	ports?: string[];
	container_name?: string;
	profiles?: string[];
	command?: string[];
}

const compose = parse(read("docker-compose.yml"), { merge: true }) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
const nodes = Object.entries(compose.services).filter(([, service]) => service.build);

describe("docker-compose.yml", () => {
	it("has MongoDB 7+, Redis, one gateway, data nodes and workers", () => {
		assert.match(compose.services.mongo.image!, /^mongo:(\d+)/);
		assert.ok(Number(/^mongo:(\d+)/.exec(compose.services.mongo.image!)![1]) >= 7);
		assert.match(compose.services.redis.image!, /^redis:/);
		const serving = (name: string) => compose.services[name].environment!.SERVICES.split(",");
		assert.deepEqual(serving("gateway"), ["api", "health", "images", "storage"]);
		assert.equal(compose.services.gateway.environment!.STORAGE, "gridfs", "the gateway writes uploads straight into GridFS");
		assert.ok(serving("data").includes("storage") && serving("data").includes("images"));
		assert.deepEqual(serving("worker"), ["worker", "transform", "classifier"]);
	});

	it("sets only variables that config/ reads and docs/configuration.md documents", () => {
		const known = configVariables();
		const example = [...read(".env.example").matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map(match => match[1]);
		const used = new Set([...nodes.flatMap(([, service]) => Object.keys(service.environment ?? {})), ...example]);
		for (const name of used) {
			assert.ok(known.has(name), `${name} is read in config/`);
			assert.ok(documented.has(name), `${name} is in the configuration table of docs/configuration.md`);
		}
	});

	it("names real services in every SERVICES list", () => {
		for (const [name, service] of nodes) {
			for (const wanted of service.environment?.SERVICES?.split(",") ?? []) {
				assert.ok(services.has(wanted), `${name}: SERVICES names '${wanted}'`);
			}
		}
	});

	it("wires every node to Redis and the shared secrets, and health-checks it", () => {
		for (const [name, service] of nodes) {
			assert.equal(service.environment?.TRANSPORTER, "redis://redis:6379", name);
			assert.deepEqual(service.env_file, [{ path: ".env", required: true }], `${name} gets the shared secrets`);
			assert.equal(service.depends_on?.redis?.condition, "service_healthy", name);
			if (service.profiles) continue; // the REPL: a tool, not a long-running node
			assert.ok(service.healthcheck, `${name} has a health check`);
			const probe = service.healthcheck.test.join(" ");
			const port = service.environment?.SERVICES?.split(",").includes("api") ? "3000/api/ready" : `${service.environment?.METRICS_PORT}/metrics`;
			assert.ok(probe.includes(`127.0.0.1:${port}`), `${name} probes ${port}: ${probe}`);
		}
		assert.deepEqual(Object.keys(compose.volumes).sort(), ["mongo-data", "redis-data"]);
	});

	it("can scale data nodes and workers: no fixed names or host ports", () => {
		for (const name of ["data", "worker"]) {
			assert.equal(compose.services[name].container_name, undefined);
			assert.equal(compose.services[name].ports, undefined);
		}
	});

	it("builds the Node 24 production image", () => {
		const dockerfile = read("Dockerfile");
		assert.match(dockerfile, /^FROM node:24/m);
		assert.match(dockerfile, /npm ci --omit=dev/);
		assert.match(dockerfile, /CMD \["node", .*"main\.ts"\]/);
	});
});
