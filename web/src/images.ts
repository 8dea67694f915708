/**
 * Showing images that may be private: bytes are fetched with the Bearer token and shown through
 * object URLs. The grid asks for the 240 px rendition, or the 720 px one when the tile is drawn
 * wider than 240 device pixels (the choice `srcset` would make), and only once a tile nears the
 * viewport. Images without renditions (a server without the processing pipeline) and servers
 * without the thumbnail endpoint (404) get the original instead. Until an image has loaded,
 * its tile shows the blurred ThumbHash placeholder (placeholder.ts).
 */
import type { PublicImage } from "../../models/images/public-image.ts";
import { fetchBlob } from "./api.ts";

const objectUrls = new Set<string>();
/** Whether the node serves renditions: learnt from the first request, so at most one 404. */
let thumbnails: Promise<boolean> | undefined;

export function imageAlt(image: Pick<PublicImage, "name" | "tags">): string {
	const tags = image.tags.map(tag => tag.label).slice(0, 5);
	return tags.length ? `${image.name} (${tags.join(", ")})` : image.name;
}

async function fetchRendition(image: PublicImage, size: 240 | 720): Promise<Blob> {
	const original = () => fetchBlob(`/api/images/${image.id}/content`);
	if (!image.renditions.length) return original();
	const thumbnail = () => fetchBlob(`/api/images/${image.id}/thumbnail?size=${size}`);
	if (!thumbnails) {
		const first = thumbnail();
		thumbnails = first.then(
			() => true,
			(err: { status?: number }) => err.status !== 404
		);
		return first.catch(async err => ((await thumbnails) ? Promise.reject(err) : original()));
	}
	return (await thumbnails) ? thumbnail() : original();
}

/** The 240 or 720 rendition, or the original when the image or the node has no renditions. */
export async function renditionUrl(image: PublicImage, size: 240 | 720): Promise<string> {
	const url = URL.createObjectURL(await fetchRendition(image, size));
	objectUrls.add(url);
	return url;
}

/** Frees every object URL made so far (a page calls this when it is left). */
export function releaseImages(): void {
	for (const url of objectUrls) URL.revokeObjectURL(url);
	objectUrls.clear();
}

const pending = new WeakMap<Element, PublicImage>();
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

async function loadInto(img: HTMLImageElement, image: PublicImage): Promise<void> {
	const size = img.getBoundingClientRect().width * devicePixelRatio > 240 ? 720 : 240;
	try {
		const url = await renditionUrl(image, size);
		// Until then the tile shows the blurred placeholder behind a transparent <img>.
		img.addEventListener("load", () => img.classList.add("loaded"), { once: true });
		img.src = url;
		img.dataset.size = String(size);
	} catch {
		img.classList.add("broken");
	}
}

/** Loads `image` into `img` when it scrolls near the viewport. */
export function lazyImage(img: HTMLImageElement, image: PublicImage): void {
	pending.set(img, image);
	observer.observe(img);
}
