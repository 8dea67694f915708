/**
 * BlobStore on an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, …). Same keys, references and
 * envelopes as FsBlobStore and GridFsBlobStore.
 *
 * The bucket holds only immutable objects, `<prefix>objects/<random id>`, each written once by one
 * upload (a single PUT, or a multipart upload for anything over one part: s3-object-upload.ts) and never changed. S3
 * makes an object visible only once its upload completed, so no reader ever sees a partial one.
 * Which object holds which blob, the blob's references, its envelope header and whether it was
 * found corrupt live in an S3BlobIndex (SQLite or MongoDB, see s3-blob-index.ts): S3 cannot change
 * a set of references atomically. An object is written before its index entry and deleted after
 * it, so a crash in between leaves at most an unreferenced object, which the sweep removes.
 *
 * An encrypted blob's object is its whole envelope with the header slot left zero (the encryptor
 * knows the header only at the end, after the first part is long uploaded); the real header lives
 * in the index, so rotating the master key rewrites index entries and never an object.
 *
 * Reads are ranged GETs: a range of a plain blob is one GET of those bytes, a range of an encrypted
 * one a GET of the chunks it overlaps. Nothing is buffered whole, in either direction.
 */
import { randomBytes } from "node:crypto";
import { pipeline, PassThrough, type Readable } from "node:stream";
import {
	AbortMultipartUploadCommand,
	DeleteObjectCommand,
	GetObjectCommand,
	type GetObjectCommandOutput,
	HeadBucketCommand,
	ListMultipartUploadsCommand,
	ListObjectsV2Command,
	S3Client
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type {
	BlobInfo,
	BlobRef,
	BlobStore,
	ByteRange,
	ImportedBlob,
	ImportResult,
	ListRefsOptions,
	PresignedResponse,
	PutOptions,
	RefPage,
	RewrapReport,
	ScrubOptions,
	ScrubReport,
	StaleRelease
} from "./blob-store.ts";
import {
	importedPlaintextCheck,
	newEncryptedKey,
	PlaintextMeter,
	plainKey,
	rewrapEach,
	satisfiableRange,
	scrubKeys,
	sha256Of,
	verifiedPlaintext
} from "./blob-support.ts";
import { decryptRange, EnvelopeEncryptor, envelopeLength, type Keyring, needsRewrap, openEnvelope, rewrapHeader } from "./envelope-crypto.ts";
import type { Attached, IndexedBlob, S3BlobIndex } from "./s3-blob-index.ts";
import { uploadObject } from "./s3-object-upload.ts";
import { CorruptBlobError, IntegrityError, NotFoundError, UnavailableError } from "../shared/errors.ts";

/** Where the bucket is and how to sign for it (config's S3Settings). */
export interface S3Location {
	/** Unset: AWS S3 itself. */
	endpoint?: string;
	region: string;
	bucket: string;
	/** Prepended to every object name: several deployments (or tests) can share one bucket. */
	prefix: string;
	/** Unset: the SDK's default credential chain (environment, profile, instance role, …). */
	credentials?: { accessKeyId: string; secretAccessKey: string };
	/** Bucket in the path rather than the host name, as most S3-compatible servers need. */
	forcePathStyle: boolean;
}

export interface S3BlobStoreOptions extends S3Location {
	keyring: Keyring;
	index: S3BlobIndex;
	/**
	 * Unfinished multipart uploads and unreferenced objects older than this are swept away at start.
	 * Far longer than any upload takes (REQUEST_TIMEOUT_MS bounds them): a younger one may belong
	 * to an upload still under way on another node.
	 */
	orphanAgeMs?: number;
	/** How long a presigned URL stays valid (S3_PRESIGNED_TTL_SECONDS). */
	presignedTtlSeconds?: number;
	/**
	 * Opened by a node that only reads (mixins/blob-reader.mixin.ts): no sweep. A reader's index may
	 * not be the storage nodes' (a SQLite index is per node), and then every object looks orphaned.
	 */
	readOnly?: boolean;
}

const ORPHAN_AGE_MS = 60 * 60 * 1000;
const PRESIGNED_TTL_SECONDS = 300;
/** Node's socket errors, and the SDK's own timeout: the bucket is out of reach, not wrong. */
const UNREACHABLE = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "TimeoutError"]);

interface Staged {
	sha256: string;
	size: number;
	header: Buffer | null;
}

function isUnreachable(err: unknown): boolean {
	const { code, name } = err as NodeJS.ErrnoException;
	return UNREACHABLE.has(code ?? "") || UNREACHABLE.has(name);
}

function isMissingObject(err: unknown): boolean {
	return (err as Error).name === "NoSuchKey" || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404;
}

/** The total object size from a Content-Range answer (`bytes 0-99/12345`). */
function totalLength(contentRange: string | undefined): number | null {
	const total = contentRange?.split("/")[1];
	return total && total !== "*" ? Number(total) : null;
}

export class S3BlobStore implements BlobStore {
	readonly #client: S3Client;
	readonly #bucket: string;
	readonly #objectPrefix: string;
	readonly #keyring: Keyring;
	readonly #index: S3BlobIndex;
	readonly #swept: Promise<void>;
	readonly #presignedTtlSeconds: number;

	constructor(options: S3BlobStoreOptions) {
		this.#client = new S3Client({
			region: options.region,
			forcePathStyle: options.forcePathStyle,
			...(options.endpoint ? { endpoint: options.endpoint } : {}),
			...(options.credentials ? { credentials: options.credentials } : {}),
			// Checksums only where S3 requires them: many S3-compatible servers refuse the SDK's
			// default trailing checksums (aws-chunked uploads), and every read is verified here anyway.
			requestChecksumCalculation: "WHEN_REQUIRED",
			responseChecksumValidation: "WHEN_REQUIRED"
		});
		this.#bucket = options.bucket;
		this.#objectPrefix = `${options.prefix}objects/`;
		this.#keyring = options.keyring;
		this.#index = options.index;
		this.#presignedTtlSeconds = options.presignedTtlSeconds ?? PRESIGNED_TTL_SECONDS;
		// Not awaited by calls: the store serves while the sweep lists the bucket. A failed sweep
		// is retried at the next start.
		this.#swept = options.readOnly
			? Promise.resolve()
			: this.#sweep(new Date(Date.now() - (options.orphanAgeMs ?? ORPHAN_AGE_MS))).then(
					() => {},
					() => {}
				);
	}

	async put(source: Readable, options: PutOptions): Promise<BlobRef> {
		const object = `${this.#objectPrefix}${randomBytes(16).toString("hex")}`;
		// An encrypted blob's key is random and its envelope is bound to it: chosen before the bytes.
		const encryptedKey = options.encrypt ? newEncryptedKey() : null;
		const staged = await this.#run(() => this.#upload(object, source, options.maxBytes, encryptedKey));
		const key = encryptedKey ?? plainKey(staged.sha256);
		const blob: BlobRef = { key, sha256: staged.sha256, size: staged.size, encrypted: options.encrypt };
		let attached: Attached;
		try {
			attached = await this.#index.attach(blob, object, staged.header, options.ref);
		} catch (err) {
			await this.#discard(object);
			throw err;
		}
		// The same bytes were stored already: this copy is not needed. Or they were stored, found
		// corrupt and now replaced by this copy: the corrupt one goes.
		if (!attached.kept) await this.#discard(object);
		if (attached.replaced) await this.#discard(attached.replaced);
		return blob;
	}

	async open(key: string, range?: ByteRange): Promise<Readable> {
		const blob = await this.#index.find(key);
		if (!blob) throw new NotFoundError("Blob", key);
		if (blob.corruptAt) throw new CorruptBlobError(key, blob.corruptAt);
		if (!blob.header) {
			// A range is read as stored: checking the hash takes every byte. A full read is verified.
			if (range) return (await this.#get(blob, satisfiableRange(range, blob.size))).Body as Readable;
			const whole = (await this.#get(blob, undefined)).Body as Readable;
			return verifiedPlaintext(whole, blob, () => this.#index.markCorrupt(key, blob.object));
		}
		return this.#openEncrypted(blob, range);
	}

	async stat(key: string): Promise<BlobInfo | null> {
		const blob = await this.#index.find(key);
		if (!blob) return null;
		const info: BlobInfo = { key, size: blob.size, encrypted: blob.encrypted, refs: blob.refs };
		return blob.corruptAt ? { ...info, corruptAt: blob.corruptAt } : info;
	}

	async release(key: string, ref: string): Promise<boolean> {
		const { gone, object } = await this.#index.detach(key, ref);
		if (object) await this.#discard(object);
		return gone;
	}

	async releaseStale(key: string, ref: string, addedBefore: Date): Promise<StaleRelease> {
		const { released, gone, object } = await this.#index.detach(key, ref, addedBefore);
		if (object) await this.#discard(object);
		return { released, deleted: released && gone };
	}

	async listRefs(options: ListRefsOptions): Promise<RefPage> {
		return this.#index.listRefs(options);
	}

	async sweepUnfinished(olderThan: Date): Promise<number> {
		return this.#run(() => this.#sweep(olderThan));
	}

	async rewrapAll(): Promise<RewrapReport> {
		return rewrapEach(await this.#index.encryptedKeys(), key => this.#rewrap(key));
	}

	async scrub(options: ScrubOptions): Promise<ScrubReport> {
		const keys = await this.#index.keysAfter(options.after ?? "", options.limit + 1);
		return scrubKeys(keys, options, key => this.open(key));
	}

	/**
	 * Signing is local (no request to the bucket): the URL carries the object's name, the expiry
	 * and the response headers, signed with this store's credentials. The bytes it serves skip
	 * imgmesh's SHA-256 check on the way out; a scrub still checks them.
	 */
	async presignedUrl(key: string, response: PresignedResponse): Promise<string | null> {
		const blob = await this.#index.find(key);
		if (!blob || blob.encrypted || blob.corruptAt) return null;
		const command = new GetObjectCommand({
			Bucket: this.#bucket,
			Key: blob.object,
			ResponseContentType: response.contentType,
			ResponseContentDisposition: response.contentDisposition,
			ResponseCacheControl: response.cacheControl
		});
		return getSignedUrl(this.#client, command, { expiresIn: this.#presignedTtlSeconds });
	}

	async importBlob(key: string, open: () => Promise<Readable>, blob: ImportedBlob): Promise<ImportResult> {
		const present = await this.#index.find(key);
		if (present && !present.corruptAt && present.size === blob.size) {
			await this.#attachAll(present, present.object, present.header, blob.refs);
			return { copied: false };
		}
		const object = `${this.#objectPrefix}${randomBytes(16).toString("hex")}`;
		const staged = await this.#run(async () => this.#upload(object, await open(), Number.MAX_SAFE_INTEGER, blob.encrypted ? key : null));
		const copy: IndexedBlob = { key, sha256: staged.sha256, size: staged.size, encrypted: blob.encrypted, object, header: staged.header, corruptAt: null, refs: 0 };
		try {
			importedPlaintextCheck(key, blob, staged);
			if ((await sha256Of(await this.#readObject(copy))) !== staged.sha256) throw new IntegrityError(`The copy of blob ${key} read back from the bucket does not match what was sent`, { key });
			// Another node stored the same bytes meanwhile: this copy is not needed.
			if (!(await this.#attachAll(copy, object, staged.header, blob.refs))) await this.#discard(object);
		} catch (err) {
			await this.#discard(object);
			throw err;
		}
		return { copied: true, sha256: staged.sha256 };
	}

	async ping(): Promise<boolean> {
		try {
			await this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket }));
			return await this.#index.ping();
		} catch {
			return false;
		}
	}

	async close(): Promise<void> {
		await this.#swept;
		this.#client.destroy();
		await this.#index.close();
	}

	/**
	 * Streams the (encrypted) bytes into object `object` (s3-object-upload.ts: two 5 MiB part
	 * buffers, whatever the size). On any failure the multipart upload is aborted before the
	 * error goes on.
	 */
	async #upload(object: string, source: Readable, maxBytes: number, encryptedKey: string | null): Promise<Staged> {
		const meter = new PlaintextMeter(maxBytes);
		const encryptor = encryptedKey ? new EnvelopeEncryptor(this.#keyring, encryptedKey) : null;
		// Errors of any stage end the upload's reading with that error.
		const body: Readable = encryptor ? pipeline(source, meter, encryptor, () => {}) : pipeline(source, meter, () => {});
		try {
			await uploadObject({ client: this.#client, bucket: this.#bucket, key: object }, body);
		} catch (err) {
			body.destroy();
			throw err;
		}
		return { ...meter.result(), header: encryptor?.header ?? null };
	}

	/**
	 * Opens the envelope, then GETs exactly the chunks the range overlaps. The GET's Content-Range
	 * tells the object's length, which catches truncation or padding before a reader gets any byte.
	 */
	async #openEncrypted(blob: IndexedBlob, range: ByteRange | undefined): Promise<Readable> {
		const envelope = openEnvelope(blob.header!, this.#keyring, blob.key);
		const expected = envelopeLength(envelope);
		// decryptRange works out which envelope bytes the range needs and asks for them at once; the
		// GET is made here rather than inside that stream, so that a lost or truncated object fails
		// this call instead of a reader's stream.
		const ciphertext = new PassThrough();
		let wanted: ByteRange | undefined;
		const plaintext = decryptRange(envelope, satisfiableRange(range, envelope.plaintextSize), (start, end) => {
			wanted = { start, end };
			return ciphertext;
		});
		try {
			const answer = await this.#get(blob, wanted);
			const length = totalLength(answer.ContentRange);
			if (length !== expected) {
				(answer.Body as Readable).destroy();
				throw new IntegrityError(`Encrypted blob is ${length ?? "an unknown number of"} bytes, its header says ${expected}`);
			}
			pipeline(answer.Body as Readable, ciphertext, () => {});
		} catch (err) {
			plaintext.destroy();
			throw err;
		}
		return plaintext;
	}

	/**
	 * GETs the blob's object, or the inclusive range of it. A missing object is the blob's bytes
	 * lost (IntegrityError, a plain blob marked corrupt), unless a release removed the blob meanwhile.
	 */
	async #get(blob: IndexedBlob, range: ByteRange | undefined): Promise<GetObjectCommandOutput> {
		try {
			return await this.#run(() =>
				this.#client.send(
					new GetObjectCommand({ Bucket: this.#bucket, Key: blob.object, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) })
				)
			);
		} catch (err) {
			if ((err as Error).name === "InvalidRange") throw new IntegrityError(`The stored bytes of blob ${blob.key} are shorter than recorded`, { key: blob.key });
			if (!isMissingObject(err)) throw err;
			const current = await this.#index.find(blob.key);
			if (current?.object !== blob.object) throw new NotFoundError("Blob", blob.key);
			if (!blob.encrypted) await this.#index.markCorrupt(blob.key, blob.object);
			throw new IntegrityError(`The stored bytes of blob ${blob.key} are missing`, { key: blob.key });
		}
	}

	/**
	 * Records every reference of an imported blob held by `object`, each with its time. The first
	 * attach creates the entry (or repairs a corrupt one, whose object then goes); the others only
	 * add references. Whether `object` is the blob's object now.
	 */
	async #attachAll(blob: BlobRef, object: string, header: Buffer | null, refs: ImportedBlob["refs"]): Promise<boolean> {
		const stored: BlobRef = { key: blob.key, sha256: blob.sha256, size: blob.size, encrypted: blob.encrypted };
		let kept = false;
		for (const { ref, addedAt } of refs) {
			const attached = await this.#index.attach(stored, object, header, ref, addedAt);
			kept ||= attached.kept;
			if (attached.replaced) await this.#discard(attached.replaced);
		}
		return kept;
	}

	/** The plaintext of `blob`'s object, read whole from the bucket (decrypted when encrypted). */
	async #readObject(blob: IndexedBlob): Promise<Readable> {
		return blob.header ? this.#openEncrypted(blob, undefined) : ((await this.#get(blob, undefined)).Body as Readable);
	}

	async #rewrap(key: string): Promise<boolean> {
		const blob = await this.#index.find(key);
		if (!blob?.header || !needsRewrap(blob.header, this.#keyring)) return false;
		await this.#index.replaceHeader(key, blob.header, rewrapHeader(blob.header, this.#keyring, key));
		return true;
	}

	/**
	 * Deletes an object no index entry points at any more. The put or release that made it so has
	 * happened whatever becomes of the delete: one that fails leaves an unreferenced object, which
	 * the next sweep (at start, or the garbage collector's) removes.
	 */
	async #discard(object: string): Promise<void> {
		await this.#deleteObject(object).catch(() => {});
	}

	async #deleteObject(object: string): Promise<void> {
		await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: object }));
	}

	/**
	 * Removes what dead uploads left under the prefix: multipart uploads never completed nor aborted
	 * (a node killed mid-upload), and objects no blob points at (a node killed between its upload
	 * and its index entry, or a delete that failed), begun before `olderThan`: younger ones may
	 * belong to an upload still under way on another node. Returns how many it removed.
	 */
	async #sweep(olderThan: Date): Promise<number> {
		const cutoff = olderThan.getTime();
		let removed = 0;
		let keyMarker: string | undefined;
		let uploadIdMarker: string | undefined;
		do {
			const page = await this.#client.send(
				new ListMultipartUploadsCommand({ Bucket: this.#bucket, Prefix: this.#objectPrefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker })
			);
			for (const upload of page.Uploads ?? []) {
				if ((upload.Initiated?.getTime() ?? 0) >= cutoff) continue;
				await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: upload.Key, UploadId: upload.UploadId }));
				removed++;
			}
			({ NextKeyMarker: keyMarker, NextUploadIdMarker: uploadIdMarker } = page.IsTruncated ? page : {});
		} while (keyMarker);
		let token: string | undefined;
		do {
			const page = await this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.#objectPrefix, ContinuationToken: token }));
			const old = (page.Contents ?? []).filter(item => (item.LastModified?.getTime() ?? 0) < cutoff).map(item => item.Key!);
			const inUse = await this.#index.objectsInUse(old);
			for (const object of old.filter(name => !inUse.has(name))) {
				await this.#deleteObject(object);
				removed++;
			}
			token = page.IsTruncated ? page.NextContinuationToken : undefined;
		} while (token);
		return removed;
	}

	/** Runs one bucket call, with an unreachable server reported as 503 (retryable). */
	async #run<T>(work: () => Promise<T>): Promise<T> {
		try {
			return await work();
		} catch (err) {
			if (isUnreachable(err)) throw new UnavailableError(`Blob storage is unavailable: ${(err as Error).message}`);
			throw err;
		}
	}
}
