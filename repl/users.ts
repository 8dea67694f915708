/**
 * REPL `user add|role|disable|enable|list`: account management through the users service's
 * internal actions (never exposed over REST). A new account gets a random password, printed once
 * for the operator to hand over; the user changes it with PATCH /api/auth/me.
 */
import type { ServiceBroker } from "moleculer";
import { randomBytes } from "node:crypto";
import type { ReplArgs, ReplCommand } from "../cluster/repl-commands.ts";
import type { PublicUser } from "../models/users/user.ts";

const USAGE = "user add <username> [--admin] | user role <username> user|admin | user disable <username> | user enable <username> | user list";

async function run(broker: ServiceBroker, args: ReplArgs): Promise<void> {
	const username = args.username as string | undefined;
	switch (args.op) {
		case "list": {
			const { items } = await broker.call<{ items: PublicUser[] }>("users.list");
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
			const role = args.value;
			if (!username || (role !== "user" && role !== "admin")) break;
			const user = await broker.call<PublicUser, object>("users.updateByName", { username, role });
			console.log(`'${user.username}' is now ${user.role}`);
			return;
		}
		case "disable":
		case "enable": {
			if (!username) break;
			const user = await broker.call<PublicUser, object>("users.updateByName", { username, disabled: args.op === "disable" });
			console.log(`'${user.username}' is ${user.disabled ? "disabled: its tokens stop working now" : "enabled"}`);
			return;
		}
	}
	console.log(`usage: ${USAGE}`);
}

const commands: ReplCommand[] = [
	{
		command: "user <op> [username] [value]",
		description: USAGE,
		options: [{ option: "--admin", description: "user add: make the account an administrator" }],
		action: run
	}
];

export default commands;
