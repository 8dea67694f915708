/** Validator fragments of the images actions (REST and internal), in one place. */
import { RENDITION_EDGES } from "../pipeline/renditions.ts";
import { TEXT } from "../shared/params.ts";
import { PRESET_NAME } from "../transform/presets.ts";
import { FITS, FORMAT_NAMES, MAX_DIMENSION, MAX_DPR } from "../transform/spec.ts";

export const VISIBILITY = { type: "enum", values: ["private", "public"], optional: true };
export const STATUS = { type: "enum", values: ["processing", "ready", "failed"] };
export const TAGS = [
	{ type: "array", items: { type: "string", max: 50 }, max: 50, optional: true },
	{ type: "string", max: 2000, optional: true }
];

const SIDE = { type: "number", integer: true, min: 1, max: MAX_DIMENSION, convert: true, optional: true };

/** Transform parameters proper; their combination is checked by normalizeTransform. */
export const TRANSFORM_PARAMS = {
	format: { type: "enum", values: [...Object.keys(FORMAT_NAMES), "auto"], optional: true },
	w: SIDE,
	h: SIDE,
	fit: { type: "enum", values: FITS, optional: true },
	q: { type: "number", integer: true, min: 1, max: 100, convert: true, optional: true },
	dpr: { type: "number", min: 0.1, max: MAX_DPR, convert: true, optional: true }
};

/**
 * Query parameters of a download: the transform, or a preset by name, and a transform's
 * signature (docs/sharing.md). A preset name is checked against PRESET_NAME here, so a path
 * trick never reaches the look-up.
 */
export const TRANSFORM = {
	...TRANSFORM_PARAMS,
	preset: { type: "string", pattern: PRESET_NAME, optional: true },
	sig: { type: "string", max: 100, optional: true },
	exp: { type: "number", integer: true, min: 0, convert: true, optional: true }
};
export const EXT = { type: "enum", values: Object.keys(FORMAT_NAMES) };
/** A thumbnail's size (its shortest edge); the smallest when not given. */
export const THUMBNAIL_SIZE = { type: "enum", values: RENDITION_EDGES.map(String), default: String(RENDITION_EDGES[0]) };

/** Upload form fields, checked once before the first file is stored. */
export const UPLOAD_FIELDS = {
	$$strict: true,
	name: TEXT(200),
	description: TEXT(5000),
	category: TEXT(64),
	tags: { type: "string", max: 2000, optional: true },
	visibility: VISIBILITY,
	encrypted: { type: "enum", values: ["true", "false"], optional: true }
};
