/**
 * Names shared by the producers and consumers of the ingest pipeline's durable jobs.
 *
 * imgmesh.process (worker: metadata + renditions) → imgmesh.classify (classifier, when
 * CLASSIFIER_MODEL is set) → the image is `ready`. Every message is `{ id }` of an image: the
 * image document says how far the pipeline got, so a message may arrive twice, or again after a
 * crash, and each step redoes only what is missing.
 */
export const CHANNELS = {
	process: "imgmesh.process",
	classify: "imgmesh.classify",
	/** POST /images/:id/compress: `{ id, spec }`, rendered by the transform service. */
	compress: "imgmesh.compress"
} as const;

/** Bulk imports: `{ jobId, list: true }` lists a job, `{ jobId, items }` runs some of its items. */
export const IMPORT_CHANNEL = "imgmesh.import";

/** Where a job goes after JOB_MAX_ATTEMPTS failed deliveries (one stream for every channel). */
export const DEAD_LETTER_CHANNEL = "imgmesh.dead";

/** The storage reference a rendition's blob is held by: released when the image is deleted or reprocessed. */
export function renditionRef(imageId: string, name: string): string {
	return `${imageId}:${name}`;
}

/**
 * The image, and the rendition if any, that a storage reference of the images service stands for
 * (the original's is the image id, a rendition's is renditionRef); null for any other reference.
 */
export function imageRefParts(ref: string): { imageId: string; rendition: string | null } | null {
	const match = /^(?<imageId>[\w-]{1,64})(?::(?<rendition>[^:]{1,32}))?$/.exec(ref);
	return match ? { imageId: match.groups!.imageId!, rendition: match.groups!.rendition ?? null } : null;
}

/** What the channels adapter passes beside the payload (cluster/channels.ts); absent fields on the in-process queue. */
export interface Delivery {
	/** 1 for the first delivery. */
	attempt?: number;
	maxAttempts?: number;
	/**
	 * Earlier deliveries never finished (their worker died each time) and the attempts are used
	 * up: the handler must not redo the work, only record the failure.
	 */
	exhausted?: boolean;
	/**
	 * Aborted when the node stopped and its grace ran out: the job was handed back to another
	 * worker, so the handler should stop at its next step and record nothing (absent on the
	 * in-process queue).
	 */
	signal?: AbortSignal;
}

/** True when a failure of this delivery is final: no attempts left, or a queue without retries. */
export function isLastAttempt(delivery: Delivery | undefined): boolean {
	if (delivery?.attempt === undefined || delivery.maxAttempts === undefined) return true;
	return delivery.attempt >= delivery.maxAttempts;
}
