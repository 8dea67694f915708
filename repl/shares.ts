/**
 * REPL `share show|revoke <url or token>`: a share link as an abuse report names it (its URL, a
 * path under it, or the bare token), looked up by the token's hash like any visit, and revoked on
 * the spot whoever made it (docs/sharing.md). The shares service's internal actions do the work.
 */
import type { ServiceBroker } from "moleculer";
import { UsageError, type ReplArgs, type ReplCommand } from "../cluster/repl-commands.ts";
import type { OwnerShare } from "../models/shares/share-types.ts";

const USAGE = ["share show <url or token>", "share revoke <url or token>"];

/** The token in a link's URL (`…/s/<token>[/…][?…]`), or the word itself. */
function tokenOf(link: string): string {
	return /\/s\/([^/?#]+)/.exec(link)?.[1] ?? link;
}

function target(share: OwnerShare): string {
	return share.kind === "image" ? `image ${share.imageId}` : `album ${share.albumId}`;
}

async function run(broker: ServiceBroker, args: ReplArgs): Promise<void> {
	const { op, link } = args as ReplArgs & { op?: string; link?: string };
	if (!link) throw new UsageError();
	const token = tokenOf(link);
	switch (op) {
		case "show": {
			const share = await broker.call<OwnerShare, { token: string }>("shares.byToken", { token });
			console.table([{ id: share.id, owner: share.owner, target: target(share), expiresAt: share.expiresAt ?? "never", expired: share.expired, password: share.hasPassword, download: share.allowDownload, metadata: share.showMetadata, createdAt: share.createdAt }]);
			return;
		}
		case "revoke": {
			const share = await broker.call<OwnerShare, { token: string }>("shares.revokeByToken", { token });
			console.log(`revoked share link ${share.id} of ${share.owner} (${target(share)}): its URL answers 404 from now on`);
			return;
		}
	}
	throw new UsageError();
}

const commands: ReplCommand[] = [
	{
		command: "share [op] [link]",
		description: "Share links by URL or token: show who made one and what it opens, revoke it",
		usage: USAGE,
		action: run
	}
];

export default commands;
