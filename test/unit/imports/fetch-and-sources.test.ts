/**
 * The pure parts of imports: which addresses a fetch may reach (in every spelling), how Drive
 * folder references are read, URL identity, retry back-off and the REPL command.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseFolderId } from "../../../models/imports/google-drive.ts";
import { addressClass, embeddedIpv4, mayConnect } from "../../../models/imports/net-address.ts";
import { backoffMs, FetchError, FetchLimiter, retryAfterMs } from "../../../models/imports/safe-fetch.ts";
import replCommands, { progressBar } from "../../../repl/jobs.ts";
import { normalizeUrl } from "../../../models/imports/import-job.ts";

describe("address classifier", () => {
	const cases: [string, ReturnType<typeof addressClass>][] = [
		["8.8.8.8", "public"],
		["1.1.1.1", "public"],
		["2606:4700:4700::1111", "public"],
		["127.0.0.1", "private"],
		["127.255.0.9", "private"],
		["10.1.2.3", "private"],
		["172.16.0.1", "private"],
		["172.31.255.255", "private"],
		["172.32.0.1", "public"],
		["192.168.1.1", "private"],
		["100.64.0.1", "private"],
		["100.127.255.254", "private"],
		["::1", "private"],
		["fd12:3456::1", "private"],
		["0.0.0.0", "reserved"],
		["169.254.169.254", "reserved"],
		["169.254.1.1", "reserved"],
		["192.0.0.192", "reserved"],
		["224.0.0.1", "reserved"],
		["239.255.255.250", "reserved"],
		["255.255.255.255", "reserved"],
		["::", "reserved"],
		["fe80::1", "reserved"],
		["fe80::1%eth0", "reserved"],
		["ff02::1", "reserved"],
		["fd00:ec2::254", "reserved"],
		// IPv4 inside IPv6: judged as the IPv4 address.
		["::ffff:127.0.0.1", "private"],
		["::ffff:7f00:1", "private"],
		["::ffff:169.254.169.254", "reserved"],
		["::ffff:a9fe:a9fe", "reserved"],
		["::ffff:8.8.8.8", "public"],
		["::127.0.0.1", "private"],
		["64:ff9b::a00:1", "private"],
		["64:ff9b::808:808", "public"],
		["2002:a9fe:a9fe::1", "reserved"],
		["2002:c0a8:0101::1", "private"],
		["not-an-ip", "reserved"],
		["", "reserved"]
	];
	for (const [address, expected] of cases) {
		it(`${address || "(empty)"} is ${expected}`, () => assert.equal(addressClass(address), expected));
	}

	it("opens private addresses only with the test flag, reserved ones never", () => {
		assert.equal(mayConnect("127.0.0.1", false), false);
		assert.equal(mayConnect("127.0.0.1", true), true);
		assert.equal(mayConnect("169.254.169.254", true), false);
		assert.equal(mayConnect("::ffff:169.254.169.254", true), false);
		assert.equal(mayConnect("93.184.216.34", false), true);
	});

	it("finds the IPv4 address embedded in mapped, NAT64 and 6to4 forms", () => {
		assert.equal(embeddedIpv4("::ffff:10.0.0.1"), "10.0.0.1");
		assert.equal(embeddedIpv4("64:ff9b::10.0.0.1"), "10.0.0.1");
		assert.equal(embeddedIpv4("2002:0a00:0001::"), "10.0.0.1");
		assert.equal(embeddedIpv4("2001:4860::8888"), null);
		assert.equal(embeddedIpv4("10.0.0.1"), null);
	});
});

describe("Google Drive folder references", () => {
	const id = "1AbCdEfGhIjKlMnOpQrStUvWxYz_-0123";
	it("reads folders/<id> URLs", () => {
		assert.equal(parseFolderId(`https://drive.google.com/drive/folders/${id}`), id);
		assert.equal(parseFolderId(`https://drive.google.com/drive/u/0/folders/${id}?usp=sharing`), id);
	});
	it("reads ?id=<id> URLs", () => {
		assert.equal(parseFolderId(`https://drive.google.com/open?id=${id}`), id);
	});
	it("takes a bare id", () => {
		assert.equal(parseFolderId(`  ${id} `), id);
	});
	it("refuses anything else", () => {
		for (const bad of ["", "short", "https://drive.google.com/drive/my-drive", "https://example.com/?id=a/b", "not a url at all", "folders/../x", `${id}/x`]) {
			assert.equal(parseFolderId(bad), null, bad);
		}
	});
});

describe("URL identity", () => {
	it("ignores case of scheme and host, default ports, fragments and query order", () => {
		assert.equal(normalizeUrl("HTTP://Example.COM:80/a.jpg?b=2&a=1#top"), normalizeUrl("http://example.com/a.jpg?a=1&b=2"));
	});
	it("keeps paths case-sensitive", () => {
		assert.notEqual(normalizeUrl("http://example.com/A.jpg"), normalizeUrl("http://example.com/a.jpg"));
	});
});

describe("retry back-off", () => {
	it("grows exponentially with full jitter", () => {
		const err = new FetchError("HTTP 503", "HTTP_503", true, 503);
		assert.equal(backoffMs(0, 100, err, () => 1), 100);
		assert.equal(backoffMs(3, 100, err, () => 1), 800);
		assert.equal(backoffMs(3, 100, err, () => 0), 0);
	});
	it("honours Retry-After, in seconds or as a date, capped at a minute", () => {
		assert.equal(retryAfterMs("2"), 2000);
		assert.equal(retryAfterMs(new Date(10_000 + 3000).toUTCString(), 10_000), 3000);
		assert.equal(retryAfterMs("soon"), undefined);
		assert.equal(backoffMs(0, 100, new FetchError("HTTP 429", "HTTP_429", true, 429, 5000)), 5000);
		assert.equal(backoffMs(0, 100, new FetchError("HTTP 429", "HTTP_429", true, 429, 3_600_000)), 60_000);
	});
});

describe("download limits", () => {
	it("bounds downloads per node and per source host", async () => {
		const limiter = new FetchLimiter(3, 2);
		const active = new Map<string, number>();
		const peak = new Map<string, number>();
		let peakTotal = 0;
		const releases: (() => void)[] = [];
		const task = (url: string) =>
			limiter.run(url, async () => {
				const host = new URL(url).host;
				active.set(host, (active.get(host) ?? 0) + 1);
				peak.set(host, Math.max(peak.get(host) ?? 0, active.get(host)!));
				peakTotal = Math.max(peakTotal, [...active.values()].reduce((a, b) => a + b, 0));
				await new Promise<void>(resolve => releases.push(resolve));
				active.set(host, active.get(host)! - 1);
			});
		const all = Promise.all([...Array.from({ length: 5 }, (_, i) => task(`http://a.test/${i}`)), task("http://b.test/1"), task("http://b.test/2")]);
		// Release whatever runs, one at a time, until everything has run.
		for (let done = 0; done < 7; done++) {
			await new Promise(resolve => setImmediate(resolve));
			releases.shift()!();
		}
		await all;
		assert.equal(peak.get("a.test"), 2);
		assert.equal(peakTotal, 3);
		assert.ok(peak.get("b.test")! >= 1);
	});
});

describe("REPL jobs command, import jobs", () => {
	it("draws progress bars", () => {
		assert.equal(progressBar(0, 0), `[${".".repeat(24)}]   0%`);
		assert.equal(progressBar(50, 100), `[${"#".repeat(12)}${".".repeat(12)}]  50%`);
		assert.equal(progressBar(100, 100), `[${"#".repeat(24)}] 100%`);
	});

	it("lists, cancels and retries import jobs as an administrator", async () => {
		const calls: { action: string; params: unknown; meta: unknown }[] = [];
		const job = { id: "j1", ownerName: "alice", source: { type: "urls" }, status: "running", total: 10, processed: 5, succeeded: 4, duplicates: 1, failed: 0, cancelled: 0, rate: 2.5, eta: 2 };
		const broker = {
			async call(action: string, params: unknown, options: { meta: unknown }) {
				calls.push({ action, params, meta: options.meta });
				return action === "imports.list" ? { items: [job], total: 1 } : { job: { ...job, status: "cancelled" } };
			}
		};
		const printed: string[] = [];
		const log = console.log;
		console.log = (text: string) => printed.push(text);
		try {
			const [command] = replCommands;
			const line = (rawCommand: string, positionals: Record<string, string> = {}) => ({ options: {}, rawCommand, ...positionals });
			await command!.action(broker as never, line("jobs"));
			await command!.action(broker as never, line("jobs cancel j1", { what: "cancel", id: "j1" }));
			await command!.action(broker as never, line("jobs retry j1", { what: "retry", id: "j1" }));
			// A stream id is a dead letter's, not an import's (and embedded mode keeps none).
			await command!.action(broker as never, line("jobs retry 1700000000000-0", { what: "retry", id: "1700000000000-0" }));
		} finally {
			console.log = log;
		}
		assert.deepEqual(calls.map(call => call.action), ["imports.list", "imports.cancel", "imports.retry"]);
		assert.ok(calls.every(call => (call.meta as { user: { role: string } }).user.role === "admin"));
		assert.match(printed[0]!, /^j1 .*running .*\[#{12}\.{12}\]  50% 5\/10 ok 4 dup 1 failed 0 2\.5\/s eta 2s$/);
		assert.match(printed[1]!, /cancelled/);
		assert.match(printed[3]!, /^Embedded mode/);
	});
});
