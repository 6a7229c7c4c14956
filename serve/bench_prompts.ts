// The requests of a serving benchmark: synthetic prompts of a seeded length distribution, or
// the prompts of a JSONL file, each with its output length.
import { LabError } from "../errors.ts";
import { rng } from "../models/profile/stats.ts";
import type { BenchRequest } from "./load_client.ts";

/** A length: fixed, or drawn uniformly from [min, max]. */
export type LengthSpec = number | [number, number];

const WORDS = (
  "time year people way day man thing woman life child world school state family student " +
  "group country problem hand part place case week company system program question work " +
  "government number night point home water room mother area money story fact month lot right"
).split(" ");

function draw(spec: LengthSpec, r: () => number): number {
  if (typeof spec === "number") return spec;
  return spec[0] + Math.floor(r() * (spec[1] - spec[0] + 1));
}

/** Text of about `tokens` tokens: seeded words, cut to size with `count` when given. */
function syntheticText(tokens: number, r: () => number, count?: (s: string) => number): string {
  const words: string[] = [];
  const n = () => (count ? count(words.join(" ")) : words.length);
  while (n() < tokens) words.push(WORDS[Math.floor(r() * WORDS.length)]);
  let text = words.join(" ");
  if (count) { while (text.length > 1 && count(text) > tokens) text = text.slice(0, -1); }
  return text;
}

/** `n` synthetic requests. `count` (a tokenizer) makes prompt lengths exact. */
export function syntheticRequests(
  n: number,
  promptTokens: LengthSpec,
  outputTokens: LengthSpec,
  seed: number,
  count?: (s: string) => number,
): BenchRequest[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    const p = draw(promptTokens, r);
    return { prompt: syntheticText(p, r, count), outputTokens: draw(outputTokens, r) };
  });
}

/**
 * Requests from a JSONL file: one `{ "prompt": "…", "output_tokens"?: n }` per line; lines are
 * used in order, repeated when fewer than `n`; output_tokens falls back to `outputTokens`.
 */
export function datasetRequests(
  path: string,
  n: number,
  outputTokens: LengthSpec,
  seed: number,
): BenchRequest[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new LabError(`serve_bench: dataset ${path} cannot be read: ${(e as Error).message}`);
  }
  const rows = text.split("\n").map((l, i) => [l.trim(), i + 1] as const).filter(([l]) => l);
  if (rows.length === 0) throw new LabError(`serve_bench: dataset ${path} has no lines`);
  const items = rows.map(([line, no]) => {
    let j;
    try {
      j = JSON.parse(line);
    } catch {
      throw new LabError(`serve_bench: ${path} line ${no} is not JSON`);
    }
    if (typeof j?.prompt !== "string" || !j.prompt) {
      throw new LabError(`serve_bench: ${path} line ${no} needs a non-empty string "prompt"`);
    }
    const out = j.output_tokens;
    if (out !== undefined && !(Number.isInteger(out) && out > 0)) {
      throw new LabError(
        `serve_bench: ${path} line ${no}: "output_tokens" must be a positive integer`,
      );
    }
    return { prompt: j.prompt as string, out: out as number | undefined };
  });
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const it = items[i % items.length];
    return { prompt: it.prompt, outputTokens: it.out ?? draw(outputTokens, r) };
  });
}
