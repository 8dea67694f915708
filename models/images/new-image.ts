/**
 * How an upload (or an import) becomes an image document: the form fields, the sniffed format and
 * the stored blob, assembled in one place for every way in.
 */
import type { BlobRef } from "../storage/blob-store.ts";
import type { ImageProbe } from "../http/image-sniffer.ts";
import { nowIso } from "../shared/ids.ts";
import type { ImageDoc, Tag, Visibility } from "./image.ts";
import { hashtagsOf, tagList } from "./tags.ts";

/** The form fields of an upload, as UPLOAD_FIELDS checked them. */
export interface UploadFields {
	name?: string;
	description?: string;
	category?: string;
	tags?: string;
	visibility?: Visibility;
	encrypted?: "true" | "false";
}

/** The checked form fields of an upload and its resolved category, shared by all its files. */
export interface UploadOptions {
	fields: UploadFields;
	category: string | null;
}

/** Where staged bytes come from: who owns them, under which id and file name. */
export interface StagedSource {
	id: string;
	owner: { id: string; username: string };
	filename: string;
}

function baseName(filename: string): string {
	const dot = filename.lastIndexOf(".");
	return (dot > 0 ? filename.slice(0, dot) : filename).slice(0, 200) || "image";
}

/** User tags plus the #hashtags of the description (a label given both ways counts once). */
export function userTags(list: string[] | string | undefined, description: string): Tag[] {
	const labels = tagList(list);
	const tags: Tag[] = labels.map(label => ({ label, source: "user" }));
	for (const label of hashtagsOf(description)) {
		if (!labels.includes(label)) tags.push({ label, source: "hashtag" });
	}
	return tags;
}

/** The (unsaved) document of freshly stored bytes: `processing` until the pipeline is done. */
export function newImageDoc(source: StagedSource, options: UploadOptions, probe: ImageProbe, ref: BlobRef): ImageDoc {
	const { id, owner, filename } = source;
	const { fields, category } = options;
	const now = nowIso();
	const description = fields.description ?? "";
	return {
		id,
		owner: owner.id,
		ownerName: owner.username,
		name: fields.name || baseName(filename),
		description,
		filename: filename.slice(0, 255),
		contentType: probe.contentType,
		format: probe.format,
		size: ref.size,
		width: probe.width,
		height: probe.height,
		sha256: ref.sha256,
		encrypted: fields.encrypted === "true",
		visibility: fields.visibility ?? "private",
		showMetadata: false,
		category,
		tags: userTags(fields.tags, description),
		views: 0,
		// The ingest pipeline (services/worker.service.ts) takes it to ready or failed.
		status: "processing",
		statusReason: null,
		metadata: null,
		renditions: [],
		blob: ref.key,
		createdAt: now,
		updatedAt: now,
		trashedAt: null
	};
}
