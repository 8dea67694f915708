/**
 * Every operator REPL command typed at the prompt, through moleculer-repl's real parser
 * (test/helpers/repl.ts), with and without its arguments: what the command does with the words
 * typed, and that a missing, extra or wrong word prints the command's usage, never a stack trace.
 * Runs on an in-process broker (embedded mode: no transporter) whose images, classifier, users,
 * storage and imports services stand in for the real ones and record how they were called; the
 * commands against a real cluster are in test/cluster/repl.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { ServiceBroker, type Context } from "moleculer";
import { hasStackTrace, openRepl, type ReplOutput, type ReplSession } from "../../helpers/repl.ts";

const IMAGES = [
	{ id: "img-1", name: "dog", ownerName: "dave", format: "jpeg", size: 10, visibility: "private", encrypted: true, status: "ready", createdAt: "2024-01-01" },
	{ id: "img-2", name: "cat", ownerName: "dave", format: "png", size: 20, visibility: "public", encrypted: false, status: "failed", createdAt: "2024-01-02" }
];

const IMPORT_JOB = {
	id: "job-1",
	ownerName: "dave",
	status: "running",
	total: 4,
	processed: 2,
	succeeded: 2,
	duplicates: 0,
	failed: 0,
	cancelled: 0,
	source: { type: "urls" },
	rate: null,
	eta: null
};

describe("REPL commands through the command parser", () => {
	const broker = new ServiceBroker({ nodeID: "unit-repl", transporter: null, logLevel: "warn" });
	/** Every stand-in action call: [action, params]. */
	let calls: [string, Record<string, unknown>][] = [];
	let repl: ReplSession;

	const record = (name: string, answer: (params: Record<string, unknown>) => unknown) => (ctx: Context<Record<string, unknown>>) => {
		calls.push([name, ctx.params]);
		return answer(ctx.params);
	};
	const called = (name: string) => calls.filter(([action]) => action === name).map(([, params]) => params);

	/** Runs a line; asserts it printed no stack trace and none of commander's own complaints. */
	async function type(line: string): Promise<ReplOutput> {
		const out = await repl.exec(line);
		assert.equal(hasStackTrace(out.text), false, `${line}: printed a stack trace:\n${out.text}`);
		assert.doesNotMatch(out.text, /too many arguments|missing required argument|argument missing|unknown option/, `${line}:\n${out.text}`);
		return out;
	}

	/** Runs a line that does not fit its command: it must print the command's usage and call nothing. */
	async function usage(line: string, form: RegExp): Promise<ReplOutput> {
		const out = await type(line);
		assert.match(out.text, /^usage: /m, `${line}: no usage line:\n${out.text}`);
		assert.match(out.text, form, `${line}:\n${out.text}`);
		assert.deepEqual(calls, [], `${line}: called ${JSON.stringify(calls)}`);
		return out;
	}

	before(async () => {
		broker.createService({
			name: "images",
			actions: {
				list: record("images.list", params => {
					const items = params.q === "tag:none" ? [] : IMAGES;
					return { items, total: items.length, nextCursor: null };
				}),
				stats: record("images.stats", () => ({ images: { count: 2, bytes: 30 }, users: 1 })),
				reprocess: record("images.reprocess", params => ({ id: params.id }))
			}
		});
		broker.createService({ name: "classifier", actions: { tag: record("classifier.tag", () => ({ model: "m", labels: [{ label: "dog", score: 0.9 }], ms: 1 })) } });
		broker.createService({
			name: "users",
			actions: {
				list: record("users.list", () => ({ items: [{ id: "u1", username: "carol", name: "Carol", role: "user", disabled: false, createdAt: "2024-01-01" }] })),
				create: record("users.create", params => ({ id: "u2", username: params.username, role: params.role })),
				updateByName: record("users.updateByName", params => ({ id: "u2", username: params.username, role: params.role ?? "user", disabled: params.disabled ?? false }))
			}
		});
		broker.createService({
			name: "storage",
			actions: {
				rotateKeys: record("storage.rotateKeys", () => ({ rewrapped: 3, failed: [] })),
				// Two batches: the first stops after sha256-bb, the second finishes.
				scrub: record("storage.scrub", params =>
					params.after === "sha256-bb"
						? { checked: 1, bytes: 1024 * 1024, corrupt: [], next: null }
						: { checked: 2, bytes: 2 * 1024 * 1024, corrupt: [{ key: "sha256-aa", error: "A stored blob does not match its SHA-256" }], next: "sha256-bb" }
				),
				gc: record("storage.gc", params => ({
					startedAt: "2024-01-01T00:00:00.000Z",
					finishedAt: "2024-01-01T00:00:01.000Z",
					dryRun: params.dryRun,
					refsChecked: 40,
					refsReleased: 3,
					blobsDeleted: 2,
					bytesReclaimed: 3 * 1024 * 1024,
					tempFilesRemoved: params.dryRun ? 0 : 1,
					errors: []
				})),
				gcStatus: record("storage.gcStatus", () => ({ lastRun: null, running: null })),
				migrate: record("storage.migrate", params => ({
					to: params.to,
					startedAt: "2024-01-01T00:00:00.000Z",
					finishedAt: "2024-01-01T00:00:01.000Z",
					dryRun: params.dryRun,
					blobs: 5,
					copied: 3,
					bytesCopied: 2 * 1024 * 1024,
					skipped: 1,
					failed: [{ key: "sha256-aa", error: "corrupt at the source" }],
					errors: []
				})),
				migrateStatus: record("storage.migrateStatus", () => ({ lastRun: null, running: null }))
			}
		});
		broker.createService({
			name: "imports",
			actions: {
				list: record("imports.list", () => ({ items: [IMPORT_JOB], total: 1 })),
				cancel: record("imports.cancel", () => ({ job: { ...IMPORT_JOB, status: "cancelled" } })),
				retry: record("imports.retry", () => ({ job: IMPORT_JOB, requeued: 2 }))
			}
		});
		await broker.start();
		repl = await openRepl(broker);
	});
	after(async () => {
		repl?.close();
		await broker.stop();
	});
	beforeEach(() => {
		calls = [];
	});

	describe("images", () => {
		it("images find takes a query of several words, quotes kept", async () => {
			const out = await type(`images find tag:dog owner:dave "red car" tag:"new york"`);
			assert.deepEqual(called("images.list"), [{ q: `tag:dog owner:dave "red car" tag:"new york"`, limit: 50 }]);
			assert.match(out.text, /^2 image\(s\) match/m);
			assert.deepEqual(out.tables[0]?.map(row => row.name), ["dog", "cat"]);
		});

		it("images find with one word, and with a query that matches nothing", async () => {
			await type("images find tag:dog");
			assert.deepEqual(called("images.list"), [{ q: "tag:dog", limit: 50 }]);
			const none = await type("images find tag:none");
			assert.match(none.text, /^No image matches\./m);
			assert.deepEqual(none.tables, [], "no empty table");
		});

		it("images stats", async () => {
			const out = await type("images stats");
			assert.equal(called("images.stats").length, 1);
			assert.deepEqual(out.tables[0], [
				{ key: "images", value: JSON.stringify({ count: 2, bytes: 30 }) },
				{ key: "users", value: 1 }
			]);
		});

		it("images retag <query> classifies the images the query finds; --all every image", async () => {
			const out = await type("images retag tag:dog owner:dave");
			assert.deepEqual(called("images.list").map(params => params.q), ["tag:dog owner:dave"]);
			assert.deepEqual(called("classifier.tag").map(params => params.id).sort(), ["img-1", "img-2"]);
			assert.match(out.text, /^Retagged 2 of 2 image\(s\)\.$/m);

			calls = [];
			await type("images retag --all");
			assert.deepEqual(called("images.list").map(params => params.q), [undefined]);
			assert.equal(called("classifier.tag").length, 2);
		});

		it("images reprocess <query> [--status <status>]; --all every image", async () => {
			const out = await type("images reprocess tag:dog owner:dave");
			assert.deepEqual(called("images.list").map(params => params.q), ["tag:dog owner:dave"]);
			assert.deepEqual(called("images.reprocess"), [{ id: "img-1" }, { id: "img-2" }]);
			assert.match(out.text, /^Reprocessing 2 image\(s\)\.$/m);

			calls = [];
			await type("images reprocess --status failed owner:dave");
			assert.deepEqual(called("images.list").map(params => params.q), ["owner:dave"]);
			assert.deepEqual(called("images.reprocess"), [{ id: "img-2" }], "only the failed one");

			calls = [];
			await type("images reprocess --all --status failed");
			assert.deepEqual(called("images.list").map(params => params.q), [undefined]);
			assert.deepEqual(called("images.reprocess"), [{ id: "img-2" }]);
		});

		it("prints its usage when a word is missing, wrong or extra", async () => {
			await usage("images", /images find <query>/);
			await usage("images find", /images find <query>/);
			await usage("images retag", /images retag --all/);
			// A missing query must never mean "every image" for a command that rewrites them.
			await usage("images reprocess", /images reprocess --all/);
			await usage("images reprocess --status failed", /images reprocess/);
			await usage("images reprocess tag:dog --status", /^--status takes one of: processing, ready, failed$/m);
			await usage("images reprocess tag:dog --status done", /^--status takes one of: processing, ready, failed$/m);
			await usage("images stats tag:dog", /images stats/);
			await usage("images frobnicate", /images stats/);
			await usage("images find tag:dog --bogus", /images find <query>/);
		});
	});

	describe("user", () => {
		it("user add [--admin], role, disable, enable, list", async () => {
			const added = await type("user add carol --admin");
			assert.deepEqual(called("users.create").map(({ username, role }) => ({ username, role })), [{ username: "carol", role: "admin" }]);
			assert.match(added.text, /shown once: \S+/);
			await type("user role carol user");
			await type("user disable carol");
			await type("user enable carol");
			assert.deepEqual(called("users.updateByName"), [
				{ username: "carol", role: "user" },
				{ username: "carol", disabled: true },
				{ username: "carol", disabled: false }
			]);
			const listed = await type("user list");
			assert.equal(listed.tables[0]?.[0]?.username, "carol");
		});

		it("prints its usage when a word is missing, wrong or extra", async () => {
			await usage("user", /user add <username> \[--admin\]/);
			await usage("user add", /user add <username>/);
			await usage("user role carol", /user role <username> user\|admin/);
			await usage("user role carol root", /user role <username> user\|admin/);
			await usage("user disable", /user disable <username>/);
			await usage("user enable", /user enable <username>/);
			await usage("user add carol bob", /user add <username>/);
			await usage("user list carol", /user list/);
			await usage("user role carol admin extra", /user role/);
			await usage("user frobnicate", /user list/);
		});
	});

	describe("storage", () => {
		it("storage rotate-keys", async () => {
			const out = await type("storage rotate-keys");
			assert.equal(called("storage.rotateKeys").length, 1);
			assert.match(out.text, /re-wrapped 3 data key\(s\); 0 failed/);
		});

		it("storage scrub checks every blob batch by batch, printing where to continue, then a summary", async () => {
			const out = await type("storage scrub");
			assert.deepEqual(called("storage.scrub"), [{}, { after: "sha256-bb" }]);
			assert.match(out.text, /^checked 2 blob\(s\), 2\.0 MiB, 1 corrupt; to continue later: storage scrub --after sha256-bb$/m);
			assert.match(out.text, /^Scrubbed 3 blob\(s\), 3\.0 MiB: 1 corrupt$/m);
			assert.deepEqual(out.tables.at(-1), [{ key: "sha256-aa", error: "A stored blob does not match its SHA-256" }]);
		});

		it("storage scrub --after <key> continues after that key; --rate <MiB/s> sets the pace", async () => {
			const out = await type("storage scrub --after sha256-bb --rate 4");
			assert.deepEqual(called("storage.scrub"), [{ after: "sha256-bb", bytesPerSecond: 4 * 1024 * 1024 }]);
			assert.match(out.text, /^Scrubbed 1 blob\(s\), 1\.0 MiB: none corrupt$/m);
			assert.deepEqual(out.tables, [], "no empty table");
			calls = [];
			await type("storage scrub --rate 0.5");
			assert.deepEqual(called("storage.scrub")[0], { bytesPerSecond: 512 * 1024 });
		});

		it("storage gc [--dry-run] runs a garbage collection on a storage node and prints what it reclaimed, or would", async () => {
			const collected = await type("storage gc");
			assert.deepEqual(called("storage.gc"), [{ dryRun: false }]);
			assert.match(collected.text, /^Collected on [\w-]+: 40 reference\(s\) checked, 3 released, 2 blob\(s\) deleted, 3\.0 MiB reclaimed, 1 temp file\(s\) removed$/m);
			calls = [];
			const dry = await type("storage gc --dry-run");
			assert.deepEqual(called("storage.gc"), [{ dryRun: true }]);
			assert.match(dry.text, /^Dry run on [\w-]+: 40 reference\(s\) checked, 3 released \(would be\), 2 blob\(s\) deleted, 3\.0 MiB reclaimed \(would be\)$/m);
		});

		it("storage migrate --to <backend> [--dry-run] [--rate] copies every blob on a storage node and prints what it copied and what failed", async () => {
			const migrated = await type("storage migrate --to s3 --rate 8");
			assert.deepEqual(called("storage.migrate"), [{ to: "s3", dryRun: false, bytesPerSecond: 8 * 1024 * 1024 }]);
			assert.match(migrated.text, /^Migrated to s3 on [\w-]+: 5 blob\(s\) gone through, 3 copied \(2\.0 MiB\), 1 already there, 1 failed$/m);
			assert.deepEqual(
				migrated.tables.at(-1)?.map(row => row.key),
				["sha256-aa"]
			);
			calls = [];
			const dry = await type("storage migrate --to gridfs --dry-run");
			assert.deepEqual(called("storage.migrate"), [{ to: "gridfs", dryRun: true }]);
			assert.match(dry.text, /^Dry run to gridfs on [\w-]+: .* \(would be\)$/m);
		});

		it("prints its usage when a word is missing, wrong or extra", async () => {
			await usage("storage", /storage rotate-keys/);
			await usage("storage gc now", /storage gc \[--dry-run\]/);
			await usage("storage gc --rate 4", /^--rate is for storage scrub and storage migrate$/m);
			await usage("storage scrub --dry-run", /^--dry-run is for storage gc and storage migrate$/m);
			await usage("storage migrate", /^storage migrate takes --to fs\|gridfs\|s3/m);
			await usage("storage migrate --to ftp", /^storage migrate takes --to fs\|gridfs\|s3/m);
			await usage("storage migrate --to s3 --after sha256-aa", /^--after is for storage scrub$/m);
			await usage("storage gc --to s3", /^--to is for storage migrate$/m);
			await usage("storage rotate", /storage rotate-keys/);
			await usage("storage rotate-keys now", /storage rotate-keys/);
			await usage("storage scrub now", /storage scrub \[--after <key>\] \[--rate <MiB\/s>\]/);
			await usage("storage scrub --after", /^--after takes the key a scrub printed/m);
			await usage("storage scrub --rate", /^--rate takes MiB per second/m);
			await usage("storage scrub --rate fast", /^--rate takes MiB per second/m);
			await usage("storage scrub --rate 0", /^--rate takes MiB per second/m);
			await usage("storage rotate-keys --rate 4", /^--rate is for storage scrub and storage migrate$/m);
		});
	});

	describe("jobs and queue (embedded mode)", () => {
		it("jobs lists the import jobs; jobs cancel|retry <import id> change one", async () => {
			const listed = await type("jobs");
			assert.match(listed.text, /^job-1 +dave +urls +running .*\[#{12}\.{12}\] +50% 2\/4/m);
			await type("jobs cancel job-1");
			assert.deepEqual(called("imports.cancel"), [{ id: "job-1" }]);
			const retried = await type("jobs retry job-1");
			assert.deepEqual(called("imports.retry"), [{ id: "job-1" }]);
			assert.match(retried.text, /\(2 item\(s\) re-queued\)/);
		});

		it("jobs dead, jobs retry <dead letter id> and queue say there are no streams in embedded mode", async () => {
			assert.match((await type("jobs dead")).text, /^Embedded mode: .*no dead letters/m);
			assert.match((await type("jobs retry 1700000000000-0")).text, /^Embedded mode: /m);
			assert.match((await type("queue")).text, /^Embedded mode: /m);
			assert.deepEqual(calls, []);
		});

		it("prints its usage when a word is missing, wrong or extra", async () => {
			await usage("jobs cancel", /jobs cancel <import id>/);
			await usage("jobs retry", /jobs retry <import id>/);
			await usage("jobs frobnicate", /jobs dead/);
			await usage("jobs dead now", /jobs dead/);
			await usage("jobs cancel job-1 job-2", /jobs cancel <import id>/);
			await usage("queue now", /^usage: queue$/m);
		});
	});

	describe("cluster", () => {
		it("cluster [--all] lists this node", async () => {
			for (const line of ["cluster", "cluster --all", "cluster -a"]) {
				const out = await type(line);
				assert.match(out.text, /1 node\(s\) up/);
				assert.equal(out.tables[0]?.[0]?.node, "unit-repl (this REPL)");
			}
		});

		it("prints its usage when a word is extra", async () => {
			await usage("cluster nodes", /^usage: cluster \[--all\]$/m);
		});
	});

	it("an action that fails prints its error, not a stack trace", async () => {
		await broker.destroyService("storage");
		const out = await type("storage rotate-keys");
		assert.match(out.text, /^error: .*storage\.rotateKeys/m);
	});
});
