// The training loop: AdamW with a warm-up + constant/linear/cosine schedule,
// gradient accumulation, clipping, periodic validation, and a memory account
// split into weights, gradients, optimizer state and activations.
import {
  AdamW,
  clipGradNorm,
  crossEntropy,
  ITEM_SIZE,
  manualSeed,
  memory,
  noGrad,
  type Tensor,
  tensor,
  tidy,
} from "../../ffi/mod.ts";
import type { LlamaModel } from "../llama.ts";
import { setLoraTraining } from "../lora/mod.ts";
import { checkpointedBackward } from "./activation_recompute.ts";
import { seededRandom } from "../../seeded_random.ts";
import { type Batch, type Example, IGNORE_INDEX, shuffled } from "./data.ts";

/** A learning-rate schedule after warm-up. */
export type Schedule = "constant" | "linear" | "cosine";

/** Training hyper-parameters. */
export interface TrainConfig {
  /** Optimizer steps. */
  steps: number;
  /** Sequences per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimizer step. */
  gradAccum: number;
  /** Peak learning rate. */
  lr: number;
  schedule: Schedule;
  warmupSteps: number;
  weightDecay: number;
  betas?: [number, number];
  eps?: number;
  /** Clip the global gradient norm to this (0: no clipping; the norm is still reported). */
  maxGradNorm: number;
  /** Seeds the batch order, dropout and anything else random. */
  seed: number;
  /** Validate every this many steps (0: only before and after training). */
  evalEvery: number;
  /** Sequences per validation batch (default batchSize). */
  evalBatchSize?: number;
  /** Recompute each decoder layer in the backward instead of keeping its activations. */
  gradientCheckpointing?: boolean;
}

/** Defaults for every optional-in-practice field. */
export const DEFAULT_TRAIN: Omit<TrainConfig, "steps"> = {
  batchSize: 4,
  gradAccum: 1,
  lr: 2e-4,
  schedule: "cosine",
  warmupSteps: 0,
  weightDecay: 0,
  maxGradNorm: 1.0,
  seed: 0,
  evalEvery: 0,
};

/** One optimizer step, as the train_steps table holds it. */
export interface StepRow {
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  peak_mem_bytes: number;
  tokens: number;
}

/** One validation pass. */
export interface EvalRow {
  step: number;
  loss: number;
  perplexity: number;
  tokens: number;
}

/** How a memory figure was obtained. */
export type MemorySource = "exact" | "measured" | "estimated";

/** Peak memory split by what holds it; each part says how it was obtained. */
export interface MemoryBreakdown {
  weights: { bytes: number; source: MemorySource };
  gradients: { bytes: number; source: MemorySource };
  optimizer: { bytes: number; source: MemorySource };
  activations: { bytes: number; source: MemorySource };
  /** The allocator's (GPU) or process RSS (CPU) high-water mark during training. */
  peak: { bytes: number; source: string };
  note: string;
}

/** What train() returns. A diverged run has `error` set and the rows up to it. */
export interface TrainResult {
  steps: StepRow[];
  evals: EvalRow[];
  valBefore: EvalRow | null;
  valAfter: EvalRow | null;
  /** Set when training stopped early (NaN/inf loss or gradient, or abort). */
  error: string | null;
  trainSeconds: number;
  tokens: number;
  trainableParams: number;
  totalParams: number;
  memory: MemoryBreakdown;
}

/** Callbacks of train(). */
export interface TrainHooks {
  onStep?(row: StepRow): void;
  onEval?(row: EvalRow): void;
  /** Called after every step with a one-line summary (step/total, loss, tokens/s, ETA). */
  onProgress?(done: number, total: number, message: string): void;
  signal?: AbortSignal;
}

/** The learning rate of 0-based optimizer step `step`: linear warm-up, then the schedule. */
export function lrAt(
  step: number,
  cfg: Pick<TrainConfig, "lr" | "steps" | "schedule" | "warmupSteps">,
): number {
  const w = cfg.warmupSteps;
  if (step < w) return cfg.lr * (step + 1) / w;
  if (cfg.schedule === "constant") return cfg.lr;
  const span = Math.max(1, cfg.steps - w);
  const progress = Math.min(1, (step - w) / span);
  if (cfg.schedule === "linear") return cfg.lr * (1 - progress);
  return cfg.lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** Right-pads examples into one batch; padding positions carry no loss. */
export function makeBatch(examples: readonly Example[], padId: number): Batch {
  const T = Math.max(...examples.map((e) => e.inputIds.length));
  if (T < 2) throw new RangeError("every training sequence needs at least 2 tokens");
  const ids: number[][] = [];
  const targets = new BigInt64Array(examples.length * (T - 1)).fill(BigInt(IGNORE_INDEX));
  let tokens = 0, targetCount = 0;
  examples.forEach((e, b) => {
    const n = e.inputIds.length;
    ids.push([...e.inputIds, ...new Array(T - n).fill(padId)]);
    tokens += n;
    for (let t = 0; t + 1 < n; t++) {
      const y = e.labels[t + 1];
      targets[b * (T - 1) + t] = BigInt(y);
      if (y !== IGNORE_INDEX) targetCount++;
    }
  });
  return { ids, targets, tokens, targetCount };
}

// Sum of token losses of a batch (a graph-carrying scalar when grads are on). Right padding
// needs no attention mask: causal attention never lets a real token see a later pad.
function batchLossSum(model: LlamaModel, batch: Batch): Tensor {
  const logits = model.forward(batch.ids);
  const [B, T, V] = logits.shape;
  const shifted = logits.narrow(1, 0, T - 1).reshape([B * (T - 1), V]);
  const target = tensor(batch.targets, { device: model.device });
  return crossEntropy(shifted, target, { ignoreIndex: IGNORE_INDEX, reduction: "sum" });
}

/** Token-weighted loss and perplexity of `model` over `examples` (no gradients, no dropout). */
export function evaluateLoss(
  model: LlamaModel,
  examples: readonly Example[],
  batchSize: number,
  step = 0,
): EvalRow {
  const pad = model.config.padTokenId ?? 0;
  let sum = 0, tokens = 0;
  setLoraTraining(model, false);
  noGrad(() => {
    for (let i = 0; i < examples.length; i += batchSize) {
      const batch = makeBatch(examples.slice(i, i + batchSize), pad);
      if (batch.targetCount === 0) continue;
      sum += tidy(() => batchLossSum(model, batch).item());
      tokens += batch.targetCount;
    }
  });
  const loss = tokens > 0 ? sum / tokens : NaN;
  return { step, loss, perplexity: Math.exp(loss), tokens };
}

function bytesOf(ts: readonly Tensor[]): number {
  return ts.reduce((s, t) => s + t.numel * ITEM_SIZE[t.dtype], 0);
}

function fmtEta(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(0)}s`;
  return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}

/** Trains `trainable` tensors of `model` on `train`, validating on `val`. Never throws on divergence. */
export async function train(
  model: LlamaModel,
  trainable: readonly Tensor[],
  data: { train: readonly Example[]; val: readonly Example[] },
  cfg: TrainConfig,
  hooks: TrainHooks = {},
): Promise<TrainResult> {
  if (trainable.length === 0) throw new Error("train: nothing to train (no trainable tensors)");
  if (data.train.length === 0) throw new Error("train: the training set is empty");
  if (!(cfg.steps >= 1)) throw new RangeError(`steps must be at least 1, got ${cfg.steps}`);
  const device = model.device;
  const pad = model.config.padTokenId ?? 0;
  const evalBs = cfg.evalBatchSize ?? cfg.batchSize;
  manualSeed(cfg.seed);
  const rng = seededRandom(cfg.seed);
  const trainableParams = trainable.reduce((s, t) => s + t.numel, 0);
  const totalParams = model.parameterCount();

  const evals: EvalRow[] = [];
  const validate = (step: number): EvalRow | null => {
    if (data.val.length === 0) return null;
    const row = evaluateLoss(model, data.val, evalBs, step);
    evals.push(row);
    hooks.onEval?.(row);
    return row;
  };
  const valBefore = validate(0);

  // Batches are drawn from a reshuffled pass over the data, as many passes as needed.
  let order: Example[] = [];
  const nextExamples = (n: number): Example[] => {
    const out: Example[] = [];
    while (out.length < n) {
      if (order.length === 0) order = shuffled(data.train, rng);
      out.push(order.pop()!);
    }
    return out;
  };

  const weightBytes = model.weightBytes();
  const gradBytes = bytesOf(trainable);
  memory.resetPeak(device);
  const before = memory.stats(device);
  const opt = new AdamW(trainable, {
    lr: cfg.lr,
    betas: cfg.betas,
    eps: cfg.eps,
    weightDecay: cfg.weightDecay,
  });
  const steps: StepRow[] = [];
  let error: string | null = null;
  let tokensTotal = 0;
  const t0 = performance.now();
  try {
    for (let step = 0; step < cfg.steps; step++) {
      if (hooks.signal?.aborted) {
        error = `training aborted at step ${step + 1}`;
        break;
      }
      const ts = performance.now();
      const micro = Array.from(
        { length: cfg.gradAccum },
        () => makeBatch(nextExamples(cfg.batchSize), pad),
      );
      const targetCount = micro.reduce((s, b) => s + b.targetCount, 0);
      const tokens = micro.reduce((s, b) => s + b.tokens, 0);
      let lossSum = 0;
      setLoraTraining(model, true);
      for (const batch of micro) {
        // Each micro-batch's summed loss over all target tokens of the step: an exact token mean.
        const v = cfg.gradientCheckpointing
          ? checkpointedBackward(model, batch, 1 / Math.max(1, targetCount))
          : tidy(() => {
            const s = batchLossSum(model, batch);
            const value = s.item();
            if (Number.isFinite(value)) s.div(Math.max(1, targetCount)).backward();
            return value;
          });
        if (!Number.isFinite(v)) {
          error = `loss became ${v} at step ${step + 1}; lower the learning rate (now ${
            lrAt(step, cfg).toExponential(2)
          }), enable gradient clipping, or check the data`;
          break;
        }
        lossSum += v;
      }
      if (error) break;
      const gradNorm = clipGradNorm(trainable, cfg.maxGradNorm > 0 ? cfg.maxGradNorm : 1e30);
      if (!Number.isFinite(gradNorm)) {
        error = `gradient norm became ${gradNorm} at step ${
          step + 1
        }; lower the learning rate or enable clipping`;
        break;
      }
      const lr = lrAt(step, cfg);
      opt.step(lr);
      opt.zeroGrad();
      const dt = (performance.now() - ts) / 1000;
      tokensTotal += tokens;
      const row: StepRow = {
        step: step + 1,
        loss: lossSum / Math.max(1, targetCount),
        lr,
        grad_norm: gradNorm,
        tokens_per_s: tokens / dt,
        peak_mem_bytes: memory.peak(device),
        tokens,
      };
      steps.push(row);
      hooks.onStep?.(row);
      if (hooks.onProgress) {
        const elapsed = (performance.now() - t0) / 1000;
        const eta = elapsed / (step + 1) * (cfg.steps - step - 1);
        hooks.onProgress(
          step + 1,
          cfg.steps,
          `step ${step + 1}/${cfg.steps} loss ${row.loss.toFixed(4)} ${
            row.tokens_per_s.toFixed(0)
          } tok/s ETA ${fmtEta(eta)}`,
        );
        await new Promise((r) => setTimeout(r, 0));
      }
      if (cfg.evalEvery > 0 && (step + 1) % cfg.evalEvery === 0 && step + 1 < cfg.steps) {
        validate(step + 1);
      }
    }
  } finally {
    opt.zeroGrad();
    setLoraTraining(model, false);
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  const peakStats = memory.stats(device);
  opt.dispose();
  const valAfter = error ? null : validate(steps.length);

  // AdamW keeps two moments per trainable element, in the parameter's dtype.
  const optBytes = 2 * gradBytes;
  const gpu = peakStats.source === "cuda-allocator";
  // On the GPU the allocator's peak counts tensors only; on the CPU the RSS high-water mark
  // also holds the allocator's slack, so the remainder is a measurement with that caveat.
  const baseline = gpu ? weightBytes : before.allocated;
  const activations = Math.max(0, peakStats.peak - baseline - gradBytes - optBytes);
  const memoryOut: MemoryBreakdown = {
    weights: { bytes: weightBytes, source: "exact" },
    gradients: { bytes: gradBytes, source: "exact" },
    optimizer: { bytes: optBytes, source: "exact" },
    activations: { bytes: activations, source: gpu ? "measured" : "estimated" },
    peak: { bytes: peakStats.peak, source: peakStats.source },
    note: gpu
      ? "weights/gradients/optimizer from tensor sizes; activations = allocator peak minus those"
      : "weights/gradients/optimizer from tensor sizes; activations = process RSS peak minus RSS " +
        "before training minus gradients and optimizer state (includes allocator slack)",
  };
  return {
    steps,
    evals,
    valBefore,
    valAfter,
    error,
    trainSeconds,
    tokens: tokensTotal,
    trainableParams,
    totalParams,
    memory: memoryOut,
  };
}
