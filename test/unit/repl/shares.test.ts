/**
 * The operator REPL's `share` command through moleculer-repl's real parser (a process of its own:
 * one REPL per process), on an in-process broker whose shares service stands in for the real one:
 * a link looked up or revoked by its URL or token, as an abuse report names it.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { Errors, ServiceBroker, type Context } from "moleculer";
import { hasStackTrace, openRepl, type ReplSession } from "../../helpers/repl.ts";

const TOKEN = "Q2hhbmdlIG1lIHBsZWFzZSBjaGFuZ2UgbWUgcGxlYXNlIQ";
const LINK = {
	id: "share-1",
	owner: "u-alice",
	kind: "image",
	imageId: "img-1",
	albumId: null,
	expiresAt: null,
	expired: false,
	hasPassword: true,
	allowDownload: true,
	showMetadata: false,
	createdAt: "2026-01-01T00:00:00.000Z",
	updatedAt: "2026-01-01T00:00:00.000Z"
};

describe("REPL share", () => {
	const broker = new ServiceBroker({ nodeID: "unit-repl-shares", transporter: null, logLevel: "warn" });
	let calls: [string, Record<string, unknown>][] = [];
	let repl: ReplSession;
	const answer = (name: string) => (ctx: Context<Record<string, unknown>>) => {
		calls.push([name, ctx.params]);
		if (ctx.params.token !== TOKEN) throw new Errors.MoleculerClientError("Share link not found", 404, "NOT_FOUND");
		return LINK;
	};

	before(async () => {
		broker.createService({ name: "shares", actions: { byToken: answer("shares.byToken"), revokeByToken: answer("shares.revokeByToken") } });
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

	async function type(line: string): Promise<string> {
		const out = await repl.exec(line);
		assert.equal(hasStackTrace(out.text), false, `${line}: printed a stack trace:\n${out.text}`);
		return out.text;
	}

	it("shows a link named by its URL, its path or its bare token", async () => {
		for (const link of [`https://photos.example/s/${TOKEN}`, `/s/${TOKEN}/images/img-1/content?access=x`, TOKEN]) {
			const text = await type(`share show ${link}`);
			assert.match(text, /share-1/);
			assert.match(text, /u-alice/);
			assert.match(text, /img-1/);
		}
		assert.deepEqual(calls, Array.from({ length: 3 }, () => ["shares.byToken", { token: TOKEN }]));
	});

	it("revokes a link: its URL answers 404 from then on", async () => {
		assert.match(await type(`share revoke /s/${TOKEN}`), /revoked share link share-1 of u-alice \(image img-1\)/);
		assert.deepEqual(calls, [["shares.revokeByToken", { token: TOKEN }]]);
	});

	it("says an unknown link is not found, and prints the usage for anything else", async () => {
		assert.match(await type("share revoke /s/nope"), /error: Share link not found/);
		for (const line of ["share", "share show", "share burn /s/x", "share revoke /s/x extra"]) assert.match(await type(line), /^usage: share show <url or token>$/m, line);
	});
});
