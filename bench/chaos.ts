/**
 * Chaos benchmark (`npm run bench:chaos`): how long a cluster takes to have every image `ready`
 * again after each fault of issue 13, and what the faults cost in lost uploads and orphan bytes.
 * Runs test/helpers/chaos.ts (the same cluster and faults as test/cluster/chaos.test.ts) with
 * larger batches: on SQLite and files, and on MongoDB (FerretDB) with GridFS when FerretDB is
 * there. Recovery is timed from the fault's start to the last image of the batch `ready`; the
 * phase without a fault, timed the same way, is the anchor each fault is compared with.
 * Prints a table and writes bench/results/chaos-latest.json.
 *
 * Environment: BENCH_IMAGES [12] photos (1600×1067, encrypted) per phase.
 */
import { runChaos, type ChaosBackend, type ChaosResult } from "../test/helpers/chaos.ts";
import { ferretDbSkipReason } from "../test/helpers/ferretdb.ts";
import { envInt, machineInfo, printTable, round, saveResults } from "./lib.ts";

const IMAGES = envInt("BENCH_IMAGES", 12, 1);
const backends: ChaosBackend[] = ferretDbSkipReason() ? ["sqlite"] : ["sqlite", "mongo"];

const results: ChaosResult[] = [];
for (const backend of backends) {
	console.log(`chaos on ${backend}: ${IMAGES} images per phase…`);
	results.push(await runChaos({ backend, imagesPerPhase: IMAGES, phaseTimeoutMs: 300_000 }));
}

const rows = results.flatMap(result => {
	const anchor = result.phases[0]!.recoveryMs;
	const orphans = result.blobs - result.referencedBlobs;
	return result.phases.map(phase => [
		result.backend,
		phase.fault,
		phase.load,
		phase.recoveryMs,
		round(phase.recoveryMs / Math.max(anchor, 1), 1),
		phase.imagesLost,
		orphans
	]);
});
printTable("Recovery after each fault (every image of the batch ready)", ["backend", "fault", "load", "recovery ms", "÷ no fault", "images lost", "orphan blobs after GC (run)"], rows);
const path = saveResults("chaos", { machine: machineInfo(), imagesPerPhase: IMAGES, results });
console.log(`saved ${path}`);
