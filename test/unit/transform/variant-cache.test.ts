/** The transform cache index: LRU order by use, eviction by bytes, persistence, and what the garbage collector asks of it. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { VariantIndex, type CachedVariant } from "../../../models/transform/variant-cache.ts";

const dir = mkdtempSync(join(tmpdir(), "imgmesh-variants-"));
const entry = (key: string, size: number): CachedVariant => ({ key, blob: `sha256-${key}`, size, format: "webp", width: 10, height: 10 });
const SOURCE = "5".repeat(64);

describe("VariantIndex", () => {
	after(() => rmSync(dir, { recursive: true, force: true }));

	it("evicts the least recently used entries until the total fits", async () => {
		const index = new VariantIndex(join(dir, "lru.db"));
		index.put(entry("a", 100), SOURCE);
		index.put(entry("b", 100), SOURCE);
		index.put(entry("c", 100), SOURCE);
		assert.deepEqual(index.get("a"), entry("a", 100), "a is now the most recently used");
		assert.deepEqual(index.evictBeyond(300), []);
		assert.deepEqual(index.evictBeyond(150).map(evicted => evicted.key), ["b", "c"]);
		assert.equal(index.get("b"), null);
		assert.deepEqual(index.totals(), { entries: 1, bytes: 100 });
		index.put(entry("huge", 500), SOURCE);
		assert.deepEqual(index.evictBeyond(150, "huge").map(evicted => evicted.key), ["a"], "the entry just made stays, even alone over the bound");
		assert.deepEqual(index.evictBeyond(150).map(evicted => evicted.key), ["huge"]);
		await index.close();
	});

	it("keeps its byte total exact when an entry is stored again, removed or dropped as idle", async () => {
		const index = new VariantIndex(join(dir, "total.db"));
		index.put(entry("a", 100), SOURCE);
		index.put(entry("a", 50), SOURCE);
		index.put(entry("b", 50), SOURCE);
		assert.deepEqual(index.evictBeyond(100), [], "a stored again counts once, at its new size");
		index.remove("b");
		index.put(entry("c", 30), SOURCE);
		assert.equal(index.removeIfIdle("c", Date.now() + 1_000), true);
		assert.deepEqual(index.evictBeyond(50), [], "only a is left");
		assert.deepEqual(index.evictBeyond(49).map(evicted => evicted.key), ["a"]);
		index.put(entry("d", 10), SOURCE);
		await index.close();
		const reopened = new VariantIndex(join(dir, "total.db"));
		assert.deepEqual(reopened.evictBeyond(10), []);
		assert.deepEqual(reopened.evictBeyond(9).map(evicted => evicted.key), ["d"]);
		await reopened.close();
	});

	it("keeps its entries, order and storage reference across a reopen", async () => {
		const file = join(dir, "reopen.db");
		const first = new VariantIndex(file);
		first.put(entry("old", 10), SOURCE);
		first.put(entry("new", 10), SOURCE);
		const ref = first.refOf("old");
		await first.close();
		const second = new VariantIndex(file);
		assert.equal(second.refOf("old"), ref);
		assert.match(ref, /^variant-[0-9a-f]{16}-old$/);
		assert.deepEqual(second.evictBeyond(10).map(evicted => evicted.key), ["old"]);
		const other = new VariantIndex(join(dir, "other.db"));
		assert.notEqual(other.refOf("old"), ref, "another index holds its blobs under its own reference");
		await Promise.all([second.close(), other.close()]);
	});

	it("lists entries idle since a time with their source, and removes one only while still idle", async () => {
		const index = new VariantIndex(join(dir, "idle.db"));
		index.put(entry("a", 10), "a".repeat(64));
		index.put(entry("b", 20), "b".repeat(64));
		const now = Date.now();
		while (Date.now() <= now + 1) await new Promise(resolve => setImmediate(resolve));
		const cutoff = Date.now();
		assert.deepEqual(index.idleEntries(cutoff, "", 10), [
			{ key: "a", blob: "sha256-a", size: 10, sourceSha256: "a".repeat(64) },
			{ key: "b", blob: "sha256-b", size: 20, sourceSha256: "b".repeat(64) }
		]);
		assert.deepEqual(index.idleEntries(cutoff, "a", 1).map(idle => idle.key), ["b"], "pages in key order");
		index.get("a");
		assert.equal(index.removeIfIdle("a", cutoff), false, "used since: kept");
		assert.equal(index.removeIfIdle("b", cutoff), true);
		assert.deepEqual(index.totals(), { entries: 1, bytes: 10 });
		await index.close();
	});

	it("writes nothing on a hit: its use is recorded in a later batch, which a close flushes", async () => {
		const file = join(dir, "batched.db");
		const index = new VariantIndex(file);
		index.put(entry("a", 10), SOURCE);
		index.put(entry("b", 10), SOURCE);
		const reader = new DatabaseSync(file, { readOnly: true });
		const usedOf = (key: string) => (reader.prepare("SELECT used FROM variants WHERE key = ?").get(key) as { used: number }).used;
		const before = usedOf("a");
		assert.deepEqual(index.get("a"), entry("a", 10));
		assert.equal(usedOf("a"), before, "the hit wrote nothing yet");
		await index.close();
		assert.ok(usedOf("a") > usedOf("b"), "closing wrote the use");
		reader.close();
		const reopened = new VariantIndex(file);
		assert.deepEqual(reopened.evictBeyond(10).map(evicted => evicted.key), ["b"], "a, used last, stays");
		await reopened.close();
	});
});
