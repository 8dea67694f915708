/** REPL `storage rotate-keys`: re-wraps every encrypted image's data key after a master key change. */
import type { ServiceBroker } from "moleculer";
import { UsageError, type ReplArgs, type ReplCommand } from "../cluster/repl-commands.ts";

interface RotateReport {
	rewrapped: number;
	failed: { key: string; error: string }[];
}

const commands: ReplCommand[] = [
	{
		command: "storage [op]",
		description: "storage rotate-keys: after STORAGE_MASTER_KEY changed (old key in STORAGE_OLD_MASTER_KEYS), re-wrap every data key",
		usage: ["storage rotate-keys"],
		async action(broker: ServiceBroker, args: ReplArgs) {
			if (args.op !== "rotate-keys") throw new UsageError();
			const report = await broker.call<RotateReport, object>("storage.rotateKeys", {}, { timeout: 0 });
			console.log(`re-wrapped ${report.rewrapped} data key(s); ${report.failed.length} failed`);
			if (report.failed.length) console.table(report.failed);
		}
	}
];

export default commands;
