// Which linear modules a LoRA target list selects: Hugging Face module names, PEFT's short
// names ("q_proj" matches any module ending in ".q_proj"), the lab's globs (glob.ts), or
// "all-linear"; plus the refusals (fused projections, a tied lm_head) that name the fix.
import { moduleGlob } from "../../glob.ts";
import type { LlamaModel } from "../llama.ts";
import { linearModules, type ModuleSlot } from "../modules.ts";
import { LoraError } from "./layer.ts";

/** Whether module `name` matches one target pattern (PEFT's suffix rule, plus globs). */
export function matchesTarget(name: string, pattern: string): boolean {
  if (pattern === "all-linear") return name !== "lm_head";
  return moduleGlob(pattern)(name);
}

/** The modules `targets` select, in model order; throws naming the fix when none match. */
export function selectModules(
  model: LlamaModel,
  targets: string | readonly string[],
): ModuleSlot[] {
  const patterns = typeof targets === "string" ? [targets] : [...targets];
  if (patterns.length === 0) {
    throw new LoraError(
      'targetModules is empty: name modules like ["q_proj", "v_proj"] or "all-linear"',
    );
  }
  const slots = linearModules(model, { includeTiedHead: true });
  const hit = (s: ModuleSlot) =>
    patterns.some((p) =>
      matchesTarget(s.name, p) || (s.fusedInto !== null && matchesTarget(s.fusedInto, p))
    );
  const chosen = slots.filter(hit);
  if (chosen.length === 0) {
    throw new LoraError(
      `targetModules ${JSON.stringify(patterns)} matched no module of this model; module names ` +
        `look like "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj", "lm_head" ` +
        `(short names like "q_proj", globs like "model.layers.1*.mlp.*", or "all-linear")`,
    );
  }
  const fusedHit = chosen.find((s) => s.fusedInto !== null);
  if (fusedHit) {
    throw new LoraError(
      `targetModules selects ${fusedHit.name}, which this ${model.config.architecture} checkpoint stores fused ` +
        `as ${fusedHit.fusedInto}; LoRA on fused projections is not supported yet. Target o_proj and ` +
        `down_proj instead.`,
    );
  }
  if (chosen.some((s) => s.name === "lm_head") && model.config.tieWordEmbeddings) {
    throw new LoraError(
      "targetModules selects lm_head, which shares its weight with the embeddings in this model; " +
        "leave lm_head out",
    );
  }
  return chosen;
}
