/**
 * Envelope encryption of blobs at rest: AES-256-GCM in fixed-size chunks under a random data key
 * (DEK) per object, the DEK wrapped (AES-256-GCM) by a master key. Only the header depends on the
 * master key, so rotating it re-wraps headers and never touches the chunks.
 *
 * Layout (integers big-endian):
 *
 *   header, HEADER_SIZE = 85 bytes
 *     "IMGE" magic (4) | version = 2 (1) | master key id (8) | chunk size (4) | plaintext size (8)
 *     | wrap IV (12) | wrapped DEK (32) | wrap tag (16)
 *   chunks 0..n-1, n = max(1, ceil(plaintext size / chunk size))
 *     AES-256-GCM ciphertext of plaintext chunk i (chunk size bytes; the last one shorter, and
 *     empty for an empty blob) | GCM tag (16)
 *
 * The first 25 header bytes, followed by the blob's storage key, are the AAD of the key wrap, so
 * the master key authenticates the size, the chunk size and which blob this is: nobody without it
 * can change them, and an envelope copied over another blob (by someone who can write the storage
 * but has no key) fails to open there. Version 1 envelopes, written before that binding, still
 * open without it; re-wrapping (key rotation) upgrades them to version 2. Chunk i uses the nonce
 * 0x00000000 || uint64(i), unique because the DEK is never used for another object, and the AAD
 * uint64(i) || final flag (1 for chunk n-1, else 0): a reordered, dropped or truncated chunk, or
 * a shortened blob, fails authentication.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import { pipeline, type Readable, Transform, type TransformCallback } from "node:stream";
import type { ByteRange } from "./blob-store.ts";
import { IntegrityError } from "../shared/errors.ts";

export const CHUNK_SIZE = 64 * 1024;
const MAGIC = Buffer.from("IMGE", "latin1");
const VERSION = 2;
/** Envelopes whose key wrap does not name their blob: readable, upgraded by rewrapHeader. */
const UNBOUND_VERSION = 1;
const KEY_SIZE = 32;
const IV_SIZE = 12;
const TAG_SIZE = 16;
const KEY_ID_SIZE = 8;
/** magic + version + key id + chunk size + plaintext size: the AAD of the key wrap. */
const AUTHENTICATED_SIZE = MAGIC.length + 1 + KEY_ID_SIZE + 4 + 8;
export const HEADER_SIZE = AUTHENTICATED_SIZE + IV_SIZE + KEY_SIZE + TAG_SIZE;
const CIPHER = "aes-256-gcm";
const KEY_ID_LABEL = "imgmesh storage master key id v1";

/** Short public fingerprint of a master key, recorded in headers to find the key that wrapped a DEK. */
export function masterKeyId(key: Buffer): string {
	return createHash("sha256").update(KEY_ID_LABEL).update(key).digest("hex").slice(0, KEY_ID_SIZE * 2);
}

/** The current master key (wraps new DEKs) and older ones (still unwrap what they wrapped). */
export class Keyring {
	readonly currentId: string;
	readonly #byId = new Map<string, Buffer>();

	constructor(current: Buffer, old: readonly Buffer[] = []) {
		for (const key of [current, ...old]) {
			if (key.length !== KEY_SIZE) throw new Error(`A master key must be ${KEY_SIZE} bytes, got ${key.length}`);
			this.#byId.set(masterKeyId(key), key);
		}
		this.currentId = masterKeyId(current);
	}

	/** The master key with this id; a wrong or missing master key is reported by its id. */
	key(id: string): Buffer {
		const key = this.#byId.get(id);
		if (!key) {
			throw new IntegrityError(
				`Encrypted blob was wrapped by master key ${id}, which is not configured (STORAGE_MASTER_KEY or STORAGE_OLD_MASTER_KEYS)`,
				{ keyId: id }
			);
		}
		return key;
	}
}

interface HeaderFields {
	version: number;
	keyId: string;
	chunkSize: number;
	plaintextSize: number;
}

/** An object whose header authenticated: its geometry and data key. */
export interface Envelope {
	chunkSize: number;
	plaintextSize: number;
	dataKey: Buffer;
}

function encodeAuthenticated(fields: HeaderFields): Buffer {
	const bytes = Buffer.alloc(AUTHENTICATED_SIZE);
	let offset = MAGIC.copy(bytes, 0);
	offset = bytes.writeUInt8(fields.version, offset);
	offset += Buffer.from(fields.keyId, "hex").copy(bytes, offset);
	offset = bytes.writeUInt32BE(fields.chunkSize, offset);
	bytes.writeBigUInt64BE(BigInt(fields.plaintextSize), offset);
	return bytes;
}

/** Decodes the authenticated part of a header; nothing in it is trusted until the unwrap succeeds. */
export function parseHeader(header: Buffer): HeaderFields {
	if (header.length !== HEADER_SIZE || !header.subarray(0, MAGIC.length).equals(MAGIC)) {
		throw new IntegrityError("Not an encrypted blob (bad header)");
	}
	let offset = MAGIC.length;
	const version = header.readUInt8(offset++);
	if (version !== VERSION && version !== UNBOUND_VERSION) throw new IntegrityError(`Unsupported encrypted blob version ${version}`);
	const keyId = header.toString("hex", offset, offset + KEY_ID_SIZE);
	offset += KEY_ID_SIZE;
	const chunkSize = header.readUInt32BE(offset);
	const plaintextSize = Number(header.readBigUInt64BE(offset + 4));
	return { version, keyId, chunkSize, plaintextSize };
}

/** The key wrap's AAD: the authenticated header bytes and, from version 2 on, the blob's key. */
function wrapAad(authenticated: Buffer, version: number, blobKey: string): Buffer {
	return version === UNBOUND_VERSION ? authenticated : Buffer.concat([authenticated, Buffer.from(blobKey, "utf8")]);
}

function wrapDataKey(dataKey: Buffer, fields: Omit<HeaderFields, "keyId" | "version">, keyring: Keyring, blobKey: string): Buffer {
	const authenticated = encodeAuthenticated({ ...fields, version: VERSION, keyId: keyring.currentId });
	const iv = randomBytes(IV_SIZE);
	const cipher = createCipheriv(CIPHER, keyring.key(keyring.currentId), iv).setAAD(wrapAad(authenticated, VERSION, blobKey));
	const wrapped = Buffer.concat([cipher.update(dataKey), cipher.final()]);
	return Buffer.concat([authenticated, iv, wrapped, cipher.getAuthTag()]);
}

/**
 * Authenticates the header of blob `blobKey` with the master key it names and returns the
 * object's data key. A header that belongs to another blob fails like a forged one.
 */
export function openEnvelope(header: Buffer, keyring: Keyring, blobKey: string): Envelope {
	const fields = parseHeader(header);
	const masterKey = keyring.key(fields.keyId);
	let offset = AUTHENTICATED_SIZE;
	const iv = header.subarray(offset, (offset += IV_SIZE));
	const wrapped = header.subarray(offset, (offset += KEY_SIZE));
	const tag = header.subarray(offset, offset + TAG_SIZE);
	try {
		const aad = wrapAad(header.subarray(0, AUTHENTICATED_SIZE), fields.version, blobKey);
		const decipher = createDecipheriv(CIPHER, masterKey, iv).setAAD(aad).setAuthTag(tag);
		const dataKey = Buffer.concat([decipher.update(wrapped), decipher.final()]);
		return { chunkSize: fields.chunkSize, plaintextSize: fields.plaintextSize, dataKey };
	} catch {
		throw new IntegrityError("Encrypted blob header failed authentication", { keyId: fields.keyId });
	}
}

/** The same header with its data key wrapped by the keyring's current master key, bound to its blob. */
export function rewrapHeader(header: Buffer, keyring: Keyring, blobKey: string): Buffer {
	const { dataKey, chunkSize, plaintextSize } = openEnvelope(header, keyring, blobKey);
	return wrapDataKey(dataKey, { chunkSize, plaintextSize }, keyring, blobKey);
}

/** Whether rotation must rewrite this header: wrapped by an older master key, or not bound to its blob. */
export function needsRewrap(header: Buffer, keyring: Keyring): boolean {
	const { keyId, version } = parseHeader(header);
	return keyId !== keyring.currentId || version !== VERSION;
}

/**
 * Small secrets kept in a database while work needs them (a Google API key of an import job):
 * AES-256-GCM under a key derived from the master key (HKDF, so these never share a key with the
 * DEK wraps), bound by the AAD to `context` (e.g. the job id: a sealed value copied to another
 * record does not open there). Layout, base64url: master key id (8) | IV (12) | ciphertext | tag (16).
 */
const SECRET_KEY_INFO = "imgmesh sealed secrets v1";

function secretKey(masterKey: Buffer): Buffer {
	return Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), SECRET_KEY_INFO, KEY_SIZE));
}

export function sealSecret(secret: string, context: string, keyring: Keyring): string {
	const keyId = Buffer.from(keyring.currentId, "hex");
	const iv = randomBytes(IV_SIZE);
	const cipher = createCipheriv(CIPHER, secretKey(keyring.key(keyring.currentId)), iv).setAAD(Buffer.from(context));
	const sealed = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
	return Buffer.concat([keyId, iv, sealed, cipher.getAuthTag()]).toString("base64url");
}

/** The secret sealSecret sealed for this context; IntegrityError when it was altered or moved. */
export function openSecret(sealed: string, context: string, keyring: Keyring): string {
	const bytes = Buffer.from(sealed, "base64url");
	if (bytes.length < KEY_ID_SIZE + IV_SIZE + TAG_SIZE) throw new IntegrityError("Sealed secret is truncated");
	const keyId = bytes.toString("hex", 0, KEY_ID_SIZE);
	const iv = bytes.subarray(KEY_ID_SIZE, KEY_ID_SIZE + IV_SIZE);
	const tagStart = bytes.length - TAG_SIZE;
	// Outside the try: a master key that is not configured is reported as such.
	const key = secretKey(keyring.key(keyId));
	try {
		const decipher = createDecipheriv(CIPHER, key, iv)
			.setAAD(Buffer.from(context))
			.setAuthTag(bytes.subarray(tagStart));
		return Buffer.concat([decipher.update(bytes.subarray(KEY_ID_SIZE + IV_SIZE, tagStart)), decipher.final()]).toString("utf8");
	} catch {
		throw new IntegrityError("Sealed secret failed authentication", { keyId });
	}
}

function chunkCount(envelope: Pick<Envelope, "chunkSize" | "plaintextSize">): number {
	return Math.max(1, Math.ceil(envelope.plaintextSize / envelope.chunkSize));
}

/** Bytes of header and chunks: anything else on disk means the object was truncated or padded. */
export function envelopeLength(envelope: Envelope): number {
	return HEADER_SIZE + envelope.plaintextSize + chunkCount(envelope) * TAG_SIZE;
}

function chunkNonce(index: number): Buffer {
	const nonce = Buffer.alloc(IV_SIZE);
	nonce.writeBigUInt64BE(BigInt(index), IV_SIZE - 8);
	return nonce;
}

function chunkAad(index: number, final: boolean): Buffer {
	const aad = Buffer.alloc(9);
	aad.writeBigUInt64BE(BigInt(index), 0);
	aad.writeUInt8(final ? 1 : 0, 8);
	return aad;
}

function sealChunk(dataKey: Buffer, index: number, final: boolean, plaintext: Buffer): Buffer {
	const cipher = createCipheriv(CIPHER, dataKey, chunkNonce(index)).setAAD(chunkAad(index, final));
	return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** Decrypts and verifies one whole chunk: no byte of it exists outside this function unless its tag is valid. */
function openChunk(dataKey: Buffer, index: number, final: boolean, sealed: Buffer): Buffer {
	const tagStart = sealed.length - TAG_SIZE;
	try {
		const decipher = createDecipheriv(CIPHER, dataKey, chunkNonce(index))
			.setAAD(chunkAad(index, final))
			.setAuthTag(sealed.subarray(tagStart));
		return Buffer.concat([decipher.update(sealed.subarray(0, tagStart)), decipher.final()]);
	} catch {
		throw new IntegrityError(`Encrypted chunk ${index} failed authentication`, { chunk: index });
	}
}

/**
 * Plaintext in, envelope out. The header must carry the plaintext size, which is known only at the
 * end, and an upload is never buffered whole: so the stream first emits HEADER_SIZE zero bytes as
 * a placeholder, and once it has ended `header` holds the real header, which the writer puts at
 * offset 0 before making the object durable and visible. The placeholder fails the magic check,
 * so an object whose header was never written cannot be mistaken for a valid one.
 */
export class EnvelopeEncryptor extends Transform {
	readonly #keyring: Keyring;
	readonly #blobKey: string;
	readonly #dataKey = randomBytes(KEY_SIZE);
	// A full chunk is sealed only when more bytes arrive: the last one must carry the final flag.
	readonly #pending = Buffer.alloc(CHUNK_SIZE);
	#pendingBytes = 0;
	#index = 0;
	#plaintextSize = 0;
	#header: Buffer | null = null;

	/** `blobKey`: the key the envelope is stored under, which its header is bound to. */
	constructor(keyring: Keyring, blobKey: string) {
		super();
		this.#keyring = keyring;
		this.#blobKey = blobKey;
		this.push(Buffer.alloc(HEADER_SIZE));
	}

	get header(): Buffer {
		if (!this.#header) throw new Error("The envelope header exists only once the plaintext has ended");
		return this.#header;
	}

	override _transform(data: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
		this.#plaintextSize += data.length;
		for (let offset = 0; offset < data.length; ) {
			if (this.#pendingBytes === CHUNK_SIZE) this.#sealPending(false);
			const copied = data.copy(this.#pending, this.#pendingBytes, offset);
			this.#pendingBytes += copied;
			offset += copied;
		}
		callback();
	}

	override _flush(callback: TransformCallback): void {
		this.#sealPending(true);
		this.#header = wrapDataKey(this.#dataKey, { chunkSize: CHUNK_SIZE, plaintextSize: this.#plaintextSize }, this.#keyring, this.#blobKey);
		callback();
	}

	override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
		this.#dataKey.fill(0);
		callback(error);
	}

	#sealPending(final: boolean): void {
		this.push(sealChunk(this.#dataKey, this.#index++, final, this.#pending.subarray(0, this.#pendingBytes)));
		this.#pendingBytes = 0;
	}
}

/**
 * Verifies and decrypts chunks first..last of an envelope, arriving as one ciphertext stream, and
 * emits the part of each that falls in the plaintext window [start, end].
 */
class ChunkDecryptor extends Transform {
	readonly #envelope: Envelope;
	readonly #window: { start: number; end: number };
	readonly #lastIndex: number;
	readonly #finalIndex: number;
	#index: number;
	#parts: Buffer[] = [];
	#buffered = 0;

	constructor(envelope: Envelope, firstIndex: number, lastIndex: number, window: { start: number; end: number }) {
		super();
		this.#envelope = envelope;
		this.#window = window;
		this.#index = firstIndex;
		this.#lastIndex = lastIndex;
		this.#finalIndex = chunkCount(envelope) - 1;
	}

	override _transform(data: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
		this.#parts.push(data);
		this.#buffered += data.length;
		try {
			this.#openCompleteChunks();
			callback();
		} catch (err) {
			callback(err as Error);
		}
	}

	override _flush(callback: TransformCallback): void {
		if (this.#index <= this.#lastIndex) {
			callback(new IntegrityError(`Encrypted blob is truncated at chunk ${this.#index}`, { chunk: this.#index }));
		} else {
			callback();
		}
	}

	#openCompleteChunks(): void {
		while (this.#index <= this.#lastIndex && this.#buffered >= this.#sealedLength(this.#index)) {
			const available = Buffer.concat(this.#parts, this.#buffered);
			const sealedLength = this.#sealedLength(this.#index);
			const rest = available.subarray(sealedLength);
			this.#parts = rest.length > 0 ? [rest] : [];
			this.#buffered = rest.length;
			const index = this.#index++;
			const plaintext = openChunk(this.#envelope.dataKey, index, index === this.#finalIndex, available.subarray(0, sealedLength));
			this.push(this.#inWindow(index, plaintext));
		}
		if (this.#index > this.#lastIndex && this.#buffered > 0) throw new IntegrityError("Encrypted blob has trailing bytes");
	}

	#sealedLength(index: number): number {
		const { chunkSize, plaintextSize } = this.#envelope;
		return Math.min(chunkSize, plaintextSize - index * chunkSize) + TAG_SIZE;
	}

	#inWindow(index: number, plaintext: Buffer): Buffer {
		const chunkStart = index * this.#envelope.chunkSize;
		const from = Math.max(this.#window.start - chunkStart, 0);
		const to = Math.min(this.#window.end - chunkStart + 1, plaintext.length);
		return plaintext.subarray(from, Math.max(from, to));
	}
}

/** Where chunk `index` starts in the envelope. */
function chunkOffset(envelope: Envelope, index: number): number {
	return HEADER_SIZE + index * (envelope.chunkSize + TAG_SIZE);
}

/**
 * Streams the plaintext of `range` (valid for the envelope; the whole object when absent),
 * reading and decrypting only the chunks it overlaps. `readCiphertext(start, end)` supplies the
 * envelope's bytes start..end (inclusive) from wherever the backend keeps them.
 */
export function decryptRange(
	envelope: Envelope,
	range: ByteRange | undefined,
	readCiphertext: (start: number, end: number) => Readable
): Readable {
	const window = range ?? { start: 0, end: envelope.plaintextSize - 1 };
	const firstIndex = range ? Math.floor(range.start / envelope.chunkSize) : 0;
	const lastIndex = range ? Math.floor(range.end / envelope.chunkSize) : chunkCount(envelope) - 1;
	const ciphertextEnd = Math.min(chunkOffset(envelope, lastIndex + 1), envelopeLength(envelope)) - 1;
	const decryptor = new ChunkDecryptor(envelope, firstIndex, lastIndex, window);
	// Errors and early destruction travel both ways, so the source is always released.
	return pipeline(readCiphertext(chunkOffset(envelope, firstIndex), ciphertextEnd), decryptor, () => {});
}
