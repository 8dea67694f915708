/**
 * Issue 15's sharing as two people and a stranger live it, in the browser (Debian's Chromium
 * driven by playwright-core) against a real node: A registers and uploads two photos, makes an
 * album in the web app and fills it with the "Add to album…" bulk action, and adds B as a viewer;
 * B signs in and sees the album and its photo in the viewer; A makes a password link of the album,
 * which a signed-out browser opens (the form, a wrong password refused, the grid), until A revokes
 * it; A deletes a photo (Moved to trash, Undo), deletes it again and restores it from the Trash
 * page, and it is back in the album for B. Screenshots go to test/artifacts/sharing-*.png; the
 * run fails on any console error but the refusals it provokes.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { ARTIFACTS, buildWebApp, chromiumSkipReason, contextsFor, launchChromium, signIn } from "../helpers/browser.ts";
import { Client } from "../helpers/client.ts";
import { settled, waitFor } from "../helpers/jobs.ts";
import { SHARED_IMAGES, startServer, type RunningServer } from "../helpers/server.ts";

const PASSWORD = "correct horse battery";
const LINK_PASSWORD = "open sesame";
const PHOTOS = ["dog.jpg", "mug-cc0.jpeg"];
const ALBUM = "Walks";

describe("sharing, from album to trash, in a browser", { skip: chromiumSkipReason() }, () => {
	let server: RunningServer;
	let browser: Browser;
	let newContext: () => Promise<BrowserContext>;
	/** A's page, signed in for the whole journey. */
	let page: Page;
	/** A over REST, to check what the app did. */
	let alice: Client;
	let bob: Client;
	let albumId: string;
	let linkUrl: string;
	const consoleErrors: string[] = [];

	/** The 4xx answers the journey provokes: a locked link, its wrong password, the revoked link. */
	const provoked = (text: string, url: string) => new URL(url).pathname.startsWith("/s/") && /status of (401|404)\b/.test(text);

	const tileOf = (target: Page, name: string) => target.locator(".tile").filter({ has: target.locator(".caption", { hasText: new RegExp(`^${name}$`) }) });
	const albumImages = async (client: Client) => (await client.get(`/api/albums/${albumId}/images`)).body.items.map((image: { name: string }) => image.name).sort();

	async function shoot(target: Page, name: string): Promise<void> {
		await target.screenshot({ path: join(ARTIFACTS, `sharing-${name}.png`), fullPage: true });
	}

	before(async () => {
		mkdirSync(ARTIFACTS, { recursive: true });
		buildWebApp();
		server = await startServer();
		browser = await launchChromium();
		newContext = contextsFor(browser, consoleErrors, provoked);
		bob = await new Client(server.url).register("bob", PASSWORD);
	});
	after(async () => {
		await browser?.close();
		await server?.stop();
	});

	it("A registers and uploads two photos", async () => {
		page = await (await newContext()).newPage();
		await page.goto(`${server.url}/register`);
		await page.getByLabel("Username").fill("alice");
		await page.getByLabel("Password").fill(PASSWORD);
		await page.getByRole("button", { name: "Create account" }).click();
		await page.getByRole("heading", { name: "Your library is empty" }).waitFor();
		alice = await new Client(server.url).login("alice", PASSWORD);

		await page.getByRole("navigation").getByRole("link", { name: "Upload" }).click();
		await page.locator("#pick-files").setInputFiles(PHOTOS.map(name => ({ name, mimeType: "image/jpeg", buffer: readFileSync(join(SHARED_IMAGES, name)) })));
		await page.getByRole("button", { name: "Upload all" }).click();
		await page.locator(".upload-total", { hasText: "2 of 2 uploaded" }).waitFor();
		for (const image of (await alice.get("/api/images")).body.items) await settled(alice, image.id);
	});

	it("A makes an album in the web app, adds both photos with “Add to album…”, and B as a viewer", async () => {
		await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Albums" }).click();
		const form = page.getByRole("form", { name: "New album" });
		await form.getByLabel("Name").fill(ALBUM);
		await form.getByRole("button", { name: "Create album" }).click();
		await page.getByRole("heading", { level: 1, name: ALBUM }).waitFor();
		albumId = new URL(page.url()).pathname.split("/").at(-1)!;

		await page.goto(`${server.url}/`);
		await tileOf(page, "dog").getByRole("checkbox").click();
		await tileOf(page, "mug-cc0").getByRole("checkbox").click();
		const bar = page.getByRole("region", { name: "Selection" });
		await bar.getByText("2 selected").waitFor();
		await bar.getByRole("button", { name: "Add to album…" }).click();
		const dialog = page.getByRole("dialog", { name: "Add to album" });
		await dialog.getByLabel("Album").selectOption({ label: ALBUM });
		await dialog.getByRole("button", { name: "Add" }).click();
		await page.locator("#toast", { hasText: `2 photos added to ${ALBUM}` }).waitFor();
		assert.deepEqual(await albumImages(alice), ["dog", "mug-cc0"]);

		await page.goto(`${server.url}/albums/${albumId}`);
		const members = page.getByRole("region", { name: "Members" });
		await members.getByLabel("Username").fill("bob");
		await members.getByLabel("Role").selectOption("viewer");
		await members.getByRole("button", { name: "Share" }).click();
		await members.locator('li[data-username="bob"]', { hasText: "viewer" }).waitFor();
		// The grid sits below the album's cards: its thumbnails load once scrolled to.
		await tileOf(page, "dog").scrollIntoViewIfNeeded();
		await tileOf(page, "dog").locator("img.loaded").waitFor();
		await shoot(page, "album-owner");
	});

	it("B signs in and sees the album and its photo in the viewer", async () => {
		const bobPage = await signIn(await newContext(), server.url, "bob", PASSWORD);
		await bobPage.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Albums" }).click();
		await bobPage.getByRole("list", { name: "Shared with me" }).getByRole("link", { name: ALBUM }).click();
		await bobPage.getByRole("heading", { level: 1, name: ALBUM }).waitFor();
		await bobPage.getByText("Shared by alice · you are a viewer").waitFor();
		await tileOf(bobPage, "dog").locator("img.loaded").waitFor();
		await tileOf(bobPage, "dog").getByRole("link").click();
		const viewer = bobPage.getByRole("dialog", { name: "Photo viewer" });
		await viewer.locator("img.viewer-image.loaded").waitFor();
		await shoot(bobPage, "album-viewer");
		await bobPage.context().close();
	});

	it("A makes a password link of the album; signed out, a wrong password is refused and the right one shows the grid", async () => {
		await page.goto(`${server.url}/albums/${albumId}`);
		const share = page.getByRole("region", { name: "Share" });
		await share.getByLabel("Password").fill(LINK_PASSWORD);
		await share.getByRole("button", { name: "Create share link" }).click();
		linkUrl = await share.getByLabel("New share link").inputValue();
		assert.match(linkUrl, /\/s\/[A-Za-z0-9_-]{43}$/);

		const guest = await (await newContext()).newPage();
		await guest.goto(linkUrl);
		await guest.getByRole("heading", { name: "This link is protected" }).waitFor();
		await shoot(guest, "link-locked");
		await guest.getByLabel("Password").fill("not it");
		await guest.getByRole("button", { name: "Open" }).click();
		await guest.locator("#toast", { hasText: "Wrong password for this link" }).waitFor();
		await guest.getByLabel("Password").fill(LINK_PASSWORD);
		await guest.getByRole("button", { name: "Open" }).click();
		await guest.getByRole("heading", { level: 1, name: "Shared album" }).waitFor();
		await guest.locator(".tile img.loaded").nth(1).waitFor();
		assert.equal(await guest.locator(".tile").count(), 2);
		await shoot(guest, "link-grid");

		// A revokes it: the guest's next load says it is gone.
		await share.locator(".share-links li", { hasText: "password" }).getByRole("button", { name: "Revoke" }).click();
		await page.locator("#toast", { hasText: "Link revoked" }).waitFor();
		await guest.reload();
		await guest.getByText("This link does not exist, or its owner revoked it.").waitFor();
		await guest.context().close();
	});

	it("A deletes a photo (Moved to trash, Undo), deletes it again and restores it from the Trash page", async () => {
		const openDetail = async () => {
			await page.goto(`${server.url}/`);
			await tileOf(page, "dog").getByRole("link").click();
			const viewer = page.getByRole("dialog", { name: "Photo viewer" });
			await viewer.waitFor();
			await page.keyboard.press("i");
			await viewer.getByRole("link", { name: "Details & editing" }).click();
			await page.getByRole("heading", { level: 1, name: "dog" }).waitFor();
		};
		const deleteIt = async () => {
			await page.getByRole("button", { name: "Delete…" }).click();
			await page.getByRole("dialog", { name: "Delete this image?" }).getByRole("button", { name: "Delete" }).click();
			await page.getByRole("heading", { name: "Photos" }).waitFor();
		};
		await openDetail();
		await deleteIt();
		await waitFor("the album to leave the trashed photo out", async () => (String(await albumImages(bob)) === "mug-cc0" ? true : undefined));
		await page.locator("#toast", { hasText: "Moved to trash" }).getByRole("button", { name: "Undo" }).click();
		await page.getByRole("heading", { level: 1, name: "dog" }).waitFor();
		await waitFor("Undo to bring it back to the album", async () => (String(await albumImages(bob)) === "dog,mug-cc0" ? true : undefined));

		await deleteIt();
		await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Trash" }).click();
		await page.getByRole("heading", { level: 1, name: "Trash" }).waitFor();
		const trashed = page.locator(".trash-grid .tile", { hasText: "dog" });
		await shoot(page, "trash");
		await trashed.getByRole("button", { name: "Restore" }).click();
		await page.locator("#toast", { hasText: "“dog” restored" }).waitFor();
		await waitFor("the restore to bring it back to the album, for B too", async () => (String(await albumImages(bob)) === "dog,mug-cc0" ? true : undefined));
		const summary = (await bob.get(`/api/albums/${albumId}`)).body.album;
		assert.equal(summary.imageCount, 2);
	});

	it("logged no console errors", () => {
		assert.deepEqual(consoleErrors, []);
	});
});
