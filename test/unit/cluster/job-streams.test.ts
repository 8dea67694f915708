/** JobQueue's stream trimming against a real Redis (helpers/redis.ts): only what every group acknowledged goes. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, it } from "node:test";
import { Redis } from "ioredis";
import { JobQueue } from "../../../cluster/job-streams.ts";
import { testRedis, type TestRedis } from "../../helpers/redis.ts";

let server: TestRedis;
let redis: Redis;

before(async () => {
	server = await testRedis();
	redis = new Redis(server.url);
});
after(async () => {
	await redis.quit();
	await server.stop();
});

it("trims only the entries every consumer group has read and acknowledged", async () => {
	const queue = new JobQueue(redis, `imgmesh-test-${randomUUID()}`);
	const key = queue.key("jobs");
	try {
		assert.equal(await queue.trimAcknowledged("jobs"), 0, "no stream yet");
		const ids: string[] = [];
		for (let i = 1; i <= 5; i++) ids.push((await redis.xadd(key, "*", "payload", String(i)))!);
		assert.equal(await queue.trimAcknowledged("jobs"), 0, "no group yet: the first one starts at the beginning");

		const read = (group: string, count: number) => redis.xreadgroup("GROUP", group, "c", "COUNT", count, "STREAMS", key, ">");
		await redis.xgroup("CREATE", key, "g1", "0");
		await redis.xgroup("CREATE", key, "g2", "0");
		await read("g1", 3);
		await redis.xack(key, "g1", ids[0]!, ids[2]!); // ids[1] stays pending in g1
		await read("g2", 1);
		await redis.xack(key, "g2", ids[0]!);
		assert.equal(await queue.trimAcknowledged("jobs"), 0, "g2 delivered only the first");

		await read("g2", 10);
		await redis.xack(key, "g2", ...ids.slice(1));
		assert.equal(await queue.trimAcknowledged("jobs"), 1, "up to g1's oldest pending entry");
		await redis.xack(key, "g1", ids[1]!);
		assert.equal(await queue.trimAcknowledged("jobs"), 1, "up to g1's last delivered entry");
		assert.deepEqual((await redis.xrange(key, "-", "+")).map(([id]) => id), ids.slice(2), "g1 has not read the last two");

		assert.deepEqual(await queue.channels(), ["imgmesh.classify", "imgmesh.compress", "imgmesh.process", "jobs"], "found by scanning, beside the pipeline's");
		const stats = await queue.stats(["jobs"]);
		assert.deepEqual(
			stats.map(row => [row.group, row.length, row.pending, row.lag]),
			[["g1", 3, 0, 2], ["g2", 3, 0, 0]],
			"lag stays known after trimming"
		);
	} finally {
		await redis.del(key);
	}
});
