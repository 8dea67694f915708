/**
 * The operator REPL driven through its real command parser, in this process: moleculer-repl
 * started on a broker exactly as `npm run repl` starts it (same custom commands, same parser:
 * commander as moleculer-repl configures it, string-argv tokenizing), its node:repl server on
 * in-memory streams instead of the terminal. `exec` types one command line and returns what the
 * operator would have seen once the prompt is back: console output (tables rendered, rows kept),
 * commander's messages, and whatever moleculer-repl logs (a stack trace included).
 *
 * moleculer-repl keeps one command parser per process: open one session per test file.
 */
import { mkdtempSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { mock } from "node:test";
import { format } from "node:util";
import type { ServiceBroker } from "moleculer";
import { loadReplCommands } from "../../cluster/repl-commands.ts";

const require = createRequire(import.meta.url);

export interface ReplOutput {
	/** Everything printed, in order, as the terminal would show it (tables rendered). */
	text: string;
	/** The rows of each console.table, in order. */
	tables: Record<string, unknown>[][];
}

export interface ReplSession {
	/** Types `line` at the prompt and waits for the prompt to come back. */
	exec(line: string): Promise<ReplOutput>;
	close(): void;
}

interface CommanderCommand {
	parent: CommanderCommand | null;
	commands: CommanderCommand[];
	configureOutput(config: { writeOut(str: string): void; writeErr(str: string): void }): void;
}

interface ReplServer {
	removeAllListeners(event: string): void;
	close(): void;
}

/** Opens moleculer-repl on `broker` with imgmesh's commands (what repl.ts passes as replOptions). */
export async function openRepl(broker: ServiceBroker, delimiter = "imgmesh test $"): Promise<ReplSession> {
	const replPath = require.resolve("moleculer-repl");
	const REPL = require(replPath) as (broker: ServiceBroker, opts: object) => ReplServer;
	// moleculer-repl's own commander and node:repl, the instances it calls.
	const fromRepl = createRequire(replPath);
	const commander = fromRepl("commander") as { Command: { prototype: { command(...args: unknown[]): unknown } } };
	const nodeRepl = fromRepl("node:repl") as { start(options: object): ReplServer };

	const input = new PassThrough();
	const output = new PassThrough();
	let screen = "";
	let onPrompt: (() => void) | undefined;
	const prompt = delimiter.endsWith(" ") ? delimiter : `${delimiter} `;
	output.setEncoding("utf8");
	output.on("data", (chunk: string) => {
		screen += chunk;
		if (screen.endsWith(prompt)) onPrompt?.();
	});
	const promptBack = () => new Promise<void>(resolve => (onPrompt = resolve));

	// The parser moleculer-repl registers its commands on (it keeps it to itself).
	let program: CommanderCommand | undefined;
	const originalCommand = commander.Command.prototype.command;
	const catchProgram = mock.method(commander.Command.prototype, "command", function (this: CommanderCommand, ...args: unknown[]) {
		if (!this.parent) program ??= this;
		return originalCommand.apply(this, args);
	});
	const originalStart = nodeRepl.start.bind(nodeRepl);
	const onStreams = mock.method(nodeRepl, "start", (options: object) => originalStart({ ...options, input, output, terminal: false }));
	// Its history file goes to $HOME: a scratch one.
	const home = process.env.HOME;
	process.env.HOME = mkdtempSync(join(tmpdir(), "imgmesh-repl-home-"));
	let server: ReplServer;
	const started = promptBack();
	try {
		server = REPL(broker, { delimiter, customCommands: await loadReplCommands() });
	} finally {
		process.env.HOME = home;
		onStreams.mock.restore();
		catchProgram.mock.restore();
	}
	await started;
	if (!program) throw new Error("moleculer-repl registered no command");

	let printed = "";
	const write = (str: string) => void (printed += str);
	for (const command of [program, ...program.commands]) command.configureOutput({ writeOut: write, writeErr: write });

	return {
		async exec(line: string): Promise<ReplOutput> {
			printed = "";
			const tables: Record<string, unknown>[][] = [];
			const print = (...args: unknown[]) => write(`${format(...args)}\n`);
			const originalTable = console.table.bind(console);
			const mocks = [
				mock.method(console, "log", print),
				mock.method(console, "info", print),
				mock.method(console, "warn", print),
				mock.method(console, "error", print),
				// Renders through console.log (mocked above), as the terminal would show it.
				mock.method(console, "table", (rows: Record<string, unknown>[], columns?: string[]) => {
					tables.push(rows);
					originalTable(rows, columns);
				})
			];
			try {
				const done = promptBack();
				input.write(`${line}\n`);
				await done;
			} finally {
				for (const m of mocks) m.mock.restore();
			}
			return { text: printed, tables };
		},
		close() {
			// moleculer-repl stops the broker and exits the process when its REPL closes.
			server.removeAllListeners("exit");
			server.close();
		}
	};
}

/** True when `text` holds a stack trace ("    at fn (file:line:col)"). */
export function hasStackTrace(text: string): boolean {
	return /^\s+at .+[:(]/m.test(text);
}
