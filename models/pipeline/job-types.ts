/**
 * What the job views answer (cluster/job-streams.ts, over REST by services/jobs.service.ts): pure
 * types, so the web app's Jobs page imports them as they are.
 */

export interface QueueRow {
	channel: string;
	group: string | null;
	/** Entries in the stream (acknowledged ones included, until trimmed). */
	length: number;
	/** Delivered to a consumer and not yet acknowledged. */
	pending: number;
	/**
	 * Consumers Redis knows in the group. Not who is waiting for jobs: Redis (7.0) registers a
	 * consumer at the first entry it is handed, not when it starts reading, and keeps a crashed
	 * node's consumer; the REPL's `queue` counts the live nodes of the group's service instead.
	 */
	consumers: number;
	/** Entries not yet delivered to the group; null when Redis cannot tell (after deletions). */
	lag: number | null;
	/** Dead letters that came from this channel. */
	dead: number;
}

export interface DeadLetter {
	/** Id of the entry in the dead-letter stream (what `jobs retry` takes). */
	id: string;
	channel: string;
	group: string;
	payload: unknown;
	error: string | null;
	attempts: number | null;
}

/** A channel's figures with the live nodes reading it (the REPL's `workers` column), as GET /api/admin/jobs lists them. */
export type ChannelView = QueueRow & { workers: number };
