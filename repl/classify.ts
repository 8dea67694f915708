/**
 * Automatic tagging from the operator REPL (`images retag`, a sub-command of repl/images.ts):
 *
 *   images retag <search query>   classify the matching images again (same syntax as ?q=)
 *   images retag --all            classify every image again
 *
 * Images are tagged through `classifier.tag`, a few at a time (any classifier node takes
 * them), with a progress line; an image that fails is reported and the rest go on.
 */
import type { ServiceBroker } from "moleculer";
import { imagesMatching } from "../cluster/repl-commands.ts";

const CONCURRENCY = 4;

export interface RetagReport {
	total: number;
	tagged: number;
	failed: { id: string; error: string }[];
}

/** Retags the images matching `query` (all when undefined); `progress` is told after each one. */
export async function retag(broker: ServiceBroker, query: string | undefined, progress: (report: RetagReport) => void): Promise<RetagReport> {
	const report: RetagReport = { total: 0, tagged: 0, failed: [] };
	const images = imagesMatching(broker, query, total => (report.total = total));
	const worker = async () => {
		// Workers share the generator: each image is taken once.
		for await (const image of images) {
			try {
				const labels = await broker.call("classifier.tag", { id: image.id });
				if (labels) report.tagged++;
				else report.failed.push({ id: image.id, error: "not tagged: deleted meanwhile, or the classifier could not (see its log)" });
			} catch (err) {
				report.failed.push({ id: image.id, error: (err as Error).message });
			}
			progress(report);
		}
	};
	await Promise.all(Array.from({ length: CONCURRENCY }, worker));
	return report;
}

/** Its command is `images retag` of repl/images.ts: one REPL command per name (moleculer-repl skips a second). */
export default [];
