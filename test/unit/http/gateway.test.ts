import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { setSecurityHeaders } from "../../../models/http/gateway.ts";

function headersFor(requestHeaders: Record<string, string>, trustProxy: boolean): Record<string, string> {
	const set: Record<string, string> = {};
	const res = { setHeader: (name: string, value: string) => void (set[name.toLowerCase()] = value) } as unknown as ServerResponse;
	setSecurityHeaders({ headers: requestHeaders } as IncomingMessage, res, trustProxy);
	return set;
}

describe("setSecurityHeaders", () => {
	it("sends HSTS only when a trusted proxy forwarded an HTTPS request", () => {
		assert.match(headersFor({ "x-forwarded-proto": "https" }, true)["strict-transport-security"]!, /max-age=/);
		assert.match(headersFor({ "x-forwarded-proto": "http, https" }, true)["strict-transport-security"]!, /max-age=/);
		// Without a trusted proxy the header is the client's word.
		assert.equal(headersFor({ "x-forwarded-proto": "https" }, false)["strict-transport-security"], undefined);
		assert.equal(headersFor({ "x-forwarded-proto": "http" }, true)["strict-transport-security"], undefined);
		assert.equal(headersFor({}, true)["strict-transport-security"], undefined);
	});

	it("always forbids sniffing and framing", () => {
		const headers = headersFor({}, false);
		assert.equal(headers["x-content-type-options"], "nosniff");
		assert.equal(headers["x-frame-options"], "DENY");
		assert.match(headers["content-security-policy"]!, /frame-ancestors 'none'/);
	});
});
