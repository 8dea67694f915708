/**
 * Streams bytes into one S3 object in bounded memory: two part buffers, allocated once per upload
 * and reused, one filling from the stream while the other is sent. An upload holds 2 × partBytes
 * whatever its size, and allocates nothing per part.
 *
 * Why not @aws-sdk/lib-storage's Upload: it concatenates every part into a new buffer (and copies
 * the chunks it reads into it), and those buffers, freed only when V8 next collects the old
 * generation, grew a node's RSS by about 80 MiB during a 200 MB upload with 8 MiB parts two in
 * flight, and still by 28 MiB with 5 MiB parts one at a time (which also halved the throughput,
 * as reading stopped while each part was sent).
 *
 * Bytes that fit in one part are one PutObject; more are a multipart upload of equal parts (the
 * last one shorter), aborted on any failure: S3 shows the object only once it is complete, and
 * the store's sweep removes a multipart upload an abort could not reach.
 */
import {
	AbortMultipartUploadCommand,
	CompleteMultipartUploadCommand,
	type CompletedPart,
	CreateMultipartUploadCommand,
	PutObjectCommand,
	type S3Client,
	UploadPartCommand
} from "@aws-sdk/client-s3";

/** S3's smallest part (but the last): the least memory an upload can hold. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;

export interface ObjectTarget {
	client: S3Client;
	bucket: string;
	key: string;
}

export async function uploadObject(target: ObjectTarget, source: AsyncIterable<Buffer>, partBytes = MIN_PART_BYTES): Promise<void> {
	const upload = new PartUpload(target);
	const buffers = [Buffer.allocUnsafeSlow(partBytes), Buffer.allocUnsafeSlow(partBytes)];
	let filling = 0;
	let used = 0;
	try {
		for await (const chunk of source) {
			let offset = 0;
			while (offset < chunk.length) {
				// A full buffer is sent only once more bytes come: the last part is never empty, and
				// bytes that fit in one part stay a single PutObject.
				if (used === partBytes) {
					await upload.send(buffers[filling]!);
					filling = 1 - filling;
					used = 0;
				}
				const copied = chunk.copy(buffers[filling]!, used, offset);
				used += copied;
				offset += copied;
			}
		}
		await upload.finish(buffers[filling]!.subarray(0, used));
	} catch (err) {
		await upload.abort();
		throw err;
	}
}

/** The parts of one object: at most one being sent while the caller fills the other buffer. */
class PartUpload {
	readonly #target: ObjectTarget;
	#uploadId: Promise<string> | undefined;
	readonly #parts: CompletedPart[] = [];
	#sending: Promise<void> = Promise.resolve();

	constructor(target: ObjectTarget) {
		this.#target = target;
	}

	/** Waits for the part before (whose buffer the caller fills next), then starts sending `part`. */
	async send(part: Buffer): Promise<void> {
		await this.#sending;
		this.#uploadId ??= this.#create();
		this.#sending = this.#sendPart(await this.#uploadId, this.#parts.length + 1, part);
		// A failure is seen by the next send or by finish; until then it must not count as unhandled.
		this.#sending.catch(() => {});
	}

	async finish(last: Buffer): Promise<void> {
		const { client, bucket, key } = this.#target;
		if (!this.#uploadId) {
			await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: last, ContentLength: last.length }));
			return;
		}
		await this.send(last);
		await this.#sending;
		const uploadId = await this.#uploadId;
		await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: this.#parts } }));
	}

	/** After a failure: no part is left behind (a failed abort is the sweep's). */
	async abort(): Promise<void> {
		const uploadId = await this.#uploadId?.catch(() => undefined);
		if (!uploadId) return;
		await this.#sending.catch(() => {});
		const { client, bucket, key } = this.#target;
		await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch(() => {});
	}

	async #create(): Promise<string> {
		const { client, bucket, key } = this.#target;
		const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
		if (!UploadId) throw new Error(`CreateMultipartUpload of ${key} answered no UploadId`);
		return UploadId;
	}

	async #sendPart(uploadId: string, partNumber: number, body: Buffer): Promise<void> {
		const { client, bucket, key } = this.#target;
		const { ETag } = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }));
		if (!ETag) throw new Error(`UploadPart ${partNumber} of ${key} answered no ETag`);
		this.#parts[partNumber - 1] = { PartNumber: partNumber, ETag };
	}
}
