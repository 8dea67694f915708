/**
 * From a model's class scores to tags: friendly labels (label rules), then the top k above a
 * confidence floor. Classes that end up with the same label (ImageNet has two "crane"s and two
 * "maillot"s) count as one tag whose score is their sum. Equal scores (common with quantized
 * models, whose logits saturate at the same value) are ordered by class index, lowest first, so
 * the answer never depends on sort stability.
 */
import type { LoadedManifest } from "./manifest.ts";
import { normalizeLabel } from "../images/tags.ts";

export interface ScoredLabel {
	label: string;
	score: number;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** One WordNet synonym list ("tabby, tabby cat") -> one label, by the manifest's rule. */
export function friendlyLabel(text: string, rule: "first" | "specific" = "specific"): string {
	const names = text.split(",").map(name => name.trim()).filter(Boolean);
	const first = names[0] ?? text;
	if (rule === "first") return first;
	const word = new RegExp(`(^|\\s)${escapeRegExp(first)}(\\s|$)`, "i");
	return names.slice(1).find(name => word.test(name)) ?? first;
}

/** The tag label of every class, in class order. */
export function classLabels(manifest: LoadedManifest): string[] {
	const rules = manifest.labelRules ?? {};
	return manifest.classes.map((text, index) => normalizeLabel(rules.rename?.[String(index)] ?? friendlyLabel(text, rules.synonyms)));
}

/** The best `k` labels scoring at least `minScore`, best first; scores rounded to 4 digits. */
export function topLabels(probabilities: ArrayLike<number>, labels: readonly string[], k: number, minScore: number): ScoredLabel[] {
	const merged = new Map<string, { score: number; first: number }>();
	for (let index = 0; index < labels.length; index++) {
		const label = labels[index];
		const entry = merged.get(label);
		if (entry) entry.score += probabilities[index];
		else merged.set(label, { score: probabilities[index], first: index });
	}
	return [...merged]
		.filter(([, entry]) => entry.score >= minScore)
		.sort(([, a], [, b]) => b.score - a.score || a.first - b.first)
		.slice(0, k)
		.map(([label, entry]) => ({ label, score: Math.round(entry.score * 1e4) / 1e4 }));
}

/** Softmax in place (max-subtracted, so saturated logits cannot overflow). */
export function softmax(values: Float32Array): Float32Array {
	let max = -Infinity;
	for (const value of values) if (value > max) max = value;
	let sum = 0;
	for (let i = 0; i < values.length; i++) {
		values[i] = Math.exp(values[i] - max);
		sum += values[i];
	}
	for (let i = 0; i < values.length; i++) values[i] /= sum;
	return values;
}
