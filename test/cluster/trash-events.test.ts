/**
 * The trash's events as another node hears them over Redis, the way the albums and shares services
 * follow the catalogue: `image.trashed` on DELETE, `image.restored` on restore, `image.deleted` once
 * on a purge, each with `{id, owner}`; and nothing when an image merely stays in the trash.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Context, ServiceBroker } from "moleculer";
import { Client, fileFrom } from "../helpers/client.ts";
import { clusterEnv, redisSkipReason, startObserver, startRedis, type RedisServer } from "../helpers/cluster.ts";
import { type RunningServer, SHARED_IMAGES, startServer } from "../helpers/server.ts";

const EVENTS = ["image.trashed", "image.restored", "image.deleted"] as const;

interface Heard {
	event: string;
	payload: unknown;
}

describe("trash events across nodes", { skip: redisSkipReason() }, () => {
	let redis: RedisServer;
	let node: RunningServer;
	let observer: ServiceBroker;
	let alice: Client;
	const heard: Heard[] = [];
	const dog = fileFrom(join(SHARED_IMAGES, "dog.jpg"));

	const upload = async () => (await alice.upload([dog])).body.images[0] as { id: string; owner: string };
	const heardOf = (id: string) => heard.filter(entry => (entry.payload as { id: string }).id === id);

	async function until(check: () => boolean, what: string): Promise<void> {
		const deadline = Date.now() + 20_000;
		while (!check()) {
			if (Date.now() > deadline) throw new Error(`${what} not heard within 20 s: ${JSON.stringify(heard)}`);
			await new Promise(resolve => setTimeout(resolve, 100));
		}
	}

	before(async () => {
		redis = await startRedis();
		const env = clusterEnv(redis);
		node = await startServer(env);
		observer = await startObserver(env);
		observer.createService({
			name: "trash-listener",
			events: Object.fromEntries(EVENTS.map(event => [event, (ctx: Context) => void heard.push({ event, payload: ctx.params })]))
		});
		alice = await new Client(node.url).register("alice");
		// The images node learns of the listener a moment after it starts: trash probes until it hears one.
		const deadline = Date.now() + 20_000;
		for (;;) {
			const probe = await upload();
			assert.equal((await alice.delete(`/api/images/${probe.id}`)).status, 204);
			await new Promise(resolve => setTimeout(resolve, 300));
			if (heardOf(probe.id).length > 0 || Date.now() > deadline) break;
		}
		heard.length = 0;
	});
	after(async () => {
		await observer?.stop();
		await node?.stop();
		await redis?.stop();
	});

	it("tells of a trashing, a restore and a purge, each once, with the image's id and owner", async () => {
		const image = await upload();
		const payload = { id: image.id, owner: image.owner };
		assert.equal((await alice.delete(`/api/images/${image.id}`)).status, 204);
		await until(() => heardOf(image.id).length === 1, "image.trashed");
		assert.deepEqual(heardOf(image.id), [{ event: "image.trashed", payload }]);

		assert.equal((await alice.post(`/api/trash/${image.id}/restore`)).status, 200);
		assert.equal((await alice.post(`/api/trash/${image.id}/restore`)).status, 200, "a second restore changes nothing");
		await until(() => heardOf(image.id).length === 2, "image.restored");

		assert.equal((await alice.delete(`/api/images/${image.id}`)).status, 204);
		assert.equal((await alice.delete(`/api/trash/${image.id}`)).status, 204);
		assert.equal((await alice.delete(`/api/trash/${image.id}`)).status, 404);
		await until(() => heardOf(image.id).length === 4, "image.deleted");
		await new Promise(resolve => setTimeout(resolve, 500));
		assert.deepEqual(heardOf(image.id), [
			{ event: "image.trashed", payload },
			{ event: "image.restored", payload },
			{ event: "image.trashed", payload },
			{ event: "image.deleted", payload }
		]);
	});
});
