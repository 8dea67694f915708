/**
 * REPL `user add|role|disable|enable|list`: account management through the users service's
 * internal actions (never exposed over REST). A new account gets a random password, printed once
 * for the operator to hand over; the user changes it with PATCH /api/auth/me.
 */
import type { ServiceBroker } from "moleculer";
import { randomBytes } from "node:crypto";
import { UsageError, type ReplArgs, type ReplCommand } from "../cluster/repl-commands.ts";
import type { PublicUser } from "../models/users/user.ts";

const USAGE = ["user add <username> [--admin]", "user role <username> user|admin", "user disable <username>", "user enable <username>", "user list"];

async function run(broker: ServiceBroker, args: ReplArgs): Promise<void> {
	const { op, username, value } = args as ReplArgs & { op?: string; username?: string; value?: string };
	if (args.options.admin && op !== "add") throw new UsageError("--admin is for user add");
	// Every form but `role` takes one word after the operation at most, and `list` none.
	if ((op !== "role" && value !== undefined) || (op === "list" && username !== undefined)) throw new UsageError();
	switch (op) {
		case "list": {
			const { items } = await broker.call<{ items: PublicUser[] }>("users.list");
			if (items.length === 0) return console.log("No accounts.");
			console.table(items.map(({ id, username, name, role, disabled, createdAt }) => ({ id, username, name, role, disabled, createdAt })));
			return;
		}
		case "add": {
			if (!username) break;
			const password = randomBytes(12).toString("base64url");
			const user = await broker.call<PublicUser, object>("users.create", { username, password, role: args.options.admin ? "admin" : "user" });
			console.log(`created ${user.role} '${user.username}' (${user.id}); initial password, shown once: ${password}`);
			return;
		}
		case "role": {
			if (!username || (value !== "user" && value !== "admin")) break;
			const user = await broker.call<PublicUser, object>("users.updateByName", { username, role: value });
			console.log(`'${user.username}' is now ${user.role}`);
			return;
		}
		case "disable":
		case "enable": {
			if (!username) break;
			const user = await broker.call<PublicUser, object>("users.updateByName", { username, disabled: op === "disable" });
			console.log(`'${user.username}' is ${user.disabled ? "disabled: its tokens stop working now" : "enabled"}`);
			return;
		}
	}
	throw new UsageError();
}

const commands: ReplCommand[] = [
	{
		command: "user [op] [username] [value]",
		description: "Accounts: add (random password, shown once), role, disable, enable, list",
		usage: USAGE,
		options: [{ option: "--admin", description: "user add: make the account an administrator" }],
		action: run
	}
];

export default commands;
