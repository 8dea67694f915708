/**
 * Secrets come from the environment; any that is missing is generated once into
 * DATA_DIR/secrets.json (mode 0600) and reused on every restart, so no secret ever has a
 * hard-coded default and an embedded install needs no setup.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseSigningKeys, type SigningKey } from "../models/transform/signing.ts";

export interface Secrets {
	jwtSecret: string;
	storageMasterKey: Buffer;
	storageOldMasterKeys: Buffer[];
	adminPassword: string;
	/** Keys of signed transform URLs, the signing one first (models/transform/signing.ts). */
	transformSigningKeys: SigningKey[];
}

interface StoredSecrets {
	jwtSecret?: string;
	storageMasterKey?: string;
	adminPassword?: string;
	transformSigningKeys?: string;
}

const SECRETS_FILE = "secrets.json";

/** Accepts a 32-byte key written as 64 hex digits or as base64. */
function parseMasterKey(name: string, raw: string): Buffer {
	const trimmed = raw.trim();
	const key = /^[0-9a-f]{64}$/i.test(trimmed) ? Buffer.from(trimmed, "hex") : Buffer.from(trimmed, "base64");
	if (key.length !== 32) throw new Error(`${name} must be 32 bytes, as 64 hex digits or base64`);
	return key;
}

function readStored(file: string): StoredSecrets {
	if (!existsSync(file)) return {};
	return JSON.parse(readFileSync(file, "utf8")) as StoredSecrets;
}

export function loadOrCreateSecrets(dataDir: string, env: NodeJS.ProcessEnv): Secrets {
	const file = join(dataDir, SECRETS_FILE);
	const stored = readStored(file);
	let changed = false;
	const pick = (envValue: string | undefined, key: keyof StoredSecrets, generate: () => string): string => {
		if (envValue) return envValue;
		if (!stored[key]) {
			stored[key] = generate();
			changed = true;
		}
		return stored[key]!;
	};

	const jwtSecret = pick(env.JWT_SECRET, "jwtSecret", () => randomBytes(48).toString("base64url"));
	const masterKey = pick(env.STORAGE_MASTER_KEY, "storageMasterKey", () => randomBytes(32).toString("hex"));
	const adminPassword = pick(env.ADMIN_PASSWORD, "adminPassword", () => randomBytes(18).toString("base64url"));
	// A key id of its own, so a key configured later never shares an id with the generated one.
	const signingKeys = pick(env.TRANSFORM_SIGNING_KEYS, "transformSigningKeys", () => `g${randomBytes(4).toString("hex")}:${randomBytes(32).toString("base64url")}`);
	if (jwtSecret.length < 32) throw new Error("JWT_SECRET must be at least 32 characters");

	if (changed) {
		writeFileSync(file, JSON.stringify(stored, null, "\t") + "\n", { mode: 0o600 });
		chmodSync(file, 0o600);
	}
	return {
		jwtSecret,
		storageMasterKey: parseMasterKey("STORAGE_MASTER_KEY", masterKey),
		storageOldMasterKeys: (env.STORAGE_OLD_MASTER_KEYS ?? "")
			.split(",")
			.map(key => key.trim())
			.filter(Boolean)
			.map(key => parseMasterKey("STORAGE_OLD_MASTER_KEYS", key)),
		adminPassword,
		transformSigningKeys: parseSigningKeys(signingKeys)
	};
}
