/**
 * Google Drive folders as an import source, through the Drive v3 REST API with an API key (the
 * folder must be shared "anyone with the link"): `files.list` pages through a folder's images
 * (and its subfolders when recursing), `files/<id>?alt=media` downloads one.
 */
import { text } from "node:stream/consumers";
import { FetchError, openUrl, withRetries, type FetchOptions } from "./safe-fetch.ts";

/** Drive ids are URL-safe base64-ish strings; anything else is not a folder reference. */
const DRIVE_ID = /^[A-Za-z0-9_-]{10,200}$/;
const FOLDER_MIME = "application/vnd.google-apps.folder";
/** A page of files.list is JSON of about 200 bytes per file: 1,000 files fit well under this. */
const MAX_LIST_BYTES = 8 * 1024 * 1024;

/** The folder id in `…/folders/<id>…`, `…?id=<id>` or a bare id; null when there is none. */
export function parseFolderId(input: string): string | null {
	const value = input.trim();
	if (DRIVE_ID.test(value)) return value;
	let url: URL;
	try {
		url = new URL(value);
	} catch {
		return null;
	}
	const fromPath = /\/folders\/([^/?#]+)/.exec(url.pathname)?.[1];
	const id = fromPath ?? url.searchParams.get("id");
	return id && DRIVE_ID.test(id) ? id : null;
}

export interface DriveFile {
	id: string;
	name: string;
	mimeType: string;
	size?: string;
}

interface FileList {
	files?: DriveFile[];
	nextPageToken?: string;
}

export interface DriveSource {
	/** Base URL of the Drive v3 API, e.g. https://www.googleapis.com/drive/v3 */
	apiUrl: string;
	apiKey: string;
}

function endpoint(source: DriveSource, path: string, query: Record<string, string>): string {
	const url = new URL(source.apiUrl.replace(/\/+$/, "") + path);
	for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
	url.searchParams.set("key", source.apiKey);
	return url.href;
}

/** Where one file's bytes are downloaded from. */
export function downloadUrl(source: DriveSource, fileId: string): string {
	return endpoint(source, `/files/${encodeURIComponent(fileId)}`, { alt: "media" });
}

/** Lists one page of a folder's children matching `filter`. */
async function listPage(source: DriveSource, folderId: string, filter: string, pageToken: string | undefined, fetchOptions: FetchOptions): Promise<FileList> {
	const query: Record<string, string> = {
		q: `'${folderId}' in parents and ${filter} and trashed=false`,
		pageSize: "1000",
		fields: "nextPageToken,files(id,name,mimeType,size)"
	};
	if (pageToken) query.pageToken = pageToken;
	const url = endpoint(source, "/files", query);
	return withRetries(fetchOptions, async () => {
		const opened = await openUrl(url, { ...fetchOptions, maxBytes: MAX_LIST_BYTES, headers: { accept: "application/json" } });
		const body = await text(opened.body);
		try {
			return JSON.parse(body) as FileList;
		} catch {
			throw new FetchError("Google Drive answered with something that is not JSON", "BAD_LISTING", false);
		}
	});
}

async function* pages(source: DriveSource, folderId: string, filter: string, fetchOptions: FetchOptions): AsyncGenerator<DriveFile[]> {
	let token: string | undefined;
	do {
		const page = await listPage(source, folderId, filter, token, fetchOptions);
		yield page.files ?? [];
		token = page.nextPageToken || undefined;
	} while (token);
}

/**
 * Every image in the folder (and, when recursing, in its subfolders, each folder visited once),
 * one page at a time, so that a folder of any size is never held whole.
 */
export async function* listDriveImages(source: DriveSource, folderId: string, recursive: boolean, fetchOptions: FetchOptions): AsyncGenerator<DriveFile[]> {
	const seen = new Set<string>([folderId]);
	const folders = [folderId];
	while (folders.length) {
		const folder = folders.shift()!;
		yield* pages(source, folder, "mimeType contains 'image/'", fetchOptions);
		if (!recursive) continue;
		for await (const page of pages(source, folder, `mimeType='${FOLDER_MIME}'`, fetchOptions)) {
			for (const sub of page) {
				if (!seen.has(sub.id)) {
					seen.add(sub.id);
					folders.push(sub.id);
				}
			}
		}
	}
}
