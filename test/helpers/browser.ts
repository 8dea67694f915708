/**
 * Chromium for the browser tests (test/e2e/web.test.ts, share-page.test.ts, sharing-journey.test.ts): Debian's
 * build driven by playwright-core, the web app built before the node starts, contexts that fail the test
 * on any console error but those it provokes, and signing in through the sign-in page.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const ARTIFACTS = join(ROOT, "test", "artifacts");
const CHROMIUM = "/usr/bin/chromium";
/** Playwright gives every launch a fresh --user-data-dir of its own (it refuses one in args). */
const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const VIEWPORT = { width: 1280, height: 900 };
/** The browser's locale and time zone, so that dates read the same here and in the page. */
export const LOCALE = { locale: "en-US", timezoneId: "UTC" };

/** Why the browser tests cannot run here, or false when they can: pass it as `skip` to describe. */
export function chromiumSkipReason(): string | false {
	return existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)`;
}

/** Builds the browser app, as `npm install` does: before the node starts, which serves it from then on. */
export function buildWebApp(): void {
	execFileSync(process.execPath, [join(ROOT, "web", "build.ts")], { cwd: ROOT, stdio: "ignore" });
}

export function launchChromium(): Promise<Browser> {
	return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
}

/**
 * New contexts whose pages push every console error and uncaught exception into `errors`, but
 * those `provoked(text, url)` says the test caused (Chromium logs every 4xx answer as one).
 */
export function contextsFor(browser: Browser, errors: string[], provoked: (text: string, url: string) => boolean): () => Promise<BrowserContext> {
	return async () => {
		const context = await browser.newContext({ viewport: VIEWPORT, ...LOCALE });
		context.setDefaultTimeout(15_000);
		context.on("page", page => {
			page.on("console", message => {
				if (message.type() === "error" && !provoked(message.text(), message.location().url || page.url())) errors.push(`${message.location().url}: ${message.text()}`);
			});
			page.on("pageerror", err => errors.push(`${page.url()}: ${err.message}`));
		});
		return context;
	};
}

/** A page of `context` signed in through the sign-in page, on the library. */
export async function signIn(context: BrowserContext, base: string, username: string, password: string): Promise<Page> {
	const page = await context.newPage();
	await page.goto(`${base}/signin`);
	await page.getByLabel("Username").fill(username);
	await page.getByLabel("Password").fill(password);
	await page.getByRole("button", { name: "Sign in" }).click();
	await page.waitForURL(url => url.pathname === "/");
	return page;
}
