// Timing of generation through libllama with the libtorch path's harness: the same cases,
// warmup, alternating rounds, seeded prompts and summary (models/profile/generation.ts).
import { LabError } from "../../errors.ts";
import {
  alternateRounds,
  type GenerationCase,
  type GenerationProfile,
  type ProfileOptions,
  type Run,
  syntheticPrompts,
} from "../profile/generation.ts";
import type { LlamaCppModel } from "./model.ts";
import { argmax } from "./scoring.ts";

/** One generation of `c`: each row a sequence; prefill in one decode, then one token per step. */
function runOnce(model: LlamaCppModel, c: GenerationCase, rows: number[][]): Run {
  model.clear();
  const t0 = performance.now();
  const prefill = rows.flatMap((ids, seq) =>
    ids.map((id, pos) => ({ id, pos, seq, logits: pos === ids.length - 1 }))
  );
  let next = model.decode(prefill).map(argmax);
  const tFirst = performance.now();
  const steps: number[] = [];
  let last = tFirst;
  for (let i = 1; i < c.newTokens; i++) {
    const pos = c.promptTokens + i - 1;
    next = model.decode(next.map((id, seq) => ({ id, pos, seq, logits: true }))).map(argmax);
    const now = performance.now();
    steps.push(now - last);
    last = now;
  }
  return { ttft: tFirst - t0, decodeMs: last - tFirst, steps, e2e: last - t0 };
}

/**
 * Profiles `cases` on a llama.cpp model opened with at least max(batch) sequences and
 * max(batch × (prompt + new)) context tokens. KV cache off is not offered by llama.cpp.
 */
export function profileLlamaCpp(
  model: LlamaCppModel,
  cases: readonly GenerationCase[],
  opts: ProfileOptions = {},
): GenerationProfile[] {
  for (const c of cases) {
    if (!c.kvCache) throw new LabError("profile: llama.cpp always decodes with its KV cache");
    if (c.batch > model.sequences) {
      throw new LabError(`profile: batch ${c.batch} > the ${model.sequences} sequences opened`);
    }
  }
  const rows = cases.map((c) =>
    syntheticPrompts(model.vocabSize, c.batch, c.promptTokens, opts.seed ?? 0)
  );
  return alternateRounds(cases, (i) => runOnce(model, cases[i], rows[i]), "cpu", opts);
}
