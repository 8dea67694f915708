/**
 * Named transform presets: the variants anyone who may see an image can ask for by name
 * (`?preset=small`), without a signature. A fixed, small set, so guests cannot spend the
 * server's CPU or churn the variant cache by enumerating sizes (docs/sharing.md); anything else
 * needs a signed URL (signing.ts) or the owner's token. Configured by TRANSFORM_PRESETS.
 */
import { ForbiddenError, NotFoundError } from "../shared/errors.ts";
import { MAX_DIMENSION, MAX_DPR, normalizeTransform, type TransformQuery } from "./spec.ts";

export type Presets = Readonly<Record<string, TransformQuery>>;

/** Longest side 240, 480, 1080 and 2048 px (never enlarged), in the best format the client takes. */
export const DEFAULT_PRESETS: Presets = {
	thumb: { w: 240, h: 240, fit: "inside", format: "auto" },
	small: { w: 480, h: 480, fit: "inside", format: "auto" },
	medium: { w: 1080, h: 1080, fit: "inside", format: "auto" },
	large: { w: 2048, h: 2048, fit: "inside", format: "auto" }
};

/** What `?preset=` accepts before any look-up: `../x` and the like are a 400, never a name. */
export const PRESET_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

const PRESET_KEYS = ["format", "w", "h", "fit", "q", "dpr"] as const;

/** The query a preset stands for; 404 for a name that is not one (own keys only: no `constructor`). */
export function presetQuery(presets: Presets, name: string): TransformQuery {
	if (!Object.hasOwn(presets, name)) throw new NotFoundError("Preset", name);
	return { ...presets[name] };
}

/** The refusal of a guest's unsigned parameters, naming what they may ask instead. */
export function transformNotAllowed(presets: Presets): ForbiddenError {
	return new ForbiddenError(
		`Only the image's owner may ask for any transform: others use ?preset= (${Object.keys(presets).join(", ")}) or a signed URL from GET /api/images/:id/url`,
		"TRANSFORM_NOT_ALLOWED"
	);
}

function checkNumber(name: string, key: string, value: unknown, min: number, max: number, integer: boolean): void {
	if (typeof value !== "number" || !(value >= min && value <= max) || (integer && !Number.isInteger(value))) {
		throw new Error(`TRANSFORM_PRESETS: preset "${name}" has ${key} ${JSON.stringify(value)}; expected ${integer ? "an integer" : "a number"} from ${min} to ${max}`);
	}
}

function checkPreset(name: string, value: unknown): TransformQuery {
	if (!PRESET_NAME.test(name)) throw new Error(`TRANSFORM_PRESETS: the name "${name}" is not a preset name (a-z, 0-9, _ and -, at most 32)`);
	if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`TRANSFORM_PRESETS: preset "${name}" must be an object`);
	const query = value as Record<string, unknown>;
	for (const key of Object.keys(query)) {
		if (!(PRESET_KEYS as readonly string[]).includes(key)) throw new Error(`TRANSFORM_PRESETS: preset "${name}" has an unknown parameter "${key}" (${PRESET_KEYS.join(", ")})`);
	}
	for (const side of ["w", "h"] as const) if (query[side] !== undefined) checkNumber(name, side, query[side], 1, MAX_DIMENSION, true);
	if (query.q !== undefined) checkNumber(name, "q", query.q, 1, 100, true);
	if (query.dpr !== undefined) checkNumber(name, "dpr", query.dpr, 0.1, MAX_DPR, false);
	if (query.format !== undefined && typeof query.format !== "string") throw new Error(`TRANSFORM_PRESETS: preset "${name}" has a format that is not a string`);
	if (query.fit !== undefined && typeof query.fit !== "string") throw new Error(`TRANSFORM_PRESETS: preset "${name}" has a fit that is not a string`);
	const preset = query as TransformQuery;
	try {
		// The largest source there is: whatever fails here fails for every image.
		normalizeTransform(preset, { format: "jpeg", width: MAX_DIMENSION, height: MAX_DIMENSION }, { maxOutputPixels: Infinity });
	} catch (err) {
		throw new Error(`TRANSFORM_PRESETS: preset "${name}": ${(err as Error).message}`);
	}
	return preset;
}

/** TRANSFORM_PRESETS: a JSON object of name → parameters, replacing the defaults. */
export function parsePresets(json: string): Presets {
	const parsed: unknown = JSON.parse(json);
	if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("TRANSFORM_PRESETS must be a JSON object of name → parameters");
	return Object.fromEntries(Object.entries(parsed).map(([name, value]) => [name, checkPreset(name, value)]));
}
