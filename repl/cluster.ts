/**
 * REPL `cluster`: every node of the namespace, what it runs and how loaded it is.
 *
 * Up or down is this REPL node's registry, brought up to date first: Moleculer expires a node
 * whose heartbeat is older than HEARTBEAT_TIMEOUT only when its periodic check runs, and that
 * check runs every HEARTBEAT_TIMEOUT, so a node killed with `kill -9` stayed "up" here for up to
 * twice the timeout while the gateway, whose check came earlier, had stopped routing to it.
 * Running the check before listing applies the same rule at once.
 */
import type { ServiceBroker } from "moleculer";
import type { ReplArgs, ReplCommand } from "../cluster/repl-commands.ts";

interface NodeInfo {
	id: string;
	local: boolean;
	available: boolean;
	hostname?: string;
	cpu?: number | null;
	lastHeartbeatTime?: number;
	metadata?: { imgmesh?: string };
	client?: { version?: string };
	services: { name: string }[];
}

function nodeRow(node: NodeInfo, uptime: number) {
	return {
		node: node.id + (node.local ? " (this REPL)" : ""),
		status: node.available ? "up" : "DOWN",
		services: node.services.map(service => service.name).filter(name => !name.startsWith("$")).sort().join(",") || "-",
		imgmesh: node.metadata?.imgmesh ?? "?",
		moleculer: node.client?.version ?? "?",
		"cpu %": node.cpu ?? "-",
		host: node.hostname ?? "?",
		// Moleculer stamps heartbeats with this process's uptime in whole seconds.
		"heartbeat s ago": node.local || !node.lastHeartbeatTime ? "-" : Math.max(0, uptime - node.lastHeartbeatTime)
	};
}

/** Nodes hosting each service: a service on no live node cannot be called. */
function serviceRows(nodes: NodeInfo[]) {
	const byService = new Map<string, string[]>();
	for (const node of nodes.filter(n => n.available)) {
		for (const { name } of node.services) {
			if (!name.startsWith("$")) byService.set(name, [...(byService.get(name) ?? []), node.id]);
		}
	}
	return [...byService].sort(([a], [b]) => a.localeCompare(b)).map(([service, on]) => ({ service, nodes: on.length, on: on.join(",") }));
}

const commands: ReplCommand[] = [
	{
		command: "cluster",
		description: "Nodes of this namespace: status, services, versions, CPU load; then which nodes serve each service",
		usage: ["cluster [--all]"],
		options: [{ option: "-a, --all", description: "include nodes that went away" }],
		async action(broker: ServiceBroker, args: ReplArgs) {
			// Expires now every node whose last heartbeat is overdue (a no-op without a transporter).
			(broker.registry.discoverer as { checkRemoteNodes?: () => void } | undefined)?.checkRemoteNodes?.();
			const nodes = broker.registry.getNodeList({ onlyAvailable: !args.options.all, withServices: true }) as unknown as NodeInfo[];
			const uptime = Math.round(process.uptime());
			console.log(`namespace '${broker.namespace}', ${nodes.filter(node => node.available).length} node(s) up`);
			console.table(nodes.sort((a, b) => a.id.localeCompare(b.id)).map(node => nodeRow(node, uptime)));
			console.table(serviceRows(nodes));
		}
	}
];

export default commands;
