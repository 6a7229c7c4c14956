// The evaluate stage's llama.cpp branch: perplexity over the lab's token ids of the text, with
// the libtorch path's sliding windows, so both engines score identical tokens.
import type { InputInfo, StageContext } from "../engine/mod.ts";
import { LabError } from "../errors.ts";
import { llamaCppSlidingNll } from "../models/llama_cpp/scoring.ts";
import { llamaCppScoringIds, openLlamaCpp } from "./llama_cpp.ts";

/** What the llama.cpp branch reads of the evaluate params. */
export interface LlamaCppEvalParams {
  dataset: string;
  metric: string;
  contextLength: number;
  stride?: number;
  maxTokens?: number;
}

/** Perplexity of a llama.cpp model input; records evals rows with engine "llama.cpp". */
export function evaluateWithLlamaCpp(
  ctx: Pick<StageContext<unknown, { model: InputInfo }>, "inputs" | "record" | "metric">,
  p: LlamaCppEvalParams,
  text: string,
  onProgress: (done: number, total: number) => void,
): void {
  if (p.metric !== "perplexity") {
    throw new LabError(
      `evaluate: ${p.metric} runs libtorch models only; llama.cpp models take metric "perplexity"`,
    );
  }
  const { ids, tokenizer } = llamaCppScoringIds(ctx.inputs.model, text);
  using model = openLlamaCpp(ctx.inputs.model, p.contextLength);
  const r = llamaCppSlidingNll(model, ids, {
    contextLength: p.contextLength,
    stride: p.stride,
    maxTokens: p.maxTokens,
    onProgress,
  });
  const ppl = Math.exp(r.nll / r.tokens);
  // Words and bytes of the scored text, counted as perplexity() counts them.
  const scored = r.tokens + 1 >= ids.length
    ? text
    : tokenizer.decode(ids.slice(0, r.tokens + 1), { skipSpecialTokens: true });
  const words = scored.split(/\s+/).filter((w) => w.length > 0).length;
  const bytes = new TextEncoder().encode(scored).byteLength;
  const bitsPerByte = r.nll / (Math.max(1, bytes) * Math.LN2);
  const row = (metric: string, value: number) =>
    ctx.record("evals", {
      dataset: p.dataset,
      metric,
      value,
      tokens: r.tokens,
      engine: "llama.cpp",
    });
  row("ppl", ppl);
  row("word_ppl", Math.exp(r.nll / Math.max(1, words)));
  row("bits_per_byte", bitsPerByte);
  row("nll", r.nll / r.tokens);
  ctx.metric("ppl", ppl);
  ctx.metric("bits_per_byte", bitsPerByte, "bits");
}
