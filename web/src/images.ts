/**
 * Showing images that may be private: bytes are fetched with the Bearer token and shown through
 * object URLs. The grid asks for the 240 px rendition, or the 720 px one when the tile is drawn
 * wider than 240 device pixels (the choice `srcset` would make), and only once a tile nears the
 * viewport. Images without renditions (a server without the processing pipeline) and servers
 * without the thumbnail endpoint (404) get the original instead.
 */
import { fetchBlob, type Image } from "./api.ts";

const objectUrls = new Set<string>();
let thumbnailsMissing = false;

export function imageAlt(image: Image): string {
	const tags = image.tags.map(tag => tag.label).slice(0, 5);
	return tags.length ? `${image.name} (${tags.join(", ")})` : image.name;
}

/** The 240 or 720 rendition, or the original when the server has no renditions endpoint. */
export async function renditionUrl(image: Image, size: 240 | 720): Promise<string> {
	let blob: Blob;
	if (thumbnailsMissing || !image.renditions?.length) blob = await fetchBlob(`/api/images/${image.id}/content`);
	else {
		try {
			blob = await fetchBlob(`/api/images/${image.id}/thumbnail?size=${size}`);
		} catch (err) {
			if ((err as { status?: number }).status !== 404) throw err;
			blob = await fetchBlob(`/api/images/${image.id}/content`);
			thumbnailsMissing = true;
		}
	}
	const url = URL.createObjectURL(blob);
	objectUrls.add(url);
	return url;
}

/** Frees every object URL made so far (a page calls this when it is left). */
export function releaseImages(): void {
	for (const url of objectUrls) URL.revokeObjectURL(url);
	objectUrls.clear();
}

const pending = new WeakMap<Element, Image>();
const observer = new IntersectionObserver(
	entries => {
		for (const entry of entries) {
			if (!entry.isIntersecting) continue;
			observer.unobserve(entry.target);
			const image = pending.get(entry.target);
			if (image) void loadInto(entry.target as HTMLImageElement, image);
		}
	},
	{ rootMargin: "300px" }
);

async function loadInto(img: HTMLImageElement, image: Image): Promise<void> {
	const size = img.getBoundingClientRect().width * devicePixelRatio > 240 ? 720 : 240;
	try {
		img.src = await renditionUrl(image, size);
		img.dataset.size = String(size);
	} catch {
		img.classList.add("broken");
	}
}

/** Loads `image` into `img` when it scrolls near the viewport. */
export function lazyImage(img: HTMLImageElement, image: Image): void {
	pending.set(img, image);
	observer.observe(img);
}
