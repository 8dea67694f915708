/**
 * Streams a multipart/form-data upload: text fields are collected, each file is handed to
 * `onFile` as a stream, one at a time, as it arrives. Like S3's browser uploads, text fields
 * must come before the files: a file's options (e.g. encryption) are needed before its first
 * byte is stored, and bytes already streamed cannot be re-read.
 */
import { Busboy } from "@fastify/busboy";
import { finished, type Readable } from "node:stream";
import { BadRequestError, PayloadTooLargeError } from "../shared/errors.ts";

export interface MultipartLimits {
	maxFileBytes: number;
	maxFiles: number;
	fileFields: string[];
	maxFields?: number;
	maxFieldBytes?: number;
}

export interface UploadedFile {
	stream: Readable;
	filename: string;
	mimetype: string;
}

export type FileHandler<T> = (file: UploadedFile, fields: Readonly<Record<string, string>>) => Promise<T>;

export interface MultipartResult<T> {
	fields: Record<string, string>;
	files: T[];
}

function createParser(contentType: string | undefined, limits: MultipartLimits) {
	if (!contentType?.toLowerCase().startsWith("multipart/form-data")) {
		throw new BadRequestError("Expected a multipart/form-data body with one or more files", "EXPECTED_MULTIPART");
	}
	const maxFields = limits.maxFields ?? 20;
	try {
		return new Busboy({
			headers: { "content-type": contentType },
			limits: {
				fileSize: limits.maxFileBytes,
				files: limits.maxFiles,
				fields: maxFields,
				fieldSize: limits.maxFieldBytes ?? 64 * 1024,
				parts: limits.maxFiles + maxFields
			}
		});
	} catch (err) {
		throw new BadRequestError(`Malformed multipart request: ${(err as Error).message}`, "MALFORMED_MULTIPART");
	}
}

/**
 * Parses `source`; resolves when every file has been handled. On the first failure it stops
 * reading files, waits for the handlers already started, and rejects with that failure; the
 * results of the handlers that succeeded are passed to `onAbort` so the caller can undo them.
 */
export function parseMultipart<T>(
	source: Readable,
	contentType: string | undefined,
	limits: MultipartLimits,
	onFile: FileHandler<T>,
	onAbort: (done: T[]) => Promise<void>
): Promise<MultipartResult<T>> {
	const parser = createParser(contentType, limits);
	const fields: Record<string, string> = {};
	const handled: Promise<T>[] = [];
	/** File streams still being read; a failure must end them, or their handlers never finish. */
	const open = new Set<Readable>();
	let failure: Error | undefined;
	let settled: Promise<void> | undefined;

	return new Promise((resolve, reject) => {
		const fail = (err: Error) => {
			if (failure) return;
			failure = err;
			source.unpipe(parser);
			source.resume(); // discard the rest of the body
			for (const stream of open) stream.destroy(err);
			settle();
		};
		// Runs once, after the last file handler has finished, whichever way the request ends.
		const settle = () => (settled ??= finish());
		const finish = async () => {
			const outcomes = await Promise.allSettled(handled);
			const done = outcomes.flatMap(outcome => (outcome.status === "fulfilled" ? [outcome.value] : []));
			if (failure) {
				await onAbort(done).catch(() => undefined);
				return reject(failure);
			}
			if (done.length === 0) return reject(new BadRequestError("No file in the request (use the field 'file')", "NO_FILE"));
			resolve({ fields, files: done });
		};

		parser.on("field", (name: string, value: string, nameTruncated: boolean, valueTruncated: boolean) => {
			if (handled.length > 0) return fail(new BadRequestError(`Field '${name}' must come before the files`, "FIELD_AFTER_FILE"));
			if (nameTruncated || valueTruncated) return fail(new BadRequestError(`Field '${name}' is too long`, "FIELD_TOO_LONG"));
			fields[name] = value;
		});
		parser.on("file", (fieldname: string, stream: Readable, filename: string | undefined, _encoding: string, mimetype: string) => {
			if (failure) return stream.resume();
			if (!limits.fileFields.includes(fieldname)) {
				stream.resume();
				return fail(new BadRequestError(`Unexpected file field '${fieldname}'`, "UNEXPECTED_FILE_FIELD"));
			}
			open.add(stream);
			stream.once("close", () => open.delete(stream));
			// Its errors reach the request through fail(); a handler that has not attached its own
			// listener yet must not turn one into an uncaught exception.
			stream.on("error", () => undefined);
			stream.once("limit", () => stream.destroy(new PayloadTooLargeError(limits.maxFileBytes)));
			// A part sent as application/octet-stream is a file even without a filename (busboy then gives undefined).
			const result = onFile({ stream, filename: filename ?? "", mimetype }, { ...fields });
			// A failed file fails the whole request; its stream must still be drained.
			result.catch(err => {
				stream.resume();
				fail(err);
			});
			handled.push(result);
		});
		parser.on("filesLimit", () => fail(new BadRequestError(`At most ${limits.maxFiles} files per request`, "TOO_MANY_FILES")));
		parser.on("fieldsLimit", () => fail(new BadRequestError("Too many form fields", "TOO_MANY_FIELDS")));
		parser.on("partsLimit", () => fail(new BadRequestError("Too many form parts", "TOO_MANY_PARTS")));
		parser.on("error", (err: Error) => fail(new BadRequestError(`Malformed multipart request: ${err.message}`, "MALFORMED_MULTIPART")));
		parser.on("finish", () => {
			if (!failure) settle();
		});
		// A client that disconnects mid-body ends the source early (an error or a premature close).
		finished(source, err => {
			if (err) fail(new BadRequestError(`Upload interrupted: ${err.message}`, "UPLOAD_ABORTED"));
		});
		source.pipe(parser);
	});
}
