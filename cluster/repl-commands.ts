/**
 * Operator REPL commands: the shape of a moleculer-repl custom command, the loader that collects
 * them from every repl/*.ts module (its default export: an array of commands), and what the
 * commands share. Other features add their own repl/<name>.ts module; nothing here lists them.
 */
import { readdirSync } from "node:fs";
import type { ServiceBroker } from "moleculer";
import type { AuthUser } from "../models/users/user.ts";
import type { ImageDoc, Page } from "../models/images/image.ts";

/** Parsed arguments moleculer-repl hands to a command: positionals by name, flags in `options`. */
export interface ReplArgs {
	options: Record<string, unknown>;
	/** The command line as typed, after the prompt (quotes already removed). */
	rawCommand: string;
	[positional: string]: unknown;
}

/** A moleculer-repl custom command (`replOptions.customCommands`). */
export interface ReplCommand {
	/** Commander syntax, e.g. `user <op> <username> [value]`. */
	command: string;
	description: string;
	alias?: string[];
	options?: { option: string; description: string }[];
	action(broker: ServiceBroker, args: ReplArgs): Promise<void>;
}

const REPL_DIR = new URL("../repl/", import.meta.url);

/** Every command of every repl/*.ts module, in file name order. */
export async function loadReplCommands(dir: URL = REPL_DIR): Promise<ReplCommand[]> {
	const files = readdirSync(dir).filter(file => file.endsWith(".ts")).sort();
	const commands: ReplCommand[] = [];
	for (const file of files) {
		const module = (await import(new URL(file, dir).href)) as { default?: unknown };
		if (!Array.isArray(module.default)) throw new Error(`repl/${file} must export default an array of REPL commands`);
		commands.push(...(module.default as ReplCommand[]));
	}
	return commands;
}

/**
 * Who the REPL acts as when it calls actions that check the caller: an administrator. Whoever
 * runs the REPL already holds the cluster's Redis, which is full control anyway.
 */
export const OPERATOR: AuthUser = { id: "operator", username: "operator", role: "admin" };

/** Call options for actions that read `ctx.meta.user`. */
export const asOperator = { meta: { user: OPERATOR } };

/** The words after the first `skip` words of the command line, e.g. the query of `images find …`. */
export function restOf(args: ReplArgs, skip: number): string {
	return args.rawCommand.trim().split(/\s+/).slice(skip).join(" ");
}

const IMAGE_PAGE = 100;

/**
 * Every image a search finds (the query syntax of GET /api/images?q=; every image when empty),
 * oldest first, page by page, as the operator; `onTotal` hears the match count with each page.
 */
export async function* imagesMatching(broker: ServiceBroker, query: string | undefined, onTotal?: (total: number) => void): AsyncGenerator<ImageDoc> {
	let cursor: string | undefined;
	do {
		const params = { sort: "createdAt", limit: IMAGE_PAGE, ...(query ? { q: query } : {}), ...(cursor ? { cursor } : {}) };
		const page = await broker.call<Page<ImageDoc>, object>("images.list", params, asOperator);
		onTotal?.(page.total);
		yield* page.items;
		cursor = page.nextCursor ?? undefined;
	} while (cursor);
}
