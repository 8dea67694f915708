/**
 * A Drive job's API key from the request, as stored with the job: sealed under the storage master
 * key (models/storage/envelope-crypto.ts) and bound to the job id, so the database alone (a copy,
 * a backup, another local user) never yields the key. Repositories drop it when the job ends
 * (SOURCE_SECRETS).
 */
import { type Keyring, openSecret, sealSecret } from "../storage/envelope-crypto.ts";
import type { ImportJob } from "./import-types.ts";

export function sealApiKey(jobId: string, apiKey: string, keyring: Keyring): string {
	return sealSecret(apiKey, `import-job:${jobId}`, keyring);
}

/** The key the request gave the job, while the job still has it; undefined otherwise. */
export function apiKeyOf(job: ImportJob, keyring: Keyring): string | undefined {
	if (job.source.type !== "google-drive") return undefined;
	if (job.source.sealedApiKey) return openSecret(job.source.sealedApiKey, `import-job:${job.id}`, keyring);
	// Stored in clear by an older version; dropped like the sealed one when the job ends.
	return job.source.apiKey;
}
