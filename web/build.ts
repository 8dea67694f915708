/**
 * Builds the web app into dist/web: tsc type-checks web/src and emits native ES modules (the
 * browser loads them as they are, so no bundler is needed), then everything but index.html goes
 * under assets/<content hash>/ so the gateway can cache it forever, and index.html (never
 * cached) points at that folder. `--if-missing` does nothing when a build is already there, for
 * `npm start` on a fresh clone.
 *
 * The app imports the API's types from the server's models/ (`import type` only, erased from the
 * output). tsc therefore compiles from the repository root (rootDir ".."): the app lands in
 * web/src/ of the staging folder and only that folder is shipped; the build fails if the shipped
 * code imports anything outside it.
 *
 * The one runtime dependency, thumbhash (blurred placeholders), is a single dependency-free ES
 * module: it is copied as it is to web/src/vendor/thumbhash.js of the output, where the app
 * imports it by relative path (web/src/vendor/thumbhash.d.ts lends tsc the package's own types).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WEB = join(ROOT, "web");
const OUT = join(ROOT, "dist", "web");
const STAGING = join(ROOT, "dist", "web-build");
/** Where tsc puts the app inside STAGING (it mirrors the repository from its root). */
const EMITTED = join(STAGING, "web", "src");

/** Third-party ES modules shipped as they are: package name → path under the app's folder. */
const VENDOR: Record<string, string> = { thumbhash: "vendor/thumbhash.js" };

/** Copies each vendored module with a banner naming it, its version and licence. */
function copyVendor(require: NodeJS.Require): void {
	for (const [name, target] of Object.entries(VENDOR)) {
		const pkg = JSON.parse(readFileSync(require.resolve(`${name}/package.json`), "utf8")) as { version: string; license: string };
		const code = readFileSync(require.resolve(name), "utf8");
		mkdirSync(dirname(join(EMITTED, target)), { recursive: true });
		writeFileSync(join(EMITTED, target), `/*! ${name} ${pkg.version} (${pkg.license} licence) */\n${code}`);
	}
}

function filesUnder(dir: string): string[] {
	return readdirSync(dir, { withFileTypes: true, recursive: true })
		.filter(entry => entry.isFile())
		.map(entry => join(entry.parentPath, entry.name))
		.sort();
}

/**
 * /favicon.ico, which browsers ask for by themselves (e.g. when showing a bare image): an ICO
 * holding one 32 px PNG drawn from favicon.svg.
 */
async function favicon(): Promise<Buffer> {
	const png = await sharp(join(WEB, "favicon.svg")).resize(32, 32).png().toBuffer();
	const header = Buffer.alloc(22);
	header.writeUInt16LE(1, 2); // type: icon
	header.writeUInt16LE(1, 4); // one image
	header.writeUInt8(32, 6); // width
	header.writeUInt8(32, 7); // height
	header.writeUInt16LE(1, 10); // colour planes
	header.writeUInt16LE(32, 12); // bits per pixel
	header.writeUInt32LE(png.length, 14);
	header.writeUInt32LE(header.length, 18); // offset of the PNG
	return Buffer.concat([header, png]);
}

/**
 * Throws if an emitted module imports a file outside the shipped folder: only type-only imports
 * (which tsc erases) may reach the server's models/.
 */
function checkSelfContained(dir: string): void {
	// tsc writes static imports and re-exports at the start of a line; dynamic ones anywhere.
	const specifiers = [/^\s*(?:import|export)\s[^;]*?\bfrom\s*(["'])(.+?)\1/gm, /^\s*import\s*(["'])(.+?)\1/gm, /\bimport\s*\(\s*(["'])(.+?)\1\s*\)/g];
	for (const file of filesUnder(dir).filter(name => name.endsWith(".js"))) {
		const code = readFileSync(file, "utf8");
		for (const [, , specifier] of specifiers.flatMap(pattern => [...code.matchAll(pattern)])) {
			const inside = specifier.startsWith(".") && !relative(dir, join(dirname(file), specifier)).startsWith("..");
			if (!inside) throw new Error(`web: ${relative(dir, file)} imports "${specifier}", outside web/src (use \`import type\` for the server's types)`);
		}
	}
}

async function build(): Promise<void> {
	rmSync(STAGING, { recursive: true, force: true });
	const require = createRequire(import.meta.url);
	// typescript's exports map hides bin/tsc: find it next to its package.json.
	const tsc = join(dirname(require.resolve("typescript/package.json")), "bin", "tsc");
	execFileSync(process.execPath, [tsc, "-p", join(WEB, "tsconfig.json")], { stdio: "inherit" });
	checkSelfContained(EMITTED);
	copyVendor(require);
	for (const file of ["styles.css", "favicon.svg"]) cpSync(join(WEB, file), join(EMITTED, file));
	const hash = createHash("sha256");
	for (const file of filesUnder(EMITTED)) hash.update(relative(EMITTED, file)).update(readFileSync(file));
	const version = hash.digest("hex").slice(0, 12);
	rmSync(OUT, { recursive: true, force: true });
	mkdirSync(join(OUT, "assets"), { recursive: true });
	cpSync(EMITTED, join(OUT, "assets", version), { recursive: true });
	rmSync(STAGING, { recursive: true, force: true });
	const html = readFileSync(join(WEB, "index.html"), "utf8").replaceAll("%ASSETS%", `/assets/${version}`);
	writeFileSync(join(OUT, "index.html"), html);
	writeFileSync(join(OUT, "favicon.ico"), await favicon());
	console.log(`web: built dist/web (assets/${version})`);
}

if (!(process.argv.includes("--if-missing") && existsSync(join(OUT, "index.html")))) await build();
