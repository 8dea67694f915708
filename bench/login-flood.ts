/**
 * Login flood benchmark (`npm run bench:login`, i.e. `node bench/login-flood.ts`): how much a
 * flood of wrong-password logins slows down another user's file I/O (issue 12). One embedded
 * node (every service), a victim user who downloads and uploads one request at a time with a
 * short pause between rounds, and signs in meanwhile, measured twice in the same run:
 *
 *  idle   nothing else runs;
 *  flood  BENCH_FLOOD logins kept in flight the whole time (closed loop, each answered one
 *         replaced at once), wrong passwords for made-up usernames from many client addresses
 *         (X-Forwarded-For with TRUST_PROXY=true; RATE_LIMIT_PER_MINUTE=0), so neither the
 *         per-account nor the per-address throttle stops them: every one that gets through costs
 *         a full scrypt. This is the worst case for the password pool, the case the throttle
 *         cannot help with.
 *
 * The flood runs in a child process of its own, so its answers do not delay the probe's timing
 * in this one (they share the machine's cores, as a real attacker's traffic shares the network).
 *
 * Before the password pool, scrypt ran on libuv's 4 shared threads and the same flood took a
 * download from 18 ms to 46 s. The goal: downloads and uploads under the flood within 2x of idle.
 * Prints a table and writes bench/results/login-flood-latest.json.
 *
 * Environment (defaults in brackets):
 *   BENCH_ROUNDS [40]              probe rounds per phase (one download and one upload each)
 *   BENCH_PAUSE_MS [100]           pause between rounds
 *   BENCH_FLOOD [64]               logins in flight during the flood
 *   BENCH_ADDRESSES [4096]         client addresses the flood rotates through
 *   BENCH_PHASE_MAX_SECONDS [45]   a phase stops after this long even if rounds are left
 *   PASSWORD_HASH_WORKERS, PASSWORD_HASH_QUEUE   passed on to the node when set
 *   BENCH_FLOOD_TARGET [spread]    `spread`: made-up usernames (each guess costs scrypt);
 *                                  `one-account`: guesses at one existing account, which the
 *                                  per-account throttle refuses after 5 (the gateway's cost alone)
 */
import { fork } from "node:child_process";
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Client } from "../test/helpers/client.ts";
import { startServer, type RunningServer } from "../test/helpers/server.ts";
import { envInt, machineInfo, makeJpegs, printTable, round, saveResults, sleep, summarize, uploadMultipart, type BenchImage, type Summary } from "./lib.ts";

const params = {
	rounds: envInt("BENCH_ROUNDS", 40, 1),
	pauseMs: envInt("BENCH_PAUSE_MS", 100, 0),
	flood: envInt("BENCH_FLOOD", 64, 1),
	addresses: envInt("BENCH_ADDRESSES", 4096, 1),
	phaseMaxSeconds: envInt("BENCH_PHASE_MAX_SECONDS", 45, 1),
	floodTarget: process.env.BENCH_FLOOD_TARGET || "spread"
};
if (!["spread", "one-account"].includes(params.floodTarget)) throw new Error("BENCH_FLOOD_TARGET must be spread or one-account");

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

interface Answer {
	status: number;
	type: string | null;
	ms: number;
	body: any;
}

function request(url: string, method: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
	const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
	const started = performance.now();
	return new Promise((resolve, reject) => {
		const req = http.request(
			url,
			{ method, agent, headers: { ...headers, ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}) } },
			res => {
				const chunks: Buffer[] = [];
				res.on("data", (chunk: Buffer) => chunks.push(chunk));
				res.on("error", reject);
				res.on("end", () => {
					const ms = performance.now() - started;
					let parsed: any = null;
					if (res.headers["content-type"]?.includes("json")) {
						try {
							parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
						} catch {
							// not JSON after all
						}
					}
					resolve({ status: res.statusCode ?? 0, type: parsed?.type ?? null, ms, body: parsed });
				});
			}
		);
		req.on("error", reject);
		req.setTimeout(120_000, () => req.destroy(new Error("timed out after 120 s")));
		req.end(payload);
	});
}

interface PhaseResult {
	download: Summary;
	upload: Summary;
	login: Summary;
	loginStatuses: Record<string, number>;
	errors: string[];
	seconds: number;
}

/**
 * The victim's rounds: download, upload, pause; beside them, on their own, sign in, pause, until
 * the rounds are done (a login waiting behind the flood's does not hold the file rounds up).
 */
async function probe(url: string, token: string, imageIds: string[], images: BenchImage[], password: string): Promise<PhaseResult> {
	const times = { download: [] as number[], upload: [] as number[], login: [] as number[] };
	const loginStatuses: Record<string, number> = {};
	const errors: string[] = [];
	const started = performance.now();
	let done = false;
	// A network error (a keep-alive socket the server closed, say) is noted, not fatal.
	const noted = async (what: string, run: () => Promise<void>) => {
		try {
			await run();
		} catch (err) {
			errors.push(`${what}: ${(err as Error).message}`);
		}
	};
	const files = async () => {
		for (let round = 0; round < params.rounds && performance.now() - started < params.phaseMaxSeconds * 1000; round++) {
			await noted("download", async () => {
				const download = await request(`${url}/api/images/${imageIds[round % imageIds.length]}/content`, "GET", undefined, { authorization: `Bearer ${token}` });
				if (download.status === 200) times.download.push(download.ms);
				else errors.push(`download ${download.status} ${download.type}`);
			});
			await noted("upload", async () => {
				const upload = await uploadMultipart(`${url}/api/images`, {}, images[round]!, { token, agent });
				if (upload.status === 201) times.upload.push(upload.ms);
				else errors.push(`upload ${upload.status} ${JSON.stringify(upload.body).slice(0, 120)}`);
			});
			await sleep(params.pauseMs);
		}
		done = true;
	};
	const logins = async () => {
		while (!done) {
			await noted("login", async () => {
				const login = await request(`${url}/api/auth/login`, "POST", { username: "victim", password }, { "x-forwarded-for": "192.168.7.7" });
				const key = `${login.status}${login.type && login.status !== 200 ? ` ${login.type}` : ""}`;
				loginStatuses[key] = (loginStatuses[key] ?? 0) + 1;
				if (login.status === 200) times.login.push(login.ms);
			});
			await sleep(params.pauseMs);
		}
	};
	await Promise.all([files(), logins()]);
	return {
		download: summarize(times.download),
		upload: summarize(times.upload),
		login: summarize(times.login),
		loginStatuses,
		errors: errors.slice(0, 10),
		seconds: round((performance.now() - started) / 1000)
	};
}

/** In the child (`--flood <url>`): BENCH_FLOOD wrong-password logins in flight until told to stop. */
async function runFlood(url: string): Promise<void> {
	const stop = { done: false };
	process.once("message", () => (stop.done = true));
	const load = flood(url, stop);
	process.send!({ type: "started" });
	process.send!({ type: "stats", stats: await load.finish() });
	agent.destroy();
	process.disconnect();
}

/** Starts the flood in a child process; `finish` stops it and returns its counts. */
async function startFlood(url: string) {
	const child = fork(fileURLToPath(import.meta.url), ["--flood", url], { stdio: "inherit" });
	const messages: { type: string; stats?: unknown }[] = [];
	const waitFor = (type: string) =>
		new Promise<any>((resolve, reject) => {
			const found = messages.find(message => message.type === type);
			if (found) return resolve(found);
			child.on("message", (message: any) => message.type === type && resolve(message));
			child.once("exit", code => reject(new Error(`the flood process exited (${code})`)));
		});
	child.on("message", (message: any) => messages.push(message));
	await waitFor("started");
	return {
		async finish(): Promise<{ sent: number; perSecond: number; statuses: Record<string, number>; networkErrors: number; seconds: number }> {
			child.send("stop");
			return (await waitFor("stats")).stats;
		}
	};
}

/** BENCH_FLOOD wrong-password logins in flight until `stop` is set. */
function flood(url: string, stop: { done: boolean }) {
	const statuses: Record<string, number> = {};
	let sent = 0;
	let failed = 0;
	const started = performance.now();
	const loop = async (lane: number) => {
		while (!stop.done) {
			const n = sent++;
			const address = `10.${(n % params.addresses) >> 8}.${n % params.addresses & 255}.${lane}`;
			try {
				const res = await request(`${url}/api/auth/login`, "POST", { username: params.floodTarget === "spread" ? `guess${n}` : "target", password: `wrong-password-${n}` }, { "x-forwarded-for": address });
				const key = `${res.status}${res.type ? ` ${res.type}` : ""}`;
				statuses[key] = (statuses[key] ?? 0) + 1;
			} catch {
				failed++;
			}
		}
	};
	const lanes = Array.from({ length: params.flood }, (_, lane) => loop(lane));
	return {
		async finish() {
			await Promise.all(lanes);
			const seconds = (performance.now() - started) / 1000;
			return { sent, perSecond: round(sent / seconds), statuses, networkErrors: failed, seconds: round(seconds) };
		}
	};
}

async function main(): Promise<void> {
	const machine = machineInfo();
	const dir = mkdtempSync(join(tmpdir(), "imgmesh-login-bench-"));
	let server: RunningServer | undefined;
	try {
		const images = await makeJpegs(dir, 2 * params.rounds + 4);
		const passOn = Object.fromEntries(["PASSWORD_HASH_WORKERS", "PASSWORD_HASH_QUEUE"].flatMap(name => (process.env[name] ? [[name, process.env[name]!]] : [])));
		server = await startServer({ TRUST_PROXY: "true", RATE_LIMIT_PER_MINUTE: "0", ...passOn });
		const password = "victim password 123";
		const victim = await new Client(server.url).register("victim", password);
		await new Client(server.url).register("target", "target password 123");
		const ids: string[] = [];
		for (const image of images.slice(2 * params.rounds)) {
			const res = await uploadMultipart(`${server.url}/api/images`, {}, image, { token: victim.token, agent });
			if (res.status !== 201) throw new Error(`seed upload: ${res.status} ${JSON.stringify(res.body)}`);
			ids.push((res.body as { images: { id: string }[] }).images[0]!.id);
		}
		await sleep(2000); // the seed images' renditions

		console.log(`idle: ${params.rounds} rounds ...`);
		const idle = await probe(server.url, victim.token!, ids, images.slice(0, params.rounds), password);

		console.log(`flood: ${params.flood} wrong-password logins in flight, ${params.rounds} rounds ...`);
		const load = await startFlood(server.url);
		await sleep(2000);
		const underFlood = await probe(server.url, victim.token!, ids, images.slice(params.rounds, 2 * params.rounds), password);
		const floodStats = await load.finish();

		const ratio = (key: "download" | "upload" | "login", p: "p50" | "p99") => round(underFlood[key][p] / idle[key][p]);
		const row = (label: string, key: "download" | "upload" | "login") => [
			label,
			`${idle[key].count}`,
			idle[key].p50,
			idle[key].p99,
			`${underFlood[key].count}`,
			underFlood[key].p50,
			underFlood[key].p99,
			ratio(key, "p50"),
			ratio(key, "p99")
		];
		printTable(
			`victim latency (ms), idle vs ${params.flood} wrong-password logins in flight, ${params.floodTarget} (${floodStats.perSecond} logins/s answered)`,
			["request", "idle n", "idle p50", "idle p99", "flood n", "flood p50", "flood p99", "p50 ratio", "p99 ratio"],
			[row("GET /api/images/:id/content", "download"), row("POST /api/images (one JPEG)", "upload"), row("POST /api/auth/login (right password)", "login")]
		);
		console.log(`flood answers: ${JSON.stringify(floodStats.statuses)}; victim logins idle ${JSON.stringify(idle.loginStatuses)}, under flood ${JSON.stringify(underFlood.loginStatuses)}`);
		for (const error of [...idle.errors, ...underFlood.errors]) console.log(`  error: ${error}`);
		const goalMet = ratio("download", "p50") <= 2 && ratio("upload", "p50") <= 2;
		console.log(`goal (download and upload p50 within 2x of idle): ${goalMet ? "met" : "NOT met"}`);
		const path = saveResults("login-flood", {
			benchmark: "login-flood",
			date: new Date().toISOString(),
			machine,
			params,
			serverEnv: passOn,
			loadAvgAtEnd: loadavg().map(value => round(value)),
			idle,
			flood: { ...underFlood, logins: floodStats },
			ratios: { downloadP50: ratio("download", "p50"), downloadP99: ratio("download", "p99"), uploadP50: ratio("upload", "p50"), uploadP99: ratio("upload", "p99"), loginP50: ratio("login", "p50") },
			goalMet
		});
		console.log(`saved ${path}`);
	} finally {
		agent.destroy();
		await server?.stop().catch(() => undefined);
		rmSync(dir, { recursive: true, force: true });
	}
}

if (process.argv[2] === "--flood") {
	await runFlood(process.argv[3]!);
} else {
	const deadline = setTimeout(() => {
		console.error("bench:login took longer than 10 minutes: giving up");
		process.exit(1);
	}, 10 * 60_000);
	deadline.unref();
	await main().catch(err => {
		console.error(err);
		process.exitCode = 1;
	});
}
