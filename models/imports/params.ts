/** Validator fragments and parameter shapes of the imports actions. */
import type { Visibility } from "../images/image-types.ts";
import { Errors } from "moleculer";
import { TAGS, VISIBILITY } from "../images/params.ts";
import { yieldToEventLoop } from "../shared/event-loop.ts";

/** The most URLs one import takes (a list of this size is about 15 MB of JSON). */
export const MAX_URLS = 100_000;

/** What every imported image of a job gets, as for an upload. */
export const OPTIONS = {
	category: { type: "string", max: 64, optional: true },
	tags: TAGS,
	visibility: VISIBILITY,
	encrypted: { type: "boolean", optional: true }
};
export const URL_PARAM = { type: "string", min: 1, max: 4096 };

/** URLs checked between two turns of the event loop. */
const URLS_PER_SLICE = 10_000;

/**
 * Checks every URL of a list as URL_PARAM would, in slices with a turn of the event loop between
 * them: fastest-validator took hundreds of ms for 100,000 items in one go. The error is the one the
 * validator gives (a ValidationError, answered 400) for the first bad item.
 */
export async function checkUrls(urls: unknown[]): Promise<void> {
	for (let start = 0; start < urls.length; start += URLS_PER_SLICE) {
		if (start > 0) await yieldToEventLoop();
		const end = Math.min(urls.length, start + URLS_PER_SLICE);
		for (let i = start; i < end; i++) {
			const url = urls[i];
			const problem =
				typeof url !== "string"
					? { type: "string", message: `The 'urls[${i}]' field must be a string.` }
					: url.length < URL_PARAM.min
						? { type: "stringMin", message: `The 'urls[${i}]' field length must be greater than or equal to ${URL_PARAM.min} characters long.`, expected: URL_PARAM.min }
						: url.length > URL_PARAM.max
							? { type: "stringMax", message: `The 'urls[${i}]' field length must be less than or equal to ${URL_PARAM.max} characters long.`, expected: URL_PARAM.max }
							: null;
			if (problem) {
				throw new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [
					{ ...problem, field: `urls[${i}]`, actual: typeof url === "string" ? url.length : url }
				]);
			}
		}
	}
}

export interface CreateParams {
	source: "urls" | "google-drive";
	urls?: string[];
	folder?: string;
	apiKey?: string;
	recursive?: boolean;
	category?: string;
	tags?: string[] | string;
	visibility?: Visibility;
	encrypted?: boolean;
}
