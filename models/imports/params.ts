/** Validator fragments and parameter shapes of the imports actions. */
import type { Visibility } from "../images/image-types.ts";
import { TAGS, VISIBILITY } from "../images/params.ts";

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
