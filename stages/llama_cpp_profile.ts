// The profile stage's llama.cpp branch: the same grid, warmup, alternating rounds and rows as
// the libtorch path, timed through libllama.
import type { InputInfo, StageContext } from "../engine/mod.ts";
import { LabError } from "../errors.ts";
import { watchConditions } from "../models/profile/conditions.ts";
import { profileLlamaCpp } from "../models/llama_cpp/profile.ts";
import { profileGrid, type ProfileParams, recordConditions, recordProfiles } from "./profile.ts";
import { openLlamaCpp } from "./llama_cpp.ts";

/** Profiles a llama.cpp model input and records its rows with engine "llama.cpp". */
export function profileWithLlamaCpp(
  ctx: StageContext<ProfileParams, { model: InputInfo }>,
  p: ProfileParams,
): void {
  if (p.dynamic) {
    throw new LabError("profile: the dynamic-batching replay runs libtorch models only");
  }
  if (p.device !== "cpu") {
    throw new LabError(`profile: llama.cpp runs on the CPU here, not ${p.device}`);
  }
  const grid = profileGrid(p);
  if (grid.some((c) => !c.kvCache)) {
    throw new LabError("profile: kvCache false is a libtorch measurement; llama.cpp always caches");
  }
  const seqs = Math.max(...grid.map((c) => c.batch));
  const tokens = Math.max(...grid.map((c) => c.batch * (c.promptTokens + c.newTokens)));
  using model = openLlamaCpp(ctx.inputs.model, tokens, seqs);
  const watch = watchConditions();
  const profiles = profileLlamaCpp(model, grid, {
    warmup: p.warmup,
    repeats: p.repeats,
    seed: p.seed,
    onRun: (i, r) => {
      ctx.signal.throwIfAborted();
      ctx.progress(r * grid.length + i, p.repeats * grid.length, `llama.cpp round ${r + 1}`);
    },
  });
  const conditions = watch();
  recordProfiles(ctx, profiles.map((r) => ({ r, watts: null })), {
    weightBytes: model.weightBytes,
    device: "cpu",
    engine: "llama.cpp",
    noisy: conditions.noisy,
  });
  recordConditions(ctx, conditions);
  ctx.metric("weight_bytes", model.weightBytes, "bytes");
  ctx.progress(grid.length, grid.length);
}
