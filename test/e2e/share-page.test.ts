/**
 * A share link in the browser (Debian's Chromium, driven by playwright-core) against a real node:
 * a password link opened signed out (the form, a wrong password, the photo in the library's
 * viewer, then the revoked link's message), the owner making a link on the image page, and an
 * album link's grid with the album page's list of links. Fails
 * on any console error but the refusals the test provokes on the link's own paths.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { buildWebApp, chromiumSkipReason, contextsFor, launchChromium, signIn } from "../helpers/browser.ts";
import { Client, fileFrom } from "../helpers/client.ts";
import { waitFor } from "../helpers/jobs.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const PASSWORD = "correct horse battery";

describe("a share link in a browser", { skip: chromiumSkipReason() }, () => {
	let server: RunningServer;
	let browser: Browser;
	let newContext: () => Promise<BrowserContext>;
	let alice: Client;
	let imageId: string;
	let imageName: string;
	const consoleErrors: string[] = [];

	/** Chromium logs every 4xx as a console error: a locked, wrongly unlocked or revoked link's are the test's own doing. */
	const provoked = (text: string, url: string) => new URL(url).pathname.startsWith("/s/") && /status of (401|404)\b/.test(text);

	/** A page signed in as the owner, through the sign-in page. */
	async function signedIn(): Promise<Page> {
		return signIn(await newContext(), server.url, "sharer", PASSWORD);
	}

	before(async () => {
		buildWebApp();
		server = await startServer();
		alice = await new Client(server.url).register("sharer", PASSWORD);
		const uploaded = (await alice.upload([fileFrom(join(SHARED_IMAGES, "dog.jpg"))])).body.images[0];
		imageId = uploaded.id;
		imageName = uploaded.name;
		await waitFor("the photo ready", async () => ((await alice.get(`/api/images/${imageId}`)).body.status === "ready" ? true : undefined));
		browser = await launchChromium();
		newContext = contextsFor(browser, consoleErrors, provoked);
	});
	after(async () => {
		await browser?.close();
		await server?.stop();
	});

	it("opens a password link signed out: the form, a wrong password, the photo in the viewer; then says it was revoked", async () => {
		const link = (await alice.post("/api/shares", { imageId, password: "open sesame" })).body.share;
		const context = await newContext();
		const page = await context.newPage();
		await page.goto(server.url + link.url);
		await page.getByRole("heading", { name: "This link is protected" }).waitFor();
		await page.getByLabel("Password").fill("not it");
		await page.getByRole("button", { name: "Open" }).click();
		await page.locator("#toast", { hasText: "Wrong password for this link" }).waitFor();
		await page.getByLabel("Password").fill("open sesame");
		await page.getByRole("button", { name: "Open" }).click();
		await page.getByRole("heading", { level: 1, name: imageName }).waitFor();
		await page.locator(".tile img.loaded").waitFor();
		await page.locator(".tile a").click();
		const viewer = page.getByRole("dialog", { name: "Photo viewer" });
		await viewer.locator("img.viewer-image.loaded").waitFor();
		assert.equal(await viewer.getByRole("link", { name: "Details & editing" }).count(), 0, "a guest has no details page");
		await page.keyboard.press("Escape");
		await viewer.waitFor({ state: "detached" });

		assert.equal((await alice.delete(`/api/shares/${link.id}`)).status, 204);
		await page.reload();
		await page.getByText("This link does not exist, or its owner revoked it.").waitFor();
		await context.close();
	});

	it("lets the owner make a link on the image page, its URL shown once, and the link opens", async () => {
		const page = await signedIn();
		await page.goto(`${server.url}/images/${imageId}`);
		await page.getByRole("button", { name: "Create share link" }).click();
		const url = await page.getByLabel("New share link").inputValue();
		assert.match(url, /\/s\/[A-Za-z0-9_-]{43}$/);
		await page.locator(".share-links li", { hasText: "no expiry" }).waitFor();

		const guest = await (await newContext()).newPage();
		await guest.goto(url);
		await guest.getByRole("heading", { level: 1, name: imageName }).waitFor();
		await guest.getByRole("link", { name: "Download" }).waitFor();
		await guest.context().close();
		await page.context().close();
	});

	it("opens an album link as a grid in the viewer, and lists it on the album's page for its owner", async () => {
		const album = (await alice.post("/api/albums", { name: "Walks" })).body.album;
		assert.equal((await alice.post(`/api/albums/${album.id}/images`, { ids: [imageId] })).status < 300, true);
		const link = (await alice.post("/api/shares", { albumId: album.id })).body.share;
		const guest = await (await newContext()).newPage();
		await guest.goto(server.url + link.url);
		await guest.getByRole("heading", { level: 1, name: "Shared album" }).waitFor();
		await guest.locator(".tile img.loaded").waitFor();
		assert.equal(await guest.getByRole("button", { name: "Load more" }).count(), 0, "one page holds it all");
		await guest.locator(".tile a").click();
		await guest.getByRole("dialog", { name: "Photo viewer" }).locator("img.viewer-image.loaded").waitFor();
		await guest.context().close();

		const page = await signedIn();
		await page.goto(`${server.url}/albums/${album.id}`);
		await page.getByRole("region", { name: "Share" }).locator(".share-links li", { hasText: "no expiry" }).waitFor();
		await page.context().close();
	});

	it("logged no console errors", () => {
		assert.deepEqual(consoleErrors, []);
	});
});
