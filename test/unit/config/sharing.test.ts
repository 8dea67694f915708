/** TRANSFORM_PRESETS and TRANSFORM_SIGNING_KEYS as loadConfig reads them; the generated key. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadConfig } from "../../../config/index.ts";
import { DEFAULT_PRESETS } from "../../../models/transform/presets.ts";

describe("sharing configuration", () => {
	const dataDir = mkdtempSync(join(tmpdir(), "imgmesh-config-"));
	after(() => rmSync(dataDir, { recursive: true, force: true }));
	const load = (env: Record<string, string>) => loadConfig({ DATA_DIR: dataDir, ...env });

	it("generates a signing key into secrets.json once, and keeps it across restarts", () => {
		const first = load({}).transformSigningKeys;
		assert.equal(first.length, 1);
		assert.ok(first[0]!.secret.length >= 32);
		assert.deepEqual(load({}).transformSigningKeys, first);
		const stored = JSON.parse(readFileSync(join(dataDir, "secrets.json"), "utf8")) as { transformSigningKeys: string };
		assert.equal(stored.transformSigningKeys, `${first[0]!.id}:${first[0]!.secret}`);
	});

	it("reads TRANSFORM_SIGNING_KEYS, the first one signing", () => {
		const keys = load({ TRANSFORM_SIGNING_KEYS: "b:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,a:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" }).transformSigningKeys;
		assert.deepEqual(keys.map(key => key.id), ["b", "a"]);
		assert.throws(() => load({ TRANSFORM_SIGNING_KEYS: "b:short" }), /at least 32/);
	});

	it("has the default presets unless TRANSFORM_PRESETS replaces them", () => {
		assert.deepEqual(load({}).transformPresets, DEFAULT_PRESETS);
		assert.deepEqual(Object.keys(load({ TRANSFORM_PRESETS: '{"card":{"w":600,"h":400}}' }).transformPresets), ["card"]);
		assert.throws(() => load({ TRANSFORM_PRESETS: "{not json" }), /TRANSFORM_PRESETS/);
	});
});
