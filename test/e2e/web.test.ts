/**
 * The browser app, driven in Debian's Chromium by playwright-core against a real node: the
 * gateway's asset serving, then a user's whole journey (register into an empty library, upload
 * with progress, the timeline and its scrubber, blurred placeholders, selection and bulk actions,
 * the full-screen viewer, search, detail, download, public link, import, admin, delete). Every
 * page is photographed at 390 and 1440 px into test/artifacts/; the run fails on any console
 * error or any request to a host other than the loopback one.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import jwt from "jsonwebtoken";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import sharp from "sharp";
import { ARTIFACTS, buildWebApp, chromiumSkipReason, launchChromium, LOCALE } from "../helpers/browser.ts";
import { Client } from "../helpers/client.ts";
import { Gate, ImageHost, labelledJpeg } from "../helpers/image-host.ts";
import { poisonJpeg, settled } from "../helpers/jobs.ts";
import { ADMIN_PASSWORD, SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const JWT_SECRET = "web-test-secret-web-test-secret-0123456789";
/** The classifier model when the shared models are there: images then get automatic tags. */
const MODEL = join(ROOT, "config", "models", "squeezenet-fp16.json");
const HAS_MODEL = existsSync(MODEL) && existsSync(join(ROOT, "..", "shared", "models", "SqueezeNet_fp16.onnx"));
/**
 * The six real photos of the shared set (../shared/images/README.md), named: photos added to the
 * set later (dog-gps-exif.jpg is dog.jpg with camera and GPS metadata) must not change what the
 * gallery shows, or a filter for "dog" would find two tiles.
 */
const PHOTOS = ["binoculars-cc0.jpeg", "chelsea.png", "dog.jpg", "hummingbird.jpg", "kitten_224.png", "mug-cc0.jpeg"];
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1440, height: 900 };
const VIEWPORTS = [PHONE, DESKTOP];
/** Narrower than any screenshot: nothing may stick out sideways at this width either. */
const SMALLEST = { width: 360, height: 740 };
/**
 * Photos with an EXIF date, uploaded next to the shared ones (which have none, so they are
 * placed by upload time): the timeline groups them by month and day of when they were taken.
 */
const DATED = [
	{ name: "beach", takenAt: "2023:04:05 10:00:00", colour: "#2a9df4" },
	{ name: "dunes", takenAt: "2023:04:05 16:30:00", colour: "#e0b050" },
	{ name: "harbour", takenAt: "2023:04:02 09:00:00", colour: "#3c6e71", tags: "sea" },
	{ name: "snow", takenAt: "2022:12:24 12:00:00", colour: "#c8d6e5" },
	{ name: "forest", takenAt: "2021:03:14 08:00:00", colour: "#2e7d32" },
	{ name: "lake", takenAt: "2021:03:01 18:00:00", colour: "#1565c0" }
];

/** A 480x320 JPEG of a colour with a diagonal shade, taken at `takenAt` by "TestCam Model 7". */
async function datedJpeg(takenAt: string, colour: string): Promise<Buffer> {
	const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="320"><defs><linearGradient id="g" x2="1" y2="1"><stop offset="0" stop-color="${colour}"/><stop offset="1" stop-color="#111"/></linearGradient></defs><rect width="480" height="320" fill="url(#g)"/><circle cx="340" cy="110" r="60" fill="#fff" fill-opacity=".55"/></svg>`;
	return sharp(Buffer.from(svg))
		.jpeg({ quality: 85 })
		.withExif({ IFD0: { Make: "TestCam", Model: "Model 7" }, IFD2: { DateTimeOriginal: takenAt } })
		.toBuffer();
}

/** Whether any of the element is on screen. */
async function onScreen(locator: Locator): Promise<boolean> {
	return locator.evaluate((el: any) => {
		const box = el.getBoundingClientRect();
		return box.bottom > 0 && box.top < el.ownerDocument.defaultView.innerHeight;
	});
}

/**
 * /api/ready can answer 200 a moment before the gateway has regenerated its REST aliases for
 * every service (moleculer-web debounces that by 500 ms): wait until the users routes exist.
 */
async function routesUp(server: RunningServer): Promise<void> {
	for (let i = 0; i < 100 && (await fetch(`${server.url}/api/auth/me`)).status === 404; i++) await new Promise(resolve => setTimeout(resolve, 100));
}

function sha256(bytes: Uint8Array): string {
	return createHash("sha256").update(bytes).digest("hex");
}

describe("web app served by the gateway", () => {
	let server: RunningServer;

	before(async () => {
		buildWebApp();
		server = await startServer();
	});
	after(() => server.stop());

	it("answers client routes with index.html, never cached, and hashed assets cached for a year", async () => {
		const page = await fetch(`${server.url}/images/some-id`, { headers: { accept: "text/html" } });
		assert.equal(page.status, 200);
		assert.equal(page.headers.get("cache-control"), "no-cache");
		assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
		const html = await page.text();
		const asset = /src="(\/assets\/[0-9a-f]{12}\/main\.js)"/.exec(html)?.[1];
		assert.ok(asset, html);
		const script = await fetch(server.url + asset);
		assert.equal(script.status, 200);
		assert.equal(script.headers.get("cache-control"), "public, max-age=31536000, immutable");
		assert.match(script.headers.get("content-type") ?? "", /javascript/);
		// thumbhash's module ships among the hashed assets, as it is, with its licence named.
		const vendored = await fetch(server.url + asset.replace("main.js", "vendor/thumbhash.js"));
		assert.equal(vendored.status, 200);
		assert.match(vendored.headers.get("content-type") ?? "", /javascript/);
		assert.match(await vendored.text(), /^\/\*! thumbhash \d+\.\d+\.\d+ \(MIT licence\) \*\/\n[^]*export function thumbHashToDataURL/);
	});

	it("keeps API and missing-file 404s as JSON errors, not the app", async () => {
		for (const path of ["/api/nope", "/api/index.html", "/p/missing/more", "/missing.js"]) {
			const res = await fetch(server.url + path, { headers: { accept: "text/html" } });
			assert.equal(res.status, 404, path);
			assert.equal(((await res.json()) as { code: number }).code, 404, path);
		}
		const post = await fetch(`${server.url}/gallery`, { method: "POST", headers: { accept: "text/html" } });
		assert.equal(post.status, 404);
	});
});

describe("web app in a browser", { skip: chromiumSkipReason() }, () => {
	let server: RunningServer;
	/** A local web site and fake Google Drive API for the imports. */
	let host: ImageHost;
	let browser: Browser;
	let context: BrowserContext;
	let page: Page;
	const consoleErrors: string[] = [];
	const foreignRequests: string[] = [];
	const username = "webuser";
	const password = "correct horse battery";
	/** Whether the node in main has these features yet; each step that needs one says when it skips. */
	const features = { thumbnails: false, transforms: false, imports: false };
	/** Paths whose 404 the test provokes (a photo deleted behind the app's back). */
	const gone: string[] = [];
	/**
	 * Chromium logs every 4xx answer as a console error. These ones the test provokes on purpose:
	 * the fake JPEG the server refuses (415), the disabled and expired tokens (401), the photos in
	 * `gone`, and on a node without the thumbnail endpoint the one probe after which the app shows
	 * originals (404).
	 */
	const provoked = (text: string, url: string) =>
		new URL(url).pathname.startsWith("/api/") &&
		(/status of (415|401)\b/.test(text) || (/status of 404\b/.test(text) && (gone.includes(new URL(url).pathname) || (!features.thumbnails && url.includes("/thumbnail?")))));
	/** The signed-in user over REST, to check what the app did. */
	let owned: Client;
	/** Ids of the photos by name. */
	const ids = new Map<string, string>();

	function watch(target: BrowserContext): void {
		target.on("request", request => {
			const url = new URL(request.url());
			if (!["blob:", "data:"].includes(url.protocol) && url.hostname !== "127.0.0.1") foreignRequests.push(request.url());
		});
		target.on("page", watched => {
			watched.on("console", message => {
				if (message.type() === "error" && !provoked(message.text(), message.location().url || watched.url())) consoleErrors.push(`${message.location().url}: ${message.text()}`);
			});
			watched.on("pageerror", err => consoleErrors.push(`${watched.url()}: ${err.message}`));
		});
	}

	/**
	 * Screenshots at both widths (the whole page, or what the screen shows: a fixed bar or a modal
	 * viewer only looks right that way), and the accessibility basics: every control labelled, every image with alt text. */
	async function shoot(name: string, { fullPage = true } = {}): Promise<void> {
		// Callbacks run in the page: `any` stands for DOM types this Node project does not load.
		const unlabelled = await page.locator("input, select, textarea").evaluateAll((els: any[]) => els.filter(el => !el.labels?.length && !el.getAttribute("aria-label")).map(el => el.outerHTML));
		assert.deepEqual(unlabelled, [], `unlabelled controls on ${name}`);
		assert.equal(await page.locator("main img:not([alt]), dialog img:not([alt])").count(), 0, `images without alt on ${name}`);
		for (const viewport of [SMALLEST, ...VIEWPORTS]) {
			await page.setViewportSize(viewport);
			// Nothing may stick out sideways at a phone's width.
			const overflow = await page.locator("html").evaluate((el: any) => el.scrollWidth - el.clientWidth);
			assert.ok(overflow <= 0, `${name} scrolls sideways by ${overflow}px at ${viewport.width}px`);
			if (viewport !== SMALLEST) await page.screenshot({ path: join(ARTIFACTS, `${name}-${viewport.width}.png`), fullPage });
		}
	}

	/** The tile of the photo named `name` (its caption, exactly). */
	const tileOf = (name: string) => page.locator(".tile").filter({ has: page.locator(".caption", { hasText: new RegExp(`^${name}$`) }) });
	const viewer = () => page.getByRole("dialog", { name: "Photo viewer" });
	const bar = () => page.getByRole("region", { name: "Selection" });
	/** Names of the selected photos, in the order shown. */
	const selectedNames = () => page.locator(".tile.selected .caption").allInnerTexts();

	/** Opens a photo's page: its tile opens the viewer, whose info panel links to the page. */
	async function openDetail(name: string): Promise<void> {
		await page.goto(`${server.url}/`);
		await tileOf(name).getByRole("link").click();
		await viewer().waitFor();
		await page.keyboard.press("i");
		await viewer().getByRole("link", { name: "Details & editing" }).click();
		await page.getByRole("heading", { level: 1, name }).waitFor();
	}

	/** A new browser context at `viewport`, signed in through the sign-in page. */
	async function signedIn(name: string, secret: string, viewport = DESKTOP): Promise<{ context: BrowserContext; page: Page }> {
		const context = await browser.newContext({ viewport, ...LOCALE });
		context.setDefaultTimeout(15_000);
		watch(context);
		const page = await context.newPage();
		await page.goto(`${server.url}/signin`);
		await page.getByLabel("Username").fill(name);
		await page.getByLabel("Password").fill(secret);
		await page.getByRole("button", { name: "Sign in" }).click();
		await page.waitForURL(url => url.pathname === "/");
		return { context, page };
	}

	/** The photos page, once every photo is listed. */
	async function library(count: number): Promise<void> {
		await page.goto(`${server.url}/`);
		await page.getByText(`${count} photos`, { exact: true }).waitFor();
	}

	before(async () => {
		mkdirSync(ARTIFACTS, { recursive: true });
		buildWebApp();
		host = await new ImageHost().start();
		host.folders.set("web-folder", { files: new Map([["drive-a", await labelledJpeg("drive a")], ["drive-b", await labelledJpeg("drive b")]]), subfolders: [] });
		server = await startServer({ JWT_SECRET, IMPORT_ALLOW_PRIVATE_NETWORKS: "true", GOOGLE_DRIVE_API_URL: `${host.url}/drive/v3`, ...(HAS_MODEL ? { CLASSIFIER_MODEL: MODEL } : {}) });
		await routesUp(server);
		const probe = await new Client(server.url).register("probe-user");
		features.imports = (await probe.get("/api/imports")).status !== 404;
		const admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
		assert.equal((await admin.post("/api/categories", { name: "Animals" })).status, 201);
		browser = await launchChromium();
		context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true, ...LOCALE });
		context.setDefaultTimeout(15_000);
		watch(context);
		page = await context.newPage();
	});

	after(async () => {
		await browser?.close();
		await server?.stop();
		await host?.stop();
	});

	it("sends a signed-out visitor to sign in, and registers into an empty library that offers the upload", async () => {
		await page.goto(`${server.url}/`);
		await page.getByRole("heading", { name: "Sign in" }).waitFor();
		assert.equal(new URL(page.url()).pathname, "/signin");
		await shoot("signin");
		await page.getByRole("link", { name: "Create an account" }).click();
		await page.getByLabel("Username").fill(username);
		await page.getByLabel("Password").fill(password);
		await shoot("register");
		await page.getByRole("button", { name: "Create account" }).click();
		await page.waitForFunction(() => sessionStorage.getItem("imgmesh.session"));
		assert.equal(await page.evaluate(() => JSON.parse(sessionStorage.getItem("imgmesh.session")!).user.username), username);
		owned = await new Client(server.url).login(username, password);
		await page.getByRole("heading", { name: "Your library is empty" }).waitFor();
		await page.getByRole("link", { name: "Upload your first photos" }).waitFor();
		assert.equal(await page.locator(".tile").count(), 0);
		await shoot("empty-library");
	});

	it("uploads the photos with progress, keeping refused files with their error and a retry", async () => {
		await page.getByRole("navigation").getByRole("link", { name: "Upload" }).click();
		await page.getByRole("heading", { name: "Upload images" }).waitFor();
		await page.locator("#pick-files").setInputFiles(PHOTOS.map(name => ({ name, mimeType: name.endsWith(".png") ? "image/png" : "image/jpeg", buffer: readFileSync(join(SHARED_IMAGES, name)) })));
		// Two more dropped on the drop zone.
		const dropped = await page.evaluateHandle(() => {
			const G = globalThis as any;
			const transfer = new G.DataTransfer();
			transfer.items.add(new G.File(["not an image"], "notes.txt", { type: "text/plain" }));
			transfer.items.add(new G.File(["this is no JPEG"], "broken.jpg", { type: "image/jpeg" }));
			return transfer;
		});
		await page.locator(".dropzone").dispatchEvent("drop", { dataTransfer: dropped });
		const items = page.locator(".upload");
		await items.nth(PHOTOS.length + 1).waitFor();
		// The client-side check refuses the text file before any upload, with no retry to offer.
		const notes = items.filter({ hasText: "notes.txt" });
		assert.equal(await notes.getAttribute("data-state"), "failed");
		assert.match(await notes.locator(".message").innerText(), /Not an image type/);
		assert.equal(await notes.getByRole("button", { name: "Retry" }).isVisible(), false);
		await items.filter({ hasText: "dog.jpg" }).getByLabel("Tags").fill("doggo, good boy");
		await items.filter({ hasText: "dog.jpg" }).getByLabel("Description").fill("In the park #sunny");
		await shoot("upload-ready");
		await page.getByRole("button", { name: "Upload all" }).click();
		await page.locator(".upload-total", { hasText: `${PHOTOS.length} of ${PHOTOS.length + 2} uploaded, 2 failed` }).waitFor();
		for (const name of PHOTOS) {
			const item = items.filter({ hasText: name });
			assert.equal(await item.getAttribute("data-state"), "done", name);
			const progress = item.locator("progress");
			assert.equal(await progress.evaluate((el: any) => el.value), await progress.evaluate((el: any) => el.max), name);
		}
		assert.equal(await page.getByLabel("Total upload progress").evaluate((el: any) => el.value), 1);
		// The server refused the fake JPEG: kept with the server's own message and a retry button.
		const broken = items.filter({ hasText: "broken.jpg" });
		assert.equal(await broken.getAttribute("data-state"), "failed");
		assert.match(await broken.locator(".message").innerText(), /format|image/i);
		const [retried] = await Promise.all([page.waitForResponse(res => res.url().endsWith("/api/images") && res.request().method() === "POST"), broken.getByRole("button", { name: "Retry" }).click()]);
		assert.equal(retried.status(), 415);
		await page.locator('.upload[data-state="failed"]', { hasText: "broken.jpg" }).waitFor();
		await shoot("upload-done");
		const list = await owned.get("/api/images");
		assert.equal(list.body.total, PHOTOS.length);
		const first = list.body.items[0].id;
		features.thumbnails = (await owned.download(`/api/images/${first}/thumbnail?size=240`)).status !== 404;
		features.transforms = (await owned.download(`/api/images/${first}/content.webp`)).status !== 404;

		// The dated photos, over REST: ready (EXIF read) before the timeline is looked at.
		for (const photo of DATED) {
			const res = await owned.upload([{ name: `${photo.name}.jpg`, bytes: await datedJpeg(photo.takenAt, photo.colour), type: "image/jpeg" }], { name: photo.name, ...(photo.tags ? { tags: photo.tags } : {}) });
			assert.equal(res.status, 201);
			ids.set(photo.name, res.body.images[0].id);
		}
		for (const image of (await owned.get("/api/images?limit=100")).body.items) {
			ids.set(image.name, image.id);
			assert.equal((await settled(owned, image.id)).status, "ready", image.name);
		}
	});

	const TOTAL = PHOTOS.length + DATED.length;
	/** This month, as the page names it: the shared photos have no EXIF date, so they are placed by upload time. */
	const thisMonth = () => new Date().toLocaleDateString(LOCALE.locale, { month: "long", year: "numeric", timeZone: LOCALE.timezoneId });

	it("shows the library as a timeline by date taken, months and days, with a scrubber that jumps", async () => {
		await page.setViewportSize(PHONE);
		await library(TOTAL);
		const months = [thisMonth(), "April 2023", "December 2022", "March 2021"];
		assert.deepEqual(await page.locator(".month h2").allInnerTexts(), months);
		// Days newest first, and in a day the photos newest first.
		assert.deepEqual(await page.locator(".month[data-month='2023-04'] .day h3").allInnerTexts(), ["Wed, April 5", "Sun, April 2"]);
		assert.deepEqual(await page.locator(".day[data-day='2023-04-05'] .caption").allInnerTexts(), ["dunes", "beach"]);
		assert.deepEqual(await page.locator(".month[data-month='2021-03'] .caption").allInnerTexts(), ["forest", "lake"]);
		assert.equal(await page.locator(`.month >> nth=0 >> .tile`).count(), PHOTOS.length);

		// The scrubber: one mark a month, newest first; clicking one brings that month into view.
		const rail = page.getByRole("navigation", { name: "Timeline" });
		assert.deepEqual(await rail.getByRole("button").evaluateAll((els: any[]) => els.map(el => el.getAttribute("aria-label"))), months);
		const march = page.getByRole("heading", { level: 2, name: "March 2021" });
		assert.equal(await onScreen(march), false, "March 2021 starts below the fold");
		await rail.getByRole("button", { name: "March 2021" }).click();
		await page.waitForFunction(() => (globalThis as any).scrollY > 0);
		assert.equal(await onScreen(march), true, "the scrubber brought March 2021 into view");
		const position = await page.evaluate(() => {
			const G = globalThis as any;
			return { top: G.document.querySelector("#month-2021-03").getBoundingClientRect().top, atEnd: G.scrollY + G.innerHeight >= G.document.documentElement.scrollHeight - 2 };
		});
		assert.ok(position.top < 60 || position.atEnd, `March 2021 is at ${position.top}px`);
		assert.equal(await rail.getByRole("button", { name: "March 2021" }).getAttribute("aria-current"), "", "the rail marks the month in view");
		// The first photo of that month has the focus, for the keyboard.
		assert.equal(await tileOf("forest").getByRole("link").evaluate((el: any) => el === el.ownerDocument.activeElement), true);
		await page.evaluate(() => (globalThis as any).scrollTo(0, 0));
		await page.mouse.move(0, PHONE.height - 1);
		await shoot("timeline");
	});

	it("starts the photos in the first half of a phone's screen, with the filters folded away", async () => {
		await page.setViewportSize(PHONE);
		await page.goto(`${server.url}/`);
		await page.locator(".tile").first().waitFor();
		const firstTile = await page.locator(".tile").first().boundingBox();
		assert.ok(firstTile && firstTile.y < PHONE.height / 2, `the first photo starts at ${firstTile?.y}px of ${PHONE.height}px`);
		const filters = await page.getByRole("search").boundingBox();
		assert.ok(filters && filters.height <= PHONE.height / 6, `the search form is ${filters?.height}px tall`);
		// The filters are a tap away.
		await page.getByRole("button", { name: "Filters" }).click();
		await page.getByLabel("Sort by").waitFor();
		await page.getByRole("button", { name: "Filters" }).click();
		await page.getByLabel("Sort by").waitFor({ state: "hidden" });
	});

	it("shows a blurred placeholder of each photo until its thumbnail arrives", async t => {
		if (!features.thumbnails) return t.skip("the node has no thumbnails yet");
		const id = ids.get("harbour")!;
		let release!: () => void;
		const held = new Promise<void>(resolve => (release = resolve));
		const matches = (url: URL) => url.pathname === `/api/images/${id}/thumbnail`;
		await page.route(matches, async route => {
			await held;
			await route.continue();
		});
		try {
			await page.setViewportSize(DESKTOP);
			const asked = page.waitForRequest(request => matches(new URL(request.url())));
			await library(TOTAL);
			await asked;
			const tile = page.locator(`.tile[data-id="${id}"]`);
			const placeholder = await tile.getByRole("link").evaluate((el: any) => el.ownerDocument.defaultView.getComputedStyle(el).backgroundImage);
			assert.match(placeholder, /^url\("data:image\/png;base64,/);
			assert.equal(await tile.locator("img").evaluate((el: any) => el.naturalWidth), 0, "the thumbnail has not arrived");
			assert.equal(await tile.locator("img").evaluate((el: any) => el.ownerDocument.defaultView.getComputedStyle(el).opacity), "0", "the placeholder shows through");
			await tile.scrollIntoViewIfNeeded();
			await page.screenshot({ path: join(ARTIFACTS, "placeholder-1440.png") });
			release();
			await tile.locator("img.loaded").waitFor();
			assert.ok(await tile.locator("img").evaluate((el: any) => el.naturalWidth > 0));
		} finally {
			release();
			await page.unroute(matches);
		}
	});

	it("names categories in the statistics, not their ids", async () => {
		// A category, set over REST: the statistics say its name.
		assert.equal((await owned.patch(`/api/images/${ids.get("forest")}`, { category: "animals" })).status, 200);
		try {
			await page.setViewportSize(DESKTOP);
			await page.goto(`${server.url}/`);
			await page.getByText("Statistics").click();
			await page.getByText(`${TOTAL} images,`).waitFor();
			const byCategory = page.locator(".stats section", { has: page.getByRole("heading", { name: "By category" }) });
			const rows = await byCategory.locator("li").allInnerTexts();
			assert.deepEqual(rows.map(row => row.replace(/ \(.*\)$/, "")).sort(), ["Animals: 1", `No category: ${TOTAL - 1}`]);
		} finally {
			assert.equal((await owned.patch(`/api/images/${ids.get("forest")}`, { category: null })).status, 200);
		}
	});

	it("shows every photo loaded and ready", async () => {
		await page.setViewportSize(DESKTOP);
		await library(TOTAL);
		const tiles = page.locator(".tile");
		assert.equal(await tiles.count(), TOTAL);
		// Thumbnails load as they near the screen: scroll past them all.
		await page.evaluate(() => (globalThis as any).scrollTo(0, (globalThis as any).document.documentElement.scrollHeight));
		// A function, not a string: the app's CSP forbids eval, and Playwright evals string predicates.
		await page.waitForFunction((n: number) => [...(globalThis as any).document.querySelectorAll(".tile img")].filter((img: any) => img.complete && img.naturalWidth > 0).length === n, TOTAL);
		assert.equal(await page.locator('.tile[data-status="ready"]').count(), TOTAL);
		const dogAlt = (await tileOf("dog").locator("img").getAttribute("alt")) ?? "";
		assert.match(dogAlt, /^dog \(.*doggo/);
		if (HAS_MODEL) assert.match(dogAlt, /golden retriever/, "the classifier's tag is in the alt text");
		if (features.thumbnails) {
			// 1440 px wide: tiles are drawn under 240 px wide at DPR 1, so the 240 px rendition.
			assert.deepEqual(new Set(await tiles.locator("img").evaluateAll((els: any[]) => els.map(el => el.dataset.size))), new Set(["240"]));
		}
		await page.getByText("Statistics").click();
		await page.getByText(`${TOTAL} images,`).waitFor();
		await shoot("gallery");
	});

	it("selects photos by click, shift-click and keyboard", async () => {
		await page.setViewportSize(DESKTOP);
		await library(TOTAL);
		await tileOf("dunes").getByRole("checkbox").click();
		await bar().getByText("1 selected").waitFor();
		// Shift-click: the range from the last one clicked, in the order shown.
		await tileOf("snow").getByRole("checkbox").click({ modifiers: ["Shift"] });
		await bar().getByText("4 selected").waitFor();
		assert.deepEqual(await selectedNames(), ["dunes", "beach", "harbour", "snow"]);
		// While photos are selected a click on a tile selects it rather than opening it.
		await tileOf("lake").getByRole("link").click();
		await bar().getByText("5 selected").waitFor();
		assert.equal(await viewer().count(), 0);
		// Keyboard: X and Space toggle the focused photo, Escape clears.
		await tileOf("forest").getByRole("link").focus();
		await page.keyboard.press("x");
		await bar().getByText("6 selected").waitFor();
		await page.keyboard.press("Space");
		await bar().getByText("5 selected").waitFor();
		assert.deepEqual(await selectedNames(), ["dunes", "beach", "harbour", "snow", "lake"]);
		await page.keyboard.press("Escape");
		await bar().waitFor({ state: "hidden" });
		assert.deepEqual(await selectedNames(), []);
		await tileOf("dunes").getByRole("link").focus();
		await page.keyboard.press("x");
		await tileOf("harbour").getByRole("link").focus();
		await page.keyboard.press("Shift+X");
		await bar().getByText("3 selected").waitFor();
		assert.deepEqual(await selectedNames(), ["dunes", "beach", "harbour"]);
		await tileOf("dunes").scrollIntoViewIfNeeded();
		await shoot("selection", { fullPage: false });
	});

	it("applies bulk actions to the selection, each checked over REST, with a summary of failures", async () => {
		const three = ["dunes", "beach", "harbour"];
		const images = async (names: string[]) => Promise.all(names.map(async name => (await owned.get(`/api/images/${ids.get(name)}`)).body));
		const select = async (names: string[]) => {
			await tileOf(names[0]).getByRole("checkbox").click();
			if (names.length > 1) await tileOf(names.at(-1)!).getByRole("checkbox").click({ modifiers: ["Shift"] });
			await bar().getByText(`${names.length} selected`).waitFor();
			assert.deepEqual(await selectedNames(), names);
		};
		const done = async (message: string) => {
			await page.locator("#toast", { hasText: message }).waitFor();
			await bar().waitFor({ state: "hidden" });
		};
		await page.setViewportSize(DESKTOP);
		await library(TOTAL);
		await select(three);
		await bar().getByRole("button", { name: "Make public" }).click();
		await done("3 photos made public");
		assert.deepEqual((await images(three)).map(image => image.visibility), ["public", "public", "public"]);
		assert.equal(await tileOf("beach").locator(".badge.public").count(), 1, "the tiles show it");

		await select(three);
		await bar().getByRole("button", { name: "Make private" }).click();
		await done("3 photos made private");
		assert.deepEqual((await images(three)).map(image => image.visibility), ["private", "private", "private"]);

		await select(three);
		await bar().getByRole("button", { name: "Set category…" }).click();
		const dialog = page.getByRole("dialog", { name: "Set the category" });
		await dialog.getByLabel("Category").selectOption({ label: "Animals" });
		await dialog.getByRole("button", { name: "Set category" }).click();
		await done("3 photos moved to Animals");
		assert.deepEqual((await images(three)).map(image => image.category), ["animals", "animals", "animals"]);

		await select(three);
		await bar().getByRole("button", { name: "Add tags…" }).click();
		const tagDialog = page.getByRole("dialog", { name: "Add tags" });
		await tagDialog.getByLabel("Tags to add").fill("holiday, Beach");
		await tagDialog.getByRole("button", { name: "Add tags" }).click();
		await done("3 photos tagged holiday, Beach");
		const userTags = (await images(three)).map(image => image.tags.filter((tag: { source: string }) => tag.source === "user").map((tag: { label: string }) => tag.label).sort());
		assert.deepEqual(userTags, [["beach", "holiday"], ["beach", "holiday"], ["beach", "holiday", "sea"]], "added to the tags each photo had");

		// One of two photos was deleted behind the app's back: the other is done, the failure is listed.
		const beach = `/api/images/${ids.get("beach")}`;
		gone.push(beach);
		assert.equal((await owned.delete(beach)).status, 204);
		await select(["dunes", "beach"]);
		await bar().getByRole("button", { name: "Make public" }).click();
		const report = bar().locator(".bulk-report");
		await report.getByText("1 of 2 photos failed; 1 made public. The failed ones are still selected.").waitFor();
		assert.match(await report.locator("li").innerText(), /^beach — .*not found/i);
		assert.deepEqual(await selectedNames(), ["beach"]);
		assert.equal((await owned.get(`/api/images/${ids.get("dunes")}`)).body.visibility, "public");
		await page.setViewportSize(PHONE);
		await page.screenshot({ path: join(ARTIFACTS, "bulk-errors-390.png") });
		await page.setViewportSize(DESKTOP);
		await page.keyboard.press("Escape");
		await bar().waitFor({ state: "hidden" });

		// Delete, after a confirmation.
		await library(TOTAL - 1);
		await select(["dunes"]);
		await tileOf("lake").getByRole("checkbox").click();
		await bar().getByRole("button", { name: "Delete…" }).click();
		await page.getByRole("dialog", { name: "Delete 2 photos?" }).getByRole("button", { name: "Delete" }).click();
		await done("2 photos moved to trash");
		assert.equal(await tileOf("dunes").count(), 0);
		assert.equal(await tileOf("lake").count(), 0);
		for (const name of ["dunes", "lake"]) assert.equal((await owned.get(`/api/images/${ids.get(name)}`)).status, 404, name);
		await page.getByText(`${TOTAL - 3} photos`, { exact: true }).waitFor();
	});

	it("opens a full-screen viewer: keys, swipe, zoom and pan, and the info panel", async () => {
		const count = TOTAL - 3;
		await page.setViewportSize(DESKTOP);
		await library(count);
		const title = viewer().locator(".viewer-title");
		const picture = viewer().locator("img.viewer-image");
		await tileOf("snow").getByRole("link").click();
		await viewer().waitFor();
		await title.getByText("snow", { exact: true }).waitFor();
		// The order of the timeline: ← the newer photo, → the older one.
		await page.keyboard.press("ArrowRight");
		await title.getByText("forest", { exact: true }).waitFor();
		await page.keyboard.press("ArrowLeft");
		await page.keyboard.press("ArrowLeft");
		await title.getByText("harbour", { exact: true }).waitFor();
		// A swipe to the left (a touch drag) shows the next photo.
		const stage = viewer().locator(".stage");
		const box = (await stage.boundingBox())!;
		const touch = { pointerType: "touch", pointerId: 7, isPrimary: true, bubbles: true };
		await stage.dispatchEvent("pointerdown", { ...touch, clientX: box.x + 700, clientY: box.y + 300 });
		await stage.dispatchEvent("pointermove", { ...touch, clientX: box.x + 550, clientY: box.y + 310 });
		await stage.dispatchEvent("pointerup", { ...touch, clientX: box.x + 450, clientY: box.y + 310 });
		await title.getByText("snow", { exact: true }).waitFor();
		await picture.and(page.locator(".loaded")).waitFor();

		// The info panel: when and with what it was taken, its tags.
		await page.keyboard.press("i");
		const info = viewer().getByRole("complementary", { name: "Info" });
		await info.waitFor();
		const facts = await info.locator("dl").innerText();
		assert.match(facts, /Taken\s+December 24, 2022, 12:00/);
		assert.match(facts, /Camera\s+TestCam Model 7/);
		assert.match(facts, /Dimensions\s+480 × 320/);
		await shoot("viewer", { fullPage: false });

		// Zoom on a large photo: the buttons, double-click, and a drag pans the zoomed photo.
		await viewer().getByRole("button", { name: "Close" }).click();
		await tileOf("dog").getByRole("link").click();
		await title.getByText("dog", { exact: true }).waitFor();
		const level = viewer().locator(".zoom-level");
		await viewer().getByRole("button", { name: "Zoom in" }).click();
		assert.equal(await level.innerText(), "150 %");
		await viewer().getByRole("button", { name: "Zoom out" }).click();
		assert.equal(await level.innerText(), "100 %");
		const centre = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
		await page.mouse.dblclick(centre.x, centre.y);
		assert.equal(await level.innerText(), "250 %");
		const translate = () => picture.evaluate((el: any) => new (el.ownerDocument.defaultView.DOMMatrix)(el.ownerDocument.defaultView.getComputedStyle(el).transform)).then((m: any) => [Math.round(m.e), Math.round(m.f)]);
		await picture.evaluate((el: any) => el.classList.remove("animate"));
		const [x0, y0] = await translate();
		await page.mouse.move(centre.x, centre.y);
		await page.mouse.down();
		await page.mouse.move(centre.x - 120, centre.y - 60, { steps: 4 });
		await page.mouse.up();
		const [x1, y1] = await translate();
		assert.ok(Math.abs(x1 - x0 + 120) <= 2 && Math.abs(y1 - y0 + 60) <= 2, `the drag moved the zoomed photo by ${x1 - x0}, ${y1 - y0}`);
		await page.keyboard.press("0");
		assert.equal(await level.innerText(), "100 %");
		// Escape closes, and the focus is back on the photo's tile.
		await page.keyboard.press("Escape");
		await viewer().waitFor({ state: "detached" });
		assert.equal(await tileOf("dog").getByRole("link").evaluate((el: any) => el === el.ownerDocument.activeElement), true);
	});

	it("searches with the query language", async () => {
		await page.setViewportSize(DESKTOP);
		await page.goto(`${server.url}/`);
		await page.getByLabel("Search", { exact: true }).fill('tag:doggo "in the park"');
		await page.getByRole("button", { name: "Search", exact: true }).click();
		await page.getByRole("heading", { name: 'Search: tag:doggo "in the park"' }).waitFor();
		await page.getByText("1 photo", { exact: true }).waitFor();
		assert.deepEqual(await page.locator(".tile .caption").allInnerTexts(), ["dog"]);
		await shoot("search");
		if (HAS_MODEL) {
			// The Tag filter takes a label with spaces as it is: the classifier's golden retriever.
			await page.getByLabel("Search", { exact: true }).fill("");
			await page.getByLabel("Tag", { exact: true }).fill("golden retriever");
			await page.getByRole("button", { name: "Search", exact: true }).click();
			await page.getByText("1 photo", { exact: true }).waitFor();
			assert.deepEqual(await page.locator(".tile .caption").allInnerTexts(), ["dog"]);
			await page.getByLabel("Tag", { exact: true }).fill("");
		}
	});

	it("says no photo matches a search that finds nothing, not that there are none", async () => {
		await page.setViewportSize(DESKTOP);
		await page.goto(`${server.url}/?${new URLSearchParams({ q: "tag:nothing-like-this" })}`);
		await page.getByRole("heading", { name: "No photos match" }).waitFor();
		assert.equal(await page.getByText("Your library is empty").count(), 0);
		await shoot("search-empty");
	});

	it("shows an image's details and tags, edits it and makes it public", async () => {
		await page.setViewportSize(DESKTOP);
		await openDetail("dog");
		const bytes = readFileSync(join(SHARED_IMAGES, "dog.jpg"));
		await page.getByText(sha256(bytes)).waitFor();
		const tags = page.getByRole("list", { name: "Tags" });
		const shown = await tags.locator("li").evaluateAll((els: any[]) => els.map(el => `${el.querySelector("a").textContent}/${el.dataset.source}`));
		assert.deepEqual(shown.filter(tag => !tag.endsWith("/auto")), ["doggo/user", "good boy/user", "sunny/hashtag"]);
		if (HAS_MODEL) {
			assert.ok(shown.includes("golden retriever/auto"), shown.join());
			assert.match(await tags.locator("li", { hasText: "golden retriever" }).innerText(), /auto \d+ % · squeezenet/);
			const [retag] = await Promise.all([page.waitForResponse(res => res.url().endsWith("/retag")), page.getByRole("button", { name: "Re-tag" }).click()]);
			assert.equal(retag.status(), 202);
			await page.locator("#toast", { hasText: "Re-tagging started" }).waitFor();
			await page.getByRole("list", { name: "Tags" }).getByText("golden retriever").waitFor();
		}
		await page.waitForFunction(() => (globalThis as any).document.querySelector("img.full")?.naturalWidth > 0);
		await page.getByLabel("Name").fill("Good dog");
		await page.getByLabel("Visibility").selectOption("public");
		await page.getByRole("button", { name: "Save changes" }).click();
		await page.getByRole("heading", { level: 1, name: "Good dog" }).waitFor();
		const link = await page.getByLabel("Public link").inputValue();
		assert.match(link, new RegExp(`^${server.url}/p/[\\w-]+$`));
		await page.evaluate(() => (globalThis as any).scrollTo(0, 0));
		await shoot("detail");
		// The photo opens full screen.
		await page.locator("img.full").click();
		await viewer().locator(".viewer-title", { hasText: "Good dog" }).waitFor();
		await page.keyboard.press("Escape");
		await viewer().waitFor({ state: "detached" });

		// Signed out, in a fresh context: the public link serves the bytes.
		const anonymous = await browser.newContext();
		watch(anonymous);
		const visitor = await anonymous.newPage();
		const res = await visitor.goto(link);
		assert.equal(res?.status(), 200);
		assert.equal(sha256(await res!.body()), sha256(bytes));
		await anonymous.close();
	});

	it("keeps the photo in view beside the details as the page scrolls on a wide screen", async () => {
		await page.setViewportSize(DESKTOP);
		await page.goto(`${server.url}/images/${ids.get("dog")}`);
		await page.getByRole("heading", { level: 1 }).waitFor();
		await page.waitForFunction(() => (globalThis as any).document.querySelector("img.full")?.naturalWidth > 0);
		// Scrolled down to the last card, the photo is still beside it, not a blank column.
		await page.evaluate(() => (globalThis as any).scrollTo(0, (globalThis as any).document.documentElement.scrollHeight));
		await page.waitForFunction(() => (globalThis as any).scrollY > 0);
		assert.equal(await onScreen(page.locator("img.full")), true, "the photo scrolled away");
	});

	it("lands a newcomer on their own empty library, not on other people's public photos", async () => {
		// webuser's "Good dog" is public (as the detail page left it).
		assert.equal((await owned.patch(`/api/images/${ids.get("dog")}`, { name: "Good dog", visibility: "public" })).status, 200);
		const fresh = await browser.newContext({ viewport: PHONE, ...LOCALE });
		fresh.setDefaultTimeout(15_000);
		watch(fresh);
		const newcomer = await fresh.newPage();
		try {
			await newcomer.goto(`${server.url}/register`);
			await newcomer.getByLabel("Username").fill("newcomer");
			await newcomer.getByLabel("Password").fill(password);
			await newcomer.getByRole("button", { name: "Create account" }).click();
			// Whatever the page shows first: photos, or the empty library.
			await newcomer.locator(".tile, .empty").first().waitFor();
			assert.equal(await newcomer.locator(".tile").count(), 0, "no one else's photos");
			await newcomer.getByRole("link", { name: "Upload your first photos" }).waitFor();
			// Other people's public photos are one choice away.
			await newcomer.getByRole("button", { name: "Filters" }).click();
			await newcomer.getByLabel("Show").selectOption("public");
			await newcomer.getByText("1 photo", { exact: true }).waitFor();
			assert.deepEqual(await newcomer.locator(".tile .caption").allInnerTexts(), ["Good dog"]);
		} finally {
			await fresh.close();
		}
	});

	it("downloads the original and, where the server converts, a WebP", async t => {
		const save = async (format: string) => {
			await page.getByLabel("Format").selectOption(format);
			const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download" }).click()]);
			return { name: download.suggestedFilename(), bytes: readFileSync((await download.path())!) };
		};
		const original = await save("");
		assert.equal(original.name, "Good dog.jpeg");
		assert.equal(sha256(original.bytes), sha256(readFileSync(join(SHARED_IMAGES, "dog.jpg"))));
		if (!features.transforms) return t.skip("the node has no /content.<ext> transforms yet");
		const webp = await save("webp");
		assert.equal(webp.name, "Good dog.webp");
		assert.equal(webp.bytes.subarray(8, 12).toString("latin1"), "WEBP");
	});

	it("imports a URL list with a live progress bar up to 100 %, and a Google Drive folder", async t => {
		if (!features.imports) return t.skip("the node has no /api/imports yet");
		await page.goto(`${server.url}/imports`);
		// One URL a line: a URL with a space in it stays whole.
		const spaced = `${host.url}/unique/my holiday.jpg`;
		await page.getByLabel("Image URLs, one per line").fill(`${host.url}/img/dog.jpg\n  ${spaced}  \n\n`);
		const [posted] = await Promise.all([page.waitForRequest(req => req.url().endsWith("/api/imports") && req.method() === "POST"), page.getByRole("button", { name: "Start import" }).click()]);
		assert.deepEqual(posted.postDataJSON().urls, [`${host.url}/img/dog.jpg`, spaced]);
		await page.getByText(/^Status: (completed|completed with errors|failed)$/).waitFor();
		await page.getByRole("link", { name: "← All imports" }).click();

		// One item is held back by the host until the test opens its gate: the job is seen mid-flight.
		await page.getByLabel("Image URLs, one per line").fill(["/img/dog.jpg", "/gated/held.jpg", "/missing.jpg"].map(path => host.url + path).join("\n"));
		await shoot("imports");
		await page.getByRole("button", { name: "Start import" }).click();
		const counters = page.locator(".counters");
		await counters.getByText("2 / 3").waitFor();
		const bar = page.getByLabel("Import progress");
		assert.equal(await bar.evaluate((el: any) => el.value), 66);
		assert.equal(await page.getByRole("button", { name: "Cancel import" }).isVisible(), true);
		await shoot("import-running");
		host.gate.open();
		await page.getByText("Status: completed with errors").waitFor();
		assert.equal(await bar.evaluate((el: any) => el.value), 100);
		await counters.getByText("3 / 3").waitFor();
		await page.getByText("missing.jpg").waitFor();
		await shoot("import-job");
		// Retry sends the failed item again; it fails again, and the job ends again.
		const [retry] = await Promise.all([page.waitForResponse(res => res.url().endsWith("/retry")), page.getByRole("button", { name: "Retry failed items" }).click()]);
		assert.ok(retry.ok(), String(retry.status()));
		await page.getByText("Status: completed with errors").waitFor();

		// Cancel: a job held on its only item ends cancelled.
		host.gate = new Gate();
		await page.getByRole("link", { name: "← All imports" }).click();
		await page.getByLabel("Image URLs, one per line").fill(`${host.url}/gated/cancelled.jpg`);
		await page.getByRole("button", { name: "Start import" }).click();
		await page.getByRole("button", { name: "Cancel import" }).click();
		await page.getByText("Status: cancelled").waitFor();
		host.gate.open();

		await page.getByRole("link", { name: "← All imports" }).click();
		await page.getByLabel("Source").selectOption("google-drive");
		await page.getByLabel("Folder URL or id").fill("https://drive.google.com/drive/folders/web-folder");
		await page.getByLabel("Google API key (optional)").fill(host.driveKey);
		await page.getByRole("button", { name: "Start import" }).click();
		await page.getByText("Status: completed", { exact: true }).waitFor();
		assert.equal(await bar.evaluate((el: any) => el.value), 100);
		await counters.getByText("2 / 2").waitFor();
		await page.getByRole("link", { name: "← All imports" }).click();
		await page.getByRole("link", { name: /URL list · completed with errors/ }).first().waitFor();
		await page.getByRole("link", { name: /Google Drive folder web-folder · completed/ }).waitFor();
	});

	it("lets an admin manage users and categories and see the node's status", async () => {
		const adminContext = await browser.newContext({ viewport: DESKTOP, ...LOCALE });
		adminContext.setDefaultTimeout(15_000);
		watch(adminContext);
		const adminPage = await adminContext.newPage();
		const mine = page;
		page = adminPage;
		try {
			await page.goto(`${server.url}/signin`);
			await page.getByLabel("Username").fill("admin");
			await page.getByLabel("Password").fill(ADMIN_PASSWORD);
			await page.getByRole("button", { name: "Sign in" }).click();
			await page.getByRole("navigation").getByRole("link", { name: "Admin" }).click();
			await page.getByRole("heading", { name: "Administration" }).waitFor();
			await page.getByLabel("New category").fill("Birds");
			await page.getByRole("button", { name: "Add" }).click();
			await page.getByRole("link", { name: "Birds" }).waitFor();
			await page.getByLabel(`Disable ${username}`).check();
			await page.getByText(`${username} updated`).waitFor();
			await page.getByText(/^Node .*: ready$/).waitFor();
			await page.getByText(/^Node .*: \d+ hits, \d+ misses/).waitFor();
			await shoot("admin");
		} finally {
			page = mine;
			await adminContext.close();
		}
		// A disabled user's token stops working at once: the app sends them to sign in.
		await page.goto(`${server.url}/`);
		await page.getByRole("heading", { name: "Sign in" }).waitFor();
		await page.locator(".notice", { hasText: "Please sign in again." }).waitFor();
		const admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
		const user = (await admin.get("/api/users")).body.items.find((u: { username: string }) => u.username === username);
		assert.equal((await admin.patch(`/api/users/${user.id}`, { disabled: false })).status, 200);
		// Tokens from before the account was disabled stay dead.
		owned = await new Client(server.url).login(username, password);
	});

	it("shows the admin's role menus whole at a phone's width, not three letters of them", async () => {
		const admin = await signedIn("admin", ADMIN_PASSWORD, PHONE);
		try {
			await admin.page.goto(`${server.url}/admin`);
			const role = admin.page.getByLabel("Role of probe-user");
			await role.waitFor();
			const cut = await role.evaluate((el: any) => {
				const shown = el.getBoundingClientRect().width;
				el.style.width = "max-content";
				const needed = el.getBoundingClientRect().width;
				el.style.width = "";
				return needed - shown;
			});
			assert.ok(cut <= 1, `the role menu is ${cut}px too narrow`);
		} finally {
			await admin.context.close();
		}
	});

	it("sends a user whose token expired back to sign in with a message", async () => {
		const admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
		const user = (await admin.get("/api/users")).body.items.find((u: { username: string }) => u.username === username);
		const expired = jwt.sign({ username, role: "user", sub: user.id, exp: Math.floor(Date.now() / 1000) - 60 }, JWT_SECRET, { algorithm: "HS256" });
		await page.evaluate(([token, u]) => sessionStorage.setItem("imgmesh.session", JSON.stringify({ token, user: u })), [expired, user] as const);
		await page.goto(`${server.url}/`);
		await page.locator(".notice", { hasText: "Your session expired. Please sign in again." }).waitFor();
		assert.equal(new URL(page.url()).pathname, "/signin");
		await page.getByLabel("Username").fill(username);
		await page.getByLabel("Password").fill(password);
		// Keyboard only: Enter submits.
		await page.getByLabel("Password").press("Enter");
		await page.getByRole("heading", { name: "Photos" }).waitFor();
	});

	it("filters the photos to public ones", async () => {
		await page.setViewportSize(DESKTOP);
		await page.goto(`${server.url}/`);
		await page.getByLabel("Show").selectOption("public");
		await page.getByText("1 photo", { exact: true }).waitFor();
		assert.deepEqual(await page.locator(".tile .caption").allInnerTexts(), ["Good dog"]);
		assert.equal(new URL(page.url()).search, "?scope=public");
	});

	it("deletes an image after confirmation", async () => {
		const before = (await owned.get("/api/images")).body.total as number;
		await openDetail("hummingbird");
		await page.getByRole("button", { name: "Delete…" }).click();
		const dialog = page.getByRole("dialog", { name: "Delete this image?" });
		// The focus starts on Cancel, and Escape dismisses the dialog without deleting.
		assert.equal(await dialog.getByRole("button", { name: "Cancel" }).evaluate((el: any) => el === el.ownerDocument.activeElement), true);
		await page.keyboard.press("Escape");
		await dialog.waitFor({ state: "hidden" });
		await page.getByRole("heading", { level: 1, name: "hummingbird" }).waitFor();
		const deleteIt = async () => {
			await page.getByRole("button", { name: "Delete…" }).click();
			await dialog.getByRole("button", { name: "Delete" }).click();
			await page.getByRole("heading", { name: "Photos" }).waitFor();
			await page.getByText(`${before - 1} photos`).waitFor();
		};
		await deleteIt();
		assert.equal(await page.locator(".tile", { hasText: "hummingbird" }).count(), 0);
		assert.equal((await owned.get("/api/images?q=hummingbird")).body.total, 0);

		// "Moved to trash", with Undo: back on the photo's page, and in the library again.
		await page.locator("#toast", { hasText: "Moved to trash" }).getByRole("button", { name: "Undo" }).click();
		await page.getByRole("heading", { level: 1, name: "hummingbird" }).waitFor();
		assert.equal((await owned.get("/api/images?q=hummingbird")).body.total, 1);

		// From the Trash page: restore, then delete forever.
		await deleteIt();
		await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Trash" }).click();
		await page.getByRole("heading", { level: 1, name: "Trash" }).waitFor();
		const trashed = () => page.locator(".trash-grid .tile", { hasText: "hummingbird" });
		await trashed().getByRole("button", { name: "Restore" }).click();
		await page.locator("#toast", { hasText: "“hummingbird” restored" }).waitFor();
		assert.equal((await owned.get("/api/images?q=hummingbird")).body.total, 1);
		const id = (await owned.get("/api/images?q=hummingbird")).body.items[0].id as string;
		assert.equal((await owned.delete(`/api/images/${id}`)).status, 204);
		await page.reload();
		await trashed().getByRole("button", { name: "Delete forever" }).click();
		await page.getByRole("dialog", { name: "Delete “hummingbird” forever?" }).getByRole("button", { name: "Delete forever" }).click();
		await page.locator("#toast", { hasText: "“hummingbird” deleted for good" }).waitFor();
		assert.equal(await trashed().count(), 0);
		assert.equal((await owned.post(`/api/trash/${id}/restore`)).status, 404, "gone for good");
	});

	it("pages a sorted grid as the user scrolls, and loads the whole timeline", async () => {
		const kitten = readFileSync(join(SHARED_IMAGES, "kitten_224.png"));
		const upload = await owned.upload(Array.from({ length: 26 }, (_, i) => ({ name: `pile-${i}.png`, bytes: kitten, type: "image/png" })), { name: "pile" });
		assert.equal(upload.status, 201);
		const total = (await owned.get("/api/images")).body.total as number;
		// A phone: the end of the first page is well below the fold.
		await page.setViewportSize(PHONE);
		await page.goto(`${server.url}/?sort=name`);
		await page.getByText(`${total} photos`).waitFor();
		assert.equal(await page.locator(".tile").count(), 24, "the first page");
		await page.getByRole("button", { name: "Load more" }).scrollIntoViewIfNeeded();
		await page.waitForFunction((n: number) => (globalThis as any).document.querySelectorAll(".tile").length === n, total);
		assert.equal(await page.getByRole("button", { name: "Load more" }).isVisible(), false, "no page after the last");
		// The timeline reads every page by itself: it must order them all by date.
		await library(total);
		assert.equal(await page.locator(".tile").count(), total);
	});

	it("shows an unknown page with the navigation and a way back", async () => {
		const admin = await signedIn("admin", ADMIN_PASSWORD);
		const mine = page;
		page = admin.page;
		try {
			await page.goto(`${server.url}/no/such/page`);
			await page.getByRole("heading", { name: "Page not found" }).waitFor();
			await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Upload" }).waitFor();
			await shoot("not-found");
			await page.getByRole("link", { name: "Go to your photos" }).click();
			await page.getByRole("heading", { name: "Photos" }).waitFor();
		} finally {
			page = mine;
			await admin.context.close();
		}
	});

	it("offers Reprocess on a failed image, and admins a Jobs page: channels, dead letters, reprocessing, the GC's last run", async () => {
		const bytes = poisonJpeg(readFileSync(join(SHARED_IMAGES, "dog.jpg")));
		const upload = await owned.upload([{ name: "broken-photo.jpg", bytes }], { name: "broken photo" });
		assert.equal(upload.status, 201, JSON.stringify(upload.body));
		const id = upload.body.images[0].id as string;
		assert.equal((await settled(owned, id)).status, "failed");
		await page.setViewportSize(DESKTOP);
		await page.goto(`${server.url}/images/${id}`);
		await page.getByRole("heading", { level: 1, name: "broken photo" }).waitFor();
		await page.getByRole("status").filter({ hasText: /^Failed$/ }).waitFor();
		const [answer] = await Promise.all([page.waitForResponse(res => res.url().endsWith(`/api/images/${id}/reprocess`)), page.getByRole("button", { name: "Reprocess" }).click()]);
		assert.equal(answer.status(), 202);
		await page.getByRole("status").filter({ hasText: /^Processing$/ }).waitFor();
		// Its bytes are broken: it fails again, and Reprocess is offered again.
		await page.getByRole("button", { name: "Reprocess" }).waitFor();

		const admin = await signedIn("admin", ADMIN_PASSWORD);
		const mine = page;
		page = admin.page;
		try {
			await page.getByRole("navigation").getByRole("link", { name: "Jobs" }).click();
			await page.getByRole("heading", { level: 1, name: "Jobs" }).waitFor();
			await page.getByText(/^Embedded mode: jobs run on an in-process queue/).waitFor();
			await page.getByRole("heading", { name: "Storage GC" }).waitFor();
			await page.getByText("The GC has not run yet.").waitFor();
			const [dryRun] = await Promise.all([page.waitForResponse(res => res.url().endsWith("/api/admin/storage/gc") && res.request().method() === "POST"), page.getByRole("button", { name: "Dry run" }).click()]);
			assert.equal(dryRun.status(), 200);
			await page.getByText(/^Dry run started .*, finished /).waitFor();
			page.once("dialog", dialog => void dialog.accept());
			await page.getByRole("button", { name: "Reprocess failed images" }).click();
			await page.getByText(/^\d+ image\(s\) queued for processing$/).waitFor();
			await shoot("jobs");
		} finally {
			page = mine;
			await admin.context.close();
		}
	});

	it("logged no console errors and asked no host but the loopback one", () => {
		assert.deepEqual(consoleErrors, []);
		assert.deepEqual(foreignRequests, []);
	});
});
