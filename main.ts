/**
 * Starts one imgmesh node: the broker from moleculer.config.ts and the services named in
 * SERVICES (all of services/*.service.ts when unset). Stops gracefully on SIGINT/SIGTERM.
 */
import { readdirSync } from "node:fs";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { stopOnSignals } from "./cluster/signals.ts";
import { getConfig } from "./config/index.ts";
import options from "./moleculer.config.ts";

const SERVICE_DIR = new URL("./services/", import.meta.url);
const SERVICE_SUFFIX = ".service.ts";

function serviceNames(wanted: string[]): string[] {
	const available = readdirSync(SERVICE_DIR)
		.filter(file => file.endsWith(SERVICE_SUFFIX))
		.map(file => file.slice(0, -SERVICE_SUFFIX.length));
	const unknown = wanted.filter(name => !available.includes(name));
	if (unknown.length) throw new Error(`SERVICES names unknown services: ${unknown.join(", ")} (available: ${available.join(", ")})`);
	return wanted.length ? wanted : available;
}

async function main(): Promise<void> {
	const broker = new ServiceBroker(options);
	for (const name of serviceNames(getConfig().services)) {
		const module = (await import(new URL(name + SERVICE_SUFFIX, SERVICE_DIR).href)) as { default: ServiceSchema };
		broker.createService(module.default);
	}
	stopOnSignals(broker);
	await broker.start();
}

main().catch(err => {
	console.error(err instanceof Error ? err.message : err);
	process.exit(1);
});
