/**
 * Operator REPL commands: the shape of a moleculer-repl custom command, the loader that collects
 * them from every repl/*.ts module (its default export: an array of commands) and fits them to
 * moleculer-repl, and what the commands share. Other features add their own repl/<name>.ts
 * module; nothing here lists them.
 *
 * Whatever the operator types, a command answers with its result, its usage or `error: <why>`,
 * never with a stack trace. moleculer-repl parses a line with commander, and logs every commander
 * error except a missing argument or an unknown option with its stack; so the loader has
 * commander accept any number of words and options (every positional a command declares must be
 * optional, `[name]`), and checks them itself before the command runs: a word or option the
 * command does not take prints its usage.
 */
import { readdirSync } from "node:fs";
import type { ServiceBroker } from "moleculer";
import type { AuthUser } from "../models/users/user.ts";
import type { ImageDoc, Page } from "../models/images/image.ts";

/** Parsed arguments handed to a command: positionals by name, flags in `options`. */
export interface ReplArgs {
	/** The options the command declares that were typed (`--status failed` → `status: "failed"`). */
	options: Record<string, unknown>;
	/** The command line as typed, after the prompt (quotes already removed). */
	rawCommand: string;
	/**
	 * Each positional the command declares, by name, when typed; a variadic one (`[query...]`)
	 * as its words joined by spaces, a word holding spaces quoted again (`"red car"`).
	 */
	[positional: string]: unknown;
}

/** A command of a repl/*.ts module. */
export interface ReplCommand {
	/** Commander syntax, every positional optional, e.g. `user [op] [username] [value]`. */
	command: string;
	/** One line for moleculer-repl's `help`. */
	description: string;
	/** The forms the command takes, one per line, e.g. `user role <username> user|admin`. */
	usage: string[];
	alias?: string[];
	/** Commander option syntax; an option with a value takes it optionally (`--status [status]`) and the command checks it. */
	options?: { option: string; description: string }[];
	/** Throws UsageError when the words typed do not make sense together. */
	action(broker: ServiceBroker, args: ReplArgs): Promise<void>;
}

/** Thrown by a command whose words do not fit: the REPL prints the reason, if any, and the usage. */
export class UsageError extends Error {}

/** The part of a commander Command the parser below uses. */
interface ParsedCommand {
	args: string[];
	parent: { rawArgs: string[] } | null;
	registeredArguments: readonly { name(): string; variadic: boolean }[];
	parseOptions(args: string[]): { operands: string[]; unknown: string[] };
	opts(): Record<string, unknown>;
	params?: ReplArgs;
}

/** What moleculer-repl takes as a custom command (`replOptions.customCommands`). */
export interface MoleculerReplCommand extends Omit<ReplCommand, "action"> {
	allowUnknownOptions: true;
	parse(this: unknown, command: ParsedCommand): void;
	action(broker: ServiceBroker, args: ReplArgs): Promise<void>;
}

/** Words or options typed that the command does not take, per parsed command line. */
const unexpectedWords = new WeakMap<ReplArgs, string[]>();

/** `red car` (typed `"red car"`, unquoted by moleculer-repl) back to one word of a query. */
function requote(word: string): string {
	return /\s/.test(word) && !word.includes('"') ? `"${word}"` : word;
}

/**
 * moleculer-repl's `parse` hook, run once commander has read the line: positionals by name (a
 * variadic one joined), the declared options, and, aside, whatever the command does not take.
 */
function parseLine(command: ParsedCommand): void {
	const { operands, unknown } = command.parseOptions(command.args);
	const args: ReplArgs = { options: { ...command.opts() }, rawCommand: command.parent?.rawArgs.slice(2).join(" ") ?? "" };
	const words = [...operands];
	for (const declared of command.registeredArguments) {
		if (words.length === 0) break;
		args[declared.name()] = declared.variadic ? words.splice(0).map(requote).join(" ") : words.shift();
	}
	unexpectedWords.set(args, [...words, ...unknown]);
	command.params = args;
}

function printUsage(command: ReplCommand, reason?: string): void {
	if (reason) console.log(reason);
	// A module written before `usage` existed still gets its syntax line.
	(command.usage ?? [command.command]).forEach((form, i) => console.log(`${i === 0 ? "usage:" : "      "} ${form}`));
}

/** The command as moleculer-repl runs it: checked words, usage on misuse, errors as one line. */
export function toMoleculerRepl(command: ReplCommand): MoleculerReplCommand {
	return {
		...command,
		allowUnknownOptions: true,
		parse: parseLine,
		async action(broker, args) {
			const unexpected = unexpectedWords.get(args) ?? [];
			if (unexpected.length > 0) return printUsage(command, `unexpected: ${unexpected.join(" ")}`);
			try {
				await command.action(broker, args);
			} catch (err) {
				if (err instanceof UsageError) return printUsage(command, err.message);
				console.log(`error: ${err instanceof Error ? err.message : String(err)}`);
			}
		}
	};
}

const REPL_DIR = new URL("../repl/", import.meta.url);

/** Every command of every repl/*.ts module, in file name order, ready for moleculer-repl. */
export async function loadReplCommands(dir: URL = REPL_DIR): Promise<MoleculerReplCommand[]> {
	const files = readdirSync(dir).filter(file => file.endsWith(".ts")).sort();
	const commands: MoleculerReplCommand[] = [];
	for (const file of files) {
		const module = (await import(new URL(file, dir).href)) as { default?: unknown };
		if (!Array.isArray(module.default)) throw new Error(`repl/${file} must export default an array of REPL commands`);
		commands.push(...(module.default as ReplCommand[]).map(toMoleculerRepl));
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
