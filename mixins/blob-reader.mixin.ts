/**
 * Reading blobs, for every service that serves or processes image bytes (images' delivery,
 * transform, worker, classifier): `this.readBlob(caller, key, range?)`. A node that hosts the storage
 * service reads through it, in process; any other node opens the blob store itself when every
 * node reaches the backend (models/backends.ts, readsBlobsDirectly: GridFS, S3 with its index in
 * MongoDB, or files on a shared disk), so the bytes come straight from the backend instead of
 * through a storage node and the transporter (base64 in JSON: docs/benchmarks.md#direct-reads).
 * Else, through a storage node.
 *
 * The store opened here only reads (openBlobReader: no temp file, index or sweep is touched);
 * the storage service keeps the bookkeeping (put, release, references, key rotation, garbage
 * collection). The same adapter means the same integrity behaviour: a plain blob that fails its
 * hash is marked corrupt in the shared index, whoever read it.
 */
import type { ServiceSchema } from "moleculer";
import type { Readable } from "node:stream";
import { getConfig } from "../config/index.ts";
import { openBlobReader, readsBlobsDirectly } from "../models/backends.ts";
import type { BlobReader, ByteRange } from "../models/storage/blob-store.ts";
import { IntegrityError } from "../models/shared/errors.ts";

/** A context, or the broker: what the storage service is called through when it must be. */
interface Caller {
	call<T, P>(action: string, params: P): Promise<T>;
}

export interface BlobReaderMethods {
	/** A stream of the blob's plaintext, or of the inclusive range of it. */
	readBlob(caller: Caller, key: string, range?: ByteRange): Promise<Readable>;
}

export interface BlobReaderVars {
	/** The store this node reads itself; null: it reads through the storage service. */
	directBlobs: BlobReader | null;
}

export const BlobReaderMixin: Partial<ServiceSchema> = {
	methods: {
		async readBlob(caller: Caller, key: string, range?: ByteRange): Promise<Readable> {
			if (!this.directBlobs) return caller.call<Readable, object>("storage.get", { key, ...range });
			const stream = await this.directBlobs.open(key, range);
			// As the storage service does: the failure reaches the reader mid-stream, the operator hears of it here.
			stream.once("error", (err: Error) => {
				if (err instanceof IntegrityError) this.logger.error(`Blob ${key} failed its integrity check: ${err.message}`, err.data);
			});
			return stream;
		}
	},

	/** In `started`, once every local service exists: whether this node hosts storage is known then. */
	started() {
		const config = getConfig();
		const direct = !this.broker.getLocalService("storage") && readsBlobsDirectly(config);
		this.directBlobs = direct ? openBlobReader(config) : null;
	},

	async stopped() {
		await this.directBlobs?.close();
	}
};
