// What a model can take, checked before it runs: positions within max_position_embeddings and
// token ids within vocab_size. Past either, the forward pass does not fail loudly: RoPE runs on
// past its tables and a bad id reads a wrong row or raises a bare RangeError, so the numbers that
// come out are silently wrong. Every path (evaluate, generate, profile, analyze) asks here.
import { LabError } from "../errors.ts";
import type { CausalLM } from "./causal_lm.ts";

/** The config.json a model came from, for messages. */
function configOf(model: CausalLM): string {
  return model.source ? `${model.source.replace(/\/+$/, "")}/config.json` : "its config.json";
}

/**
 * Refuses `positions` past the model's max_position_embeddings, with both numbers and `fix`
 * (what to change, in the caller's terms, e.g. "set contextLength to 512 or less").
 */
export function checkPositions(
  model: CausalLM,
  positions: number,
  what: string,
  fix: string,
): void {
  const max = model.config.maxPositionEmbeddings;
  if (positions <= max) return;
  const rs = model.config.ropeScaling;
  const scaled = rs.type === "default"
    ? ""
    : ` (its rope_scaling, ${rs.type} ×${rs.factor}, is already counted in that limit)`;
  throw new LabError(
    `${what} needs ${positions} positions, but the model allows ${max} ` +
      `(max_position_embeddings in ${configOf(model)})${scaled}: ${fix}`,
  );
}

/**
 * Refuses token ids at or past vocab_size. Ids that a tokenizer produced mean tokenizer.json
 * and config.json disagree (`fromTokenizer`); ids a caller passed are simply out of range.
 */
export function checkTokenIds(
  model: CausalLM,
  ids: readonly number[],
  what: string,
  fromTokenizer = true,
): void {
  const vocab = model.config.vocabSize;
  let worst = -1;
  for (const t of ids) {
    if (!Number.isInteger(t) || t < 0) {
      throw new LabError(`${what}: token id ${t} is not a non-negative integer`);
    }
    if (t > worst) worst = t;
  }
  if (worst < vocab) return;
  if (!fromTokenizer) {
    throw new LabError(
      `${what}: token id ${worst} is outside the vocabulary [0, ${vocab}) of ${configOf(model)}`,
    );
  }
  const tokSize = model.tokenizer?.vocabSize;
  throw new LabError(
    `${what}: tokenizer.json and config.json disagree: the tokenizer` +
      `${tokSize !== undefined ? ` (${tokSize} tokens)` : ""} produced token id ${worst}, but ` +
      `vocab_size in ${configOf(model)} is ${vocab}. Use the tokenizer.json that came with ` +
      `these weights (or correct vocab_size).`,
  );
}
