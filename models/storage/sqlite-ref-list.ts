/**
 * BlobStore.listRefs over a SQLite index whose references table has (key, ref, added_at ms) and
 * whose blobs table has (key, size): FsBlobStore's `refs`/`blobs` and the S3 store's
 * `s3_refs`/`s3_blobs`.
 */
import type { DatabaseSync } from "node:sqlite";
import type { ListRefsOptions, RefPage } from "./blob-store.ts";

export interface RefTables {
	refs: string;
	blobs: string;
}

interface RefRow {
	key: string;
	ref: string;
	added_at: number;
	size: number;
}

export function listSqliteRefs(db: DatabaseSync, tables: RefTables, options: ListRefsOptions): Promise<RefPage> {
	const { refs: refTable, blobs: blobTable } = tables;
	const rows = db
		.prepare(
			`SELECT ${refTable}.key AS key, ref, added_at, size FROM ${refTable} JOIN ${blobTable} ON ${blobTable}.key = ${refTable}.key
			WHERE (${refTable}.key, ref) > (?, ?) AND added_at < ? ORDER BY ${refTable}.key, ref LIMIT ?`
		)
		.all(options.after?.key ?? "", options.after?.ref ?? "", options.olderThan.getTime(), options.limit) as unknown as RefRow[];
	const refs = rows.map(row => ({ key: row.key, ref: row.ref, addedAt: new Date(row.added_at), size: row.size }));
	const last = refs.at(-1);
	return Promise.resolve({ refs, next: last && refs.length === options.limit ? { key: last.key, ref: last.ref } : null });
}
