/**
 * The image as the API shows it: everything but the internal storage keys. The web app imports
 * these types too (type-only), so the client and the server cannot drift apart; this file must
 * therefore import nothing but pure-type files (image-types.ts), so that the web app compiles
 * without Node's types.
 */
import type { ImageDoc, Rendition } from "./image-types.ts";

export type PublicRendition = Omit<Rendition, "blob">;
export type PublicImage = Omit<ImageDoc, "blob" | "renditions"> & { renditions: PublicRendition[] };

export function toPublicImage(doc: ImageDoc): PublicImage {
	const { blob: _internal, renditions, ...rest } = doc;
	return { ...rest, renditions: renditions.map(({ blob: _key, ...rendition }) => rendition) };
}

/** The payload of every image.* event. */
export function imageEvent(doc: ImageDoc): { id: string; owner: string } {
	return { id: doc.id, owner: doc.owner };
}
