// Full fine-tuning vs LoRA (r 4 and 16) vs QLoRA on the bundled instruction set, from the same
// base: the small tiny model first trained on the bundled text, so that it knows bytes and words.
//
//   deno task lab run pipelines/peft_compare.ts
//   deno task lab query "select * from finetune_summary where pipeline = 'peft-compare'"
//
// finetune_summary (engine/tables.ts) is this SQL over the stages and metrics tables:
//
//   SELECT s.pipeline, s.name, json_extract_string(s.params, '$.method') AS method,
//          max(m.value) FILTER (WHERE m.name = 'trainable_params') AS trainable_params,
//          max(m.value) FILTER (WHERE m.name = 'peak_mem_bytes') / 1048576 AS peak_mb,
//          max(m.value) FILTER (WHERE m.name = 'train_tokens_per_s') AS tokens_per_s,
//          max(m.value) FILTER (WHERE m.name = 'val_loss_before') AS val_loss_before,
//          max(m.value) FILTER (WHERE m.name = 'val_loss_after') AS val_loss_after, ...
//   FROM latest_stages s JOIN metrics m USING (key) WHERE s.kind = 'finetune' AND s.status IN ('ok', 'cached') GROUP BY ALL
import { finetune, load, pipeline } from "../mod.ts";

// Shared by every method so that only the method differs.
const COMMON = {
  data: "data/instructions.jsonl",
  maxLength: 128,
  valFraction: 0.15,
  steps: 120,
  batchSize: 8,
  schedule: "cosine",
  warmupSteps: 10,
  seed: 0,
  evalEvery: 40,
} as const;

export default pipeline("peft-compare", () => {
  const base = load({ tiny: { arch: "llama", preset: "small", seed: 0 } });
  const pretrained = finetune(base, {
    method: "full",
    data: "data/train.txt",
    maxLength: 128,
    steps: 200,
    batchSize: 8,
    lr: 2e-3,
    schedule: "cosine",
    warmupSteps: 20,
    valFraction: 0.05,
  }).named("pretrain");
  const adapters = { lr: 2e-3, targetModules: "all-linear" } as const;
  finetune(pretrained, { ...COMMON, method: "full", lr: 3e-4 }).named("full");
  finetune(pretrained, { ...COMMON, ...adapters, method: "lora", r: 4, alpha: 8 }).named("lora-r4");
  finetune(pretrained, { ...COMMON, ...adapters, method: "lora", r: 16, alpha: 32 }).named(
    "lora-r16",
  );
  finetune(pretrained, { ...COMMON, ...adapters, method: "qlora", r: 16, alpha: 32 }).named(
    "qlora-r16",
  );
});
