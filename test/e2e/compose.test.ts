/**
 * docker-compose.yml cannot run here (no Docker engine), so its wiring is checked against the
 * code: every variable it sets is one config/ reads and docs/configuration.md documents, every SERVICES
 * name is a service, every node can be scaled and is health-checked, and the Dockerfile is the
 * Node 24 production image. docker-compose.s3.yml, merged over it, moves every node to an S3
 * bucket on SeaweedFS (the server the tests run): checked the same way, merged as Compose merges.
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
	entrypoint?: string[];
	volumes?: string[];
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

interface ComposeFile {
	services: Record<string, ComposeService>;
	volumes: Record<string, unknown>;
}

const compose = parse(read("docker-compose.yml"), { merge: true }) as ComposeFile;
const nodes = Object.entries(compose.services).filter(([, service]) => service.build);
const s3Override = parse(read("docker-compose.s3.yml"), { merge: true }) as ComposeFile;

/** `docker compose -f docker-compose.yml -f docker-compose.s3.yml`: services and their maps merged by key. */
function mergedOver(base: ComposeFile, over: ComposeFile): ComposeFile {
	const services = { ...base.services };
	for (const [name, service] of Object.entries(over.services)) {
		const under = base.services[name] ?? {};
		services[name] = {
			...under,
			...service,
			environment: { ...under.environment, ...service.environment },
			depends_on: { ...under.depends_on, ...service.depends_on }
		};
	}
	return { services, volumes: { ...base.volumes, ...over.volumes } };
}

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
		const s3Nodes = Object.entries(s3Override.services).filter(([name]) => nodes.some(([node]) => node === name));
		const used = new Set([...[...nodes, ...s3Nodes].flatMap(([, service]) => Object.keys(service.environment ?? {})), ...example]);
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

describe("docker-compose.s3.yml, the S3 profile", () => {
	const merged = mergedOver(compose, s3Override);
	const seaweedfs = merged.services.seaweedfs;
	const bucketInit = merged.services["s3-bucket"];
	// The REPL (a tools profile) hosts no service: it calls the storage nodes and needs no bucket.
	const s3Nodes = nodes.filter(([, service]) => !service.profiles).map(([name]) => [name, merged.services[name]!] as const);

	it("runs SeaweedFS's S3 server, as the tests do, with the credentials of .env, health-checked", () => {
		assert.match(seaweedfs.image!, /^chrislusf\/seaweedfs:\d+\.\d+$/, "a pinned release");
		assert.deepEqual(seaweedfs.command!.slice(0, 2), ["server", "-s3"]);
		// SeaweedFS takes AWS_* as its admin's credentials; the nodes read the same S3_* from .env.
		assert.deepEqual(seaweedfs.environment, {
			AWS_ACCESS_KEY_ID: "${S3_ACCESS_KEY_ID:?set S3_ACCESS_KEY_ID in .env}",
			AWS_SECRET_ACCESS_KEY: "${S3_SECRET_ACCESS_KEY:?set S3_SECRET_ACCESS_KEY in .env}"
		});
		const example = read(".env.example");
		for (const name of ["S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"]) assert.match(example, new RegExp(`^${name}=`, "m"), `.env.example has ${name}`);
		assert.ok(seaweedfs.healthcheck!.test.join(" ").includes("127.0.0.1:8333/healthz"));
		assert.ok(seaweedfs.volumes!.some(volume => volume.startsWith("seaweedfs-data:")));
		assert.deepEqual(Object.keys(merged.volumes).sort(), ["mongo-data", "redis-data", "seaweedfs-data"]);
	});

	it("creates the bucket the nodes use once SeaweedFS is healthy, and only when it is missing", () => {
		assert.equal(bucketInit.image, seaweedfs.image);
		assert.equal(bucketInit.depends_on?.seaweedfs?.condition, "service_healthy");
		const script = [...bucketInit.entrypoint!, ...bucketInit.command!].join(" ");
		const bucket = s3Nodes[0]![1].environment!.S3_BUCKET;
		assert.ok(script.includes(`grep -qE '^  ${bucket}[[:space:]]' || echo 's3.bucket.create -name ${bucket}'`), script);
	});

	it("moves every node to STORAGE=s3 on that bucket, with its index in MongoDB, after the bucket exists", () => {
		const port = /-s3\.port=(\d+)/.exec(seaweedfs.command!.join(" "))![1];
		for (const [name, service] of s3Nodes) {
			const env = service.environment!;
			assert.equal(env.STORAGE, "s3", name);
			assert.equal(env.S3_ENDPOINT, `http://seaweedfs:${port}`, name);
			assert.equal(env.S3_BUCKET, s3Nodes[0]![1].environment!.S3_BUCKET, name);
			assert.equal(env.MONGO_URL, "mongodb://mongo:27017/imgmesh", `${name}: the index is shared in MongoDB, so every node reads the bucket directly`);
			assert.equal(service.depends_on?.["s3-bucket"]?.condition, "service_completed_successfully", name);
			assert.equal(service.depends_on?.mongo?.condition, "service_healthy", name);
		}
		assert.deepEqual(Object.keys(s3Override.services).sort(), ["data", "gateway", "s3-bucket", "seaweedfs", "worker"], "adds SeaweedFS and changes only the nodes");
	});
});
