/**
 * Operator REPL (`npm run repl`): joins the cluster of TRANSPORTER and NAMESPACE as a node with
 * NO services and opens moleculer-repl with imgmesh's commands (every repl/*.ts module) next to
 * moleculer-repl's own (`nodes`, `services`, `call`, `metrics`, …). Leaving it (`exit`, Ctrl+D)
 * stops this node only; the cluster does not notice beyond one node leaving.
 */
import { ServiceBroker, type BrokerOptions } from "moleculer";
import { loadReplCommands } from "./cluster/repl-commands.ts";
import { stopOnSignals } from "./cluster/signals.ts";
import { getConfig } from "./config/index.ts";
import { brokerOptions } from "./moleculer.config.ts";

type ReplCustomCommands = NonNullable<NonNullable<BrokerOptions["replOptions"]>["customCommands"]>;

async function main(): Promise<void> {
	const config = getConfig();
	if (!config.transporter) throw new Error("TRANSPORTER is not set: the REPL joins a running cluster (e.g. TRANSPORTER=redis://127.0.0.1:6379)");
	const broker = new ServiceBroker({
		// The level is the logger's: moleculer.config.ts sets it there, where a `logLevel` broker
		// option does not reach.
		...brokerOptions({ ...config, nodeId: config.nodeId ?? `repl-${process.pid}`, logLevel: config.replLogLevel }),
		// Moleculer's typings give `action` string[] args; moleculer-repl really passes the parsed object.
		replOptions: { delimiter: `imgmesh ${config.namespace} $`, customCommands: (await loadReplCommands()) as unknown as ReplCustomCommands }
	});
	stopOnSignals(broker);
	await broker.start();
	broker.repl();
}

main().catch(err => {
	console.error(err instanceof Error ? err.message : err);
	process.exit(1);
});
