/**
 * The Redis the durable-job tests use: REDIS_URL, else 127.0.0.1:6379 when a server answers
 * there, else a private `redis-server` (no persistence) started on a free port for this test
 * file and stopped with it. Tests keep apart by key prefix / namespace, never by database.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { Redis } from "ioredis";
import { freePort } from "./server.ts";

const DEFAULT_URL = "redis://127.0.0.1:6379";

export interface TestRedis {
	url: string;
	stop(): Promise<void>;
}

async function answers(url: string): Promise<boolean> {
	const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
	try {
		await client.connect();
		return (await client.ping()) === "PONG";
	} catch {
		return false;
	} finally {
		client.disconnect();
	}
}

export async function testRedis(): Promise<TestRedis> {
	if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: async () => undefined };
	if (await answers(DEFAULT_URL)) return { url: DEFAULT_URL, stop: async () => undefined };
	const port = await freePort();
	const server: ChildProcess = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
	const url = `redis://127.0.0.1:${port}`;
	const deadline = Date.now() + 10_000;
	while (!(await answers(url))) {
		if (server.exitCode !== null || Date.now() > deadline) throw new Error("no Redis at REDIS_URL or 127.0.0.1:6379, and redis-server did not start");
		await new Promise(resolve => setTimeout(resolve, 50));
	}
	return {
		url,
		stop: async () => {
			if (server.exitCode !== null) return;
			const exited = new Promise(resolve => server.once("exit", resolve));
			server.kill("SIGTERM");
			await exited;
		}
	};
}

/** Deletes a test cluster's keys (its channels' streams, its transporter's keys) from a shared Redis. */
export async function deleteNamespace(url: string, namespace: string): Promise<void> {
	const client = new Redis(url);
	try {
		const keys = await client.keys(`${namespace}.*`);
		if (keys.length) await client.del(...keys);
	} finally {
		await client.quit();
	}
}
