/**
 * The REPL's `images retag`: walks every page of the search as an administrator, tags each
 * image exactly once through `classifier.tag`, reports progress and failures and goes on.
 * Runs on an in-process broker whose images and classifier services stand in for the real
 * ones (their own behaviour is tested over REST in classifier.test.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ServiceBroker, type Context } from "moleculer";
import { retag, type RetagReport } from "../../../repl/classify.ts";

const IDS = Array.from({ length: 230 }, (_, i) => `img-${String(i).padStart(3, "0")}`);

describe("REPL images retag", () => {
	const broker = new ServiceBroker({ logger: false, transporter: null });
	const tagged: string[] = [];
	const listed: { q?: string; cursor?: string; role?: string }[] = [];

	before(async () => {
		broker.createService({
			name: "images",
			actions: {
				list(ctx: Context<{ q?: string; limit: number; cursor?: string }, { user?: { role: string } }>) {
					listed.push({ q: ctx.params.q, cursor: ctx.params.cursor, role: ctx.meta.user?.role });
					const ids = ctx.params.q === "tag:dog" ? IDS.slice(0, 3) : IDS;
					const start = ctx.params.cursor ? Number(ctx.params.cursor) : 0;
					const end = Math.min(start + ctx.params.limit, ids.length);
					return { items: ids.slice(start, end).map(id => ({ id })), nextCursor: end < ids.length ? String(end) : null, total: ids.length };
				}
			}
		});
		broker.createService({
			name: "classifier",
			actions: {
				async tag(ctx: Context<{ id: string }>) {
					await new Promise(resolve => setImmediate(resolve));
					if (ctx.params.id === "img-007") throw new Error("classifier unavailable");
					// The classifier could not tag it (or it was deleted): no labels.
					if (ctx.params.id === "img-100") return null;
					tagged.push(ctx.params.id);
					return { model: "m", labels: [{ label: "dog", score: 0.9 }], ms: 1 };
				}
			}
		});
		await broker.start();
	});
	after(() => broker.stop());

	it("retags every image once, over all pages, reporting the failures", async () => {
		const seen: number[] = [];
		const report: RetagReport = await retag(broker, undefined, progress => seen.push(progress.tagged + progress.failed.length));
		assert.equal(report.total, 230);
		assert.equal(report.tagged, 228);
		assert.deepEqual(report.failed.sort((a, b) => a.id.localeCompare(b.id)), [
			{ id: "img-007", error: "classifier unavailable" },
			{ id: "img-100", error: "not tagged: deleted meanwhile, or the classifier could not (see its log)" }
		]);
		assert.deepEqual([...tagged].sort(), IDS.filter(id => id !== "img-007" && id !== "img-100"));
		assert.deepEqual(seen, Array.from({ length: 230 }, (_, i) => i + 1), "progress after each image");
		assert.deepEqual(listed.map(call => call.cursor), [undefined, "100", "200"]);
		assert.ok(listed.every(call => call.role === "admin" && call.q === undefined), "lists everything as an administrator");
	});

	it("retags only the images a search query matches", async () => {
		tagged.length = 0;
		const report = await retag(broker, "tag:dog", () => undefined);
		assert.deepEqual({ total: report.total, tagged: report.tagged }, { total: 3, tagged: 3 });
		assert.deepEqual([...tagged].sort(), IDS.slice(0, 3));
	});
});
