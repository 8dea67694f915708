// Stops `npm install`, `npm start`, `npm test` and `npm run repl` (their pre scripts) with one
// line when this Node.js is too old for imgmesh: the server is TypeScript run by Node's type
// stripping, which needs no flag from 22.18, so an older Node fails later and obscurely
// (ERR_UNKNOWN_FILE_EXTENSION ".ts", or "Could not find test/**/*.test.ts").
// Plain CommonJS in old syntax, so that the old Node itself can run it. The minimum is read from
// package.json's engines, the one place it is written.
"use strict";

var fs = require("fs");
var path = require("path");

var RECOMMENDED_MAJOR = 24;

/** The minimum from package.json `engines.node`, which must read ">=MAJOR.MINOR[.PATCH]". */
function minimum() {
	var pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "package.json"), "utf8"));
	var range = String((pkg.engines && pkg.engines.node) || "").trim();
	var match = /^>=\s*(\d+)\.(\d+)(?:\.(\d+))?$/.exec(range);
	if (!match) throw new Error('scripts/check-node.cjs: package.json engines.node must read ">=MAJOR.MINOR", not ' + JSON.stringify(range));
	return { text: range.replace(/^>=\s*/, ""), parts: [Number(match[1]), Number(match[2]), Number(match[3] || 0)] };
}

/** The one-line message for a Node `version` ("v20.20.2") older than `min`, or null when it is new enough. */
function problem(version, min, execPath) {
	var parts = String(version).replace(/^v/, "").split(/[.+-]/).slice(0, 3).map(Number);
	for (var i = 0; i < 3; i++) {
		var have = parts[i] || 0;
		if (have > min.parts[i]) return null;
		if (have < min.parts[i]) break;
		if (i === 2) return null;
	}
	return (
		"imgmesh needs Node.js >= " + min.text + " (Node " + RECOMMENDED_MAJOR + " LTS recommended), but this is Node " + version +
		(execPath ? " (" + execPath + ")" : "") +
		": install Node " + RECOMMENDED_MAJOR + " from https://nodejs.org/en/download (or `nvm install " + RECOMMENDED_MAJOR + "`), put it first on your PATH, then run the npm command again."
	);
}

module.exports = { minimum: minimum, problem: problem, RECOMMENDED_MAJOR: RECOMMENDED_MAJOR };

if (require.main === module) {
	var message = problem(process.version, minimum(), process.execPath);
	if (message) {
		console.error(message);
		process.exit(1);
	}
}
