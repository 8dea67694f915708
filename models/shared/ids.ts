import { randomBytes } from "node:crypto";

/** A random, URL-safe id (128 bits): ids are never chosen by clients. */
export function newId(): string {
	return randomBytes(16).toString("base64url");
}

export function nowIso(): string {
	return new Date().toISOString();
}
