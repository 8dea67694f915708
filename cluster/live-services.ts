/** Which services have a live node now, as this node's registry sees the cluster. */
import type { ServiceBroker } from "moleculer";

/** Names of the services with at least one available node, sorted, each once. */
export function liveServiceNames(broker: ServiceBroker): string[] {
	return [...new Set(broker.registry.getServiceList({ onlyAvailable: true }).map(service => service.name))].sort();
}
