/**
 * What every MongoDB backend shares: one client per repository, indexes made once at start, and
 * the translation of an unreachable server into UnavailableError (503, retryable).
 *
 * The server-selection timeout is short on purpose: when MongoDB is down a request fails in about
 * that time instead of hanging until the gateway's timeout, and readiness probes (2 s) see it.
 */
import {
	type Collection,
	type Db,
	type Document,
	type IndexDescription,
	MongoClient,
	MongoNetworkError,
	MongoNotConnectedError,
	MongoServerError,
	MongoServerSelectionError,
	MongoTopologyClosedError
} from "mongodb";
import { UnavailableError } from "../shared/errors.ts";

export interface MongoOptions {
	url: string;
	/** Server selection and connect timeout, in ms. */
	timeoutMs: number;
}

const DUPLICATE_KEY = 11000;

export function isDuplicateKey(err: unknown): err is MongoServerError {
	return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

/** Socket errors the driver sometimes lets through unwrapped (a write to a socket the server closed). */
const NETWORK_ERROR_CODES = new Set(["EPIPE", "ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"]);

/** Pool-cleared errors are MongoNetworkErrors too. */
function isUnreachable(err: unknown): boolean {
	return (
		NETWORK_ERROR_CODES.has((err as NodeJS.ErrnoException).code ?? "") ||
		err instanceof MongoNetworkError ||
		err instanceof MongoServerSelectionError ||
		err instanceof MongoNotConnectedError ||
		err instanceof MongoTopologyClosedError
	);
}

/** Regular expression source matching `text` literally. */
export function literalPattern(text: string): string {
	return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

const NAMESPACE_NOT_FOUND = 26;

async function listIndexes(collection: Collection<any>): Promise<Document[]> {
	try {
		return await collection.listIndexes().toArray();
	} catch (err) {
		if (err instanceof MongoServerError && err.code === NAMESPACE_NOT_FOUND) return [];
		throw err;
	}
}

/** The name MongoDB gives an index by default: `field_direction` pairs joined by `_`. */
function indexName(index: IndexDescription): string {
	return index.name ?? Object.entries(index.key).map(([field, direction]) => `${field}_${String(direction)}`).join("_");
}

/**
 * Base of the MongoDB repositories. Connecting and `prepare` (index creation) start at construction
 * and run again before the next call if they failed, so a backend started while MongoDB is down
 * recovers by itself once it is back.
 */
export abstract class MongoBackend {
	protected readonly client: MongoClient;
	protected readonly db: Db;
	readonly #what: string;
	#prepared: Promise<void> | null = null;

	constructor(options: MongoOptions, what: string) {
		this.client = new MongoClient(options.url, {
			serverSelectionTimeoutMS: options.timeoutMs,
			connectTimeoutMS: options.timeoutMs
		});
		this.db = this.client.db();
		this.#what = what;
		// Started right away so indexes exist before the first request (a failure is retried by
		// run()), but after the subclass constructor has set up the collections prepare() uses.
		queueMicrotask(() => this.#ensurePrepared().catch(() => {}));
	}

	/** Creates the collections' indexes; must be idempotent. */
	protected abstract prepare(): Promise<void>;

	/**
	 * Creates the indexes the collection lacks, by their default names. Only the missing ones:
	 * FerretDB v1 drops the connection when createIndexes repeats an existing index.
	 */
	protected async ensureIndexes(collection: Collection<any>, indexes: IndexDescription[]): Promise<void> {
		const existing = new Set((await listIndexes(collection)).map(index => index.name as string));
		const missing = indexes.filter(index => !existing.has(indexName(index)));
		if (missing.length > 0) await collection.createIndexes(missing.map(index => ({ ...index, name: indexName(index) })));
	}

	/** Runs one database call after preparation, with an unreachable server reported as 503. */
	protected async run<T>(work: () => Promise<T>): Promise<T> {
		try {
			await this.#ensurePrepared();
			return await work();
		} catch (err) {
			if (isUnreachable(err)) throw new UnavailableError(`${this.#what} is unavailable: ${(err as Error).message}`);
			throw err;
		}
	}

	async ping(): Promise<boolean> {
		return this.run(async () => (await this.db.command({ ping: 1 })).ok === 1);
	}

	async close(): Promise<void> {
		await this.client.close();
	}

	#ensurePrepared(): Promise<void> {
		// Connecting explicitly: after a failed first connection the driver keeps a closed topology
		// and fails every later operation with "Topology is closed"; connect() opens a new one.
		this.#prepared ??= this.client.connect().then(() => this.prepare()).catch(err => {
			this.#prepared = null;
			throw err;
		});
		return this.#prepared;
	}
}
