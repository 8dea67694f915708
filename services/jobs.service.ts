/**
 * The job channels for administrators, over REST (the web app's job page): every channel's
 * figures, the dead letters with their errors, and retrying or discarding one. The views and
 * rules are the REPL's (`queue`, `jobs dead`, `jobs retry`): cluster/job-streams.ts holds them
 * for both. Reprocessing failed images is the images service's (POST /admin/images/reprocess-failed).
 *
 * Embedded mode has no streams (its queue is in process and keeps no dead letters): the answers
 * say `mode: "embedded"` with no channels and no dead letters, and a dead letter is never found.
 */
import type { Context, ServiceSchema } from "moleculer";
import { liveNodesByService, retryDeadLetter, withJobQueue, type JobQueue } from "../cluster/job-streams.ts";
import type { ChannelView, DeadLetter } from "../models/pipeline/job-types.ts";
import { NotFoundError } from "../models/shared/errors.ts";

/** A dead letter's id is its Redis stream entry id, `<milliseconds>-<sequence>`. */
const DEAD_LETTER_ID = { type: "string", pattern: /^\d{1,20}-\d{1,20}$/ };
const DEAD_LETTERS_SHOWN = 100;

type Mode = "embedded" | "distributed";

/** `work` on the job streams, or null in embedded mode; the mode beside the answer. */
async function onStreams<T>(ctx: Context, work: (queue: JobQueue) => Promise<T>): Promise<{ mode: Mode; result: T | null }> {
	const result = await withJobQueue(ctx.broker, work);
	return { mode: result === null ? "embedded" : "distributed", result };
}

const jobs: ServiceSchema = {
	name: "jobs",
	settings: { rest: "/admin/jobs" },

	actions: {
		overview: {
			rest: "GET /",
			auth: "admin",
			params: { $$strict: true },
			async handler(ctx: Context) {
				const { mode, result } = await onStreams(ctx, async queue => ({ rows: await queue.stats(), dead: await queue.deadLetterCount() }));
				const workers = liveNodesByService(this.broker);
				const channels: ChannelView[] = (result?.rows ?? []).map(row => ({ ...row, workers: row.group === null ? 0 : (workers.get(row.group)?.length ?? 0) }));
				return { mode, channels, deadLetters: result?.dead ?? 0 };
			}
		},

		deadLetters: {
			rest: "GET /dead",
			auth: "admin",
			params: { $$strict: true, limit: { type: "number", integer: true, min: 1, max: 1000, convert: true, optional: true } },
			async handler(ctx: Context<{ limit?: number }>) {
				const limit = ctx.params.limit ?? DEAD_LETTERS_SHOWN;
				const { mode, result } = await onStreams(ctx, async queue => ({ total: await queue.deadLetterCount(), items: await queue.deadLetters(limit) }));
				return { mode, total: result?.total ?? 0, items: result?.items ?? [] };
			}
		},

		retryDeadLetter: {
			rest: "POST /dead/:id/retry",
			auth: "admin",
			params: { $$strict: true, id: DEAD_LETTER_ID },
			async handler(ctx: Context<{ id: string }>): Promise<{ retried: DeadLetter }> {
				const { result } = await onStreams(ctx, queue => retryDeadLetter(ctx.broker, queue, ctx.params.id));
				if (!result) throw new NotFoundError("Dead letter", ctx.params.id);
				return { retried: result };
			}
		},

		discardDeadLetter: {
			rest: "DELETE /dead/:id",
			auth: "admin",
			params: { $$strict: true, id: DEAD_LETTER_ID },
			async handler(ctx: Context<{ id: string }, { $statusCode?: number }>) {
				const { result } = await onStreams(ctx, queue => queue.dropDeadLetter(ctx.params.id));
				if (!result) throw new NotFoundError("Dead letter", ctx.params.id);
				ctx.meta.$statusCode = 204;
				return null;
			}
		}
	}
};

export default jobs;
