// Packs each linear weight (and the embedding table) the moment the checkpoint yields it, so
// a model larger than memory loads straight into a scheme. Every matrix goes through the same
// steps as quantizeModel (moduleSchemes / embeddingScheme, fitScheme, quantizeLinear), so the
// result is bit-identical to loading dense and quantizing afterwards.
import { type DType, ITEM_SIZE, noGrad, type Tensor, tidy } from "../../ffi/mod.ts";
import { LabError } from "../../errors.ts";
import { allFinite } from "../finite_weights.ts";
import type { ModelConfig } from "../config.ts";
import { Linear, type LinearLayer } from "../linear.ts";
import type { LlamaModel } from "../llama.ts";
import { LAYER_PROJECTIONS, linearModules } from "../modules.ts";
import { ShardedCheckpoint } from "../safetensors.ts";
import type { LinearFactory } from "../weights.ts";
import type { EmbeddingTable } from "../embedding.ts";
import { isPerRow, quantizeLinearByRows } from "./pack_rows.ts";
import type { CastLinear } from "./cast_linear.ts";
import type { QuantizedLinear } from "./quantized_linear.ts";
import {
  EMBED_MODULE,
  embeddingSchemeError,
  ERROR_CHUNK,
  fitModuleScheme,
  fitTableScheme,
  layerRelativeError,
  type ModuleQuantization,
  moduleRow,
  moduleSchemes,
  type QuantizationReport,
  type QuantizeOptions,
} from "./quantize_model.ts";
import { packedBytes, parseScheme, type Scheme } from "./schemes.ts";

/** A scheme name ("nf4") or full QuantizeOptions: what loadModel's `quantize` option takes. */
export type QuantizeSpec = string | QuantizeOptions;

/** The QuantizeOptions a spec stands for; throws naming the option when it is malformed. */
export function quantizeOptionsOf(spec: QuantizeSpec): QuantizeOptions {
  if (typeof spec === "string") return { scheme: spec };
  if (spec === null || typeof spec !== "object" || typeof spec.scheme !== "string") {
    throw new TypeError(
      `loadModel: option 'quantize' must be a scheme name such as "nf4" or ` +
        `{ scheme, keep?, strict?, simulate? }, got ${JSON.stringify(spec)}`,
    );
  }
  return spec;
}

/** One linear module a config implies. */
export interface LinearShape {
  /** Hugging Face module name, as linearModules names it. */
  name: string;
  out: number;
  in: number;
  bias: boolean;
  /** For Phi-3's split projections: rows of the fused tensor they are cut from. */
  fusedRows: number | null;
}

/** Every linear module of a model with `c`'s config, in linearModules' order. */
export function linearShapes(c: ModelConfig): LinearShape[] {
  const h = c.hiddenSize, i = c.intermediateSize;
  const q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  const dims: Record<string, [number, number, boolean, number | null]> = {
    "self_attn.q_proj": [q, h, c.qkvBias, c.fusedProjections ? q + 2 * kv : null],
    "self_attn.k_proj": [kv, h, c.qkvBias, c.fusedProjections ? q + 2 * kv : null],
    "self_attn.v_proj": [kv, h, c.qkvBias, c.fusedProjections ? q + 2 * kv : null],
    "self_attn.o_proj": [h, q, c.oBias, null],
    "mlp.gate_proj": [i, h, c.mlpBias, c.fusedProjections ? 2 * i : null],
    "mlp.up_proj": [i, h, c.mlpBias, c.fusedProjections ? 2 * i : null],
    "mlp.down_proj": [h, i, c.mlpBias, null],
  };
  const out: LinearShape[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    for (const [, suffix] of LAYER_PROJECTIONS) {
      const [o, n, bias, fusedRows] = dims[suffix];
      out.push({ name: `model.layers.${l}.${suffix}`, out: o, in: n, bias, fusedRows });
    }
  }
  // A tied lm_head is the embedding matrix and stays dense, as quantizeModel leaves it.
  if (!c.tieWordEmbeddings) {
    out.push({ name: "lm_head", out: c.vocabSize, in: h, bias: false, fusedRows: null });
  }
  return out;
}

// Packing would hide NaN/Inf (a block's absmax skips NaN), so a damaged weight is refused
// while its dense values are still in hand.
function refuseNonFinite(module: string, weight: Tensor, source: string): void {
  if (allFinite(weight)) return;
  const { nan, inf } = noGrad(() =>
    tidy(() => {
      const nan = weight.isnan().sum().item();
      return { nan, inf: weight.numel - weight.isfinite().sum().item() - nan };
    })
  );
  const what = [nan ? `${nan} NaN` : "", inf ? `${inf} infinite` : ""].filter(Boolean);
  const tensor = `${module}.weight`;
  let file = source;
  try {
    using ckpt = ShardedCheckpoint.open(source);
    if (ckpt.has(tensor)) file = ckpt.fileOf(tensor);
  } catch { /* the folder was readable a moment ago; name it instead */ }
  throw new LabError(
    `${file}: tensor '${tensor}' holds ${what.join(" and ")} values, so the packed model ` +
      "would compute NaN or wrong figures. The checkpoint is damaged (a diverged training run " +
      "or a bad conversion): re-export or re-download it.",
  );
}

/** How StreamingQuantizer.plan runs. */
export interface StreamingPlanOptions {
  /** Compute dtype the dense weights are read in (as loadModel's dtype). */
  dtype: DType;
  /** The checkpoint folder, for messages. */
  source: string;
  /** Called after each module is packed, e.g. for progress. */
  onModule?: (done: number, total: number, name: string) => void;
  /** Per-row formats are packed this many values at a time (default 16M). */
  rowBlockElements?: number;
  /**
   * Measure each module's relative error (default true). It costs about as much as packing
   * (a dequantized copy, a difference, two norms); without it the report's relError is NaN.
   */
  measureError?: boolean;
}

const ROW_BLOCK = 1 << 24;

/** One matrix the load packs, in reading order. */
interface PlannedMatrix {
  name: string;
  out: number;
  in: number;
  bias: boolean;
  /** Rows of the fused tensor it is cut from (Phi-3), held while it is packed. */
  fusedRows: number | null;
  scheme: Scheme;
}

/**
 * Plans and performs a load into a scheme: checks every module's scheme before any tensor
 * is read, estimates the peak memory, then packs modules one by one through `factory` (and
 * the embedding table through `table`), as quantizeModel would have.
 */
export class StreamingQuantizer {
  readonly options: QuantizeOptions;
  readonly dtype: DType;
  readonly shapes: LinearShape[];
  /** The scheme each linear module gets (after fitScheme). */
  readonly schemes: Map<string, Scheme>;
  /** The embedding table's scheme (after fitScheme). */
  readonly tableScheme: Scheme;
  readonly #config: ModelConfig;
  #rows = new Map<string, ModuleQuantization>();
  #seconds = 0;
  readonly #source: string;
  readonly #onModule: ((done: number, total: number, name: string) => void) | null;
  readonly #rowBlock: number;
  readonly #measureError: boolean;

  private constructor(config: ModelConfig, options: QuantizeOptions, run: StreamingPlanOptions) {
    this.options = options;
    this.dtype = run.dtype;
    this.#config = config;
    this.shapes = linearShapes(config);
    this.#source = run.source;
    this.#onModule = run.onModule ?? null;
    this.#rowBlock = run.rowBlockElements ?? ROW_BLOCK;
    this.#measureError = run.measureError ?? true;
    const wanted = moduleSchemes(this.shapes.map((s) => s.name), options);
    this.schemes = new Map();
    for (const m of this.shapes) {
      this.schemes.set(
        m.name,
        fitModuleScheme(m.name, m.out, m.in, wanted.get(m.name)!, options.strict),
      );
    }
    this.tableScheme = fitTableScheme(
      config.tieWordEmbeddings,
      options,
      config.vocabSize,
      config.hiddenSize,
    );
  }

  /** Checks `options` against `config`'s modules (bad scheme names, int4 widths) and plans the load. */
  static plan(
    config: ModelConfig,
    options: QuantizeOptions,
    run: StreamingPlanOptions,
  ): StreamingQuantizer {
    return new StreamingQuantizer(config, options, run);
  }

  // The matrices in the order loadWeights reads them: lm_head, the table, then the layers.
  #readingOrder(): PlannedMatrix[] {
    const c = this.#config;
    const head = this.shapes.filter((m) => m.name === "lm_head");
    const layers = this.shapes.filter((m) => m.name !== "lm_head");
    const table = {
      name: EMBED_MODULE,
      out: c.vocabSize,
      in: c.hiddenSize,
      bias: false,
      fusedRows: null,
      scheme: this.tableScheme,
    };
    const planned = (m: LinearShape) => ({ ...m, scheme: this.schemes.get(m.name)! });
    return [...head.map(planned), table, ...layers.map(planned)];
  }

  /**
   * The peak bytes the load should reach, walking the reading order: what is already kept
   * (packed modules, norms) plus the moment of packing the next matrix (its dense weight,
   * the quantizer's scratch, its packed form, the dequantized copy the error needs).
   */
  estimatePeakBytes(): number {
    const item = ITEM_SIZE[this.dtype];
    const c = this.#config;
    let held = (2 * c.numLayers + 1) * c.hiddenSize * item;
    let peak = held;
    for (const m of this.#readingOrder()) {
      const n = m.out * m.in;
      const s = m.scheme;
      const stays = s.kind === "cast" && s.dtype === this.dtype && m.name === EMBED_MODULE;
      const kept = stays || this.options.simulate
        ? n * item
        : packedBytes(s, m.out, m.in) + (m.bias ? m.out * item : 0);
      const dense = n * item + (m.fusedRows ? m.fusedRows * m.in * item : 0);
      // The kernels work on a float32 copy; per-row formats go through whole-block tensor ops
      // (|w|, w/scale, round, clamp).
      const blocked = isPerRow(s) && !this.options.simulate && n > this.#rowBlock;
      const block = blocked ? this.#rowBlock : n;
      const widen = s.kind === "cast" || this.dtype === "float32" ? 0 : 4 * block;
      const scratch = widen + (isPerRow(s) ? 13 * block : 0) +
        (this.options.simulate ? n * item : 0);
      // The error needs the dequantized matrix (per-row formats build it in two steps), or one
      // block of it at a time when packed in blocks.
      const error = stays || !this.#measureError
        ? 0
        : blocked
        ? 16 * block
        : n * 4 * (isPerRow(s) ? 2 : 1) + Math.min(n, ERROR_CHUNK) * 12;
      peak = Math.max(peak, held + dense + scratch + kept + error);
      held += kept;
    }
    // Scratch read buffers, the allocator's slack and the runtime itself.
    return Math.max(peak, held) + (512 << 20);
  }

  // Packs one matrix (the caller disposes the dense tensors), timing it. A matrix packed in
  // row blocks has its error summed block by block: dequantizing a whole int8 head would
  // take twice its float32 size.
  #pack(weight: Tensor, bias: Tensor | null, scheme: Scheme) {
    const started = performance.now();
    let blocks = 0, diff = 0, base = 0;
    const next = quantizeLinearByRows(
      weight,
      bias,
      scheme,
      this.dtype,
      !!this.options.simulate,
      this.#rowBlock,
      !this.#measureError ? undefined : (packed, dense) =>
        tidy(() => {
          const o = dense.to("float32");
          const d = packed.dequantize("float32").sub(o).norm().item();
          const b = o.norm().item();
          blocks++;
          diff += d * d;
          base += b * b;
        }),
    );
    const relError = !this.#measureError
      ? NaN
      : blocks
      ? Math.sqrt(diff) / Math.max(Math.sqrt(base), 1e-30)
      : layerRelativeError(weight, next);
    this.#seconds += (performance.now() - started) / 1000;
    return { next, relError };
  }

  #done(row: ModuleQuantization): void {
    this.#rows.set(row.module, row);
    this.#onModule?.(this.#rows.size, this.shapes.length + 1, row.module);
  }

  /** Builds each linear module packed, freeing its dense weight at once (a LinearFactory). */
  readonly factory: LinearFactory = (name, weight, bias) => {
    const scheme = this.schemes.get(name);
    try {
      if (!scheme) {
        throw new Error(`quantize: the checkpoint yields linear module '${name}' the plan lacks`);
      }
      refuseNonFinite(name, weight, this.#source);
      let packed: { next: LinearLayer; relError: number };
      try {
        packed = this.#pack(weight, bias, scheme);
      } catch (e) {
        const [o, i] = weight.shape;
        throw new Error(
          `quantize: module '${name}' [${o}x${i}] cannot use scheme '${scheme.name}': ` +
            `${(e as Error).message}. Pick another scheme for it, e.g. keep: { "${name}": "int8" }`,
        );
      }
      this.#done(moduleRow(name, scheme, packed.next, packed.relError));
      return packed.next;
    } finally {
      weight.dispose();
      bias?.dispose();
    }
  };

  /**
   * Builds the embedding table in its scheme as quantizeModel does (a packed table is stored
   * once and is also a tied model's lm_head), freeing the dense one unless it stays as it is.
   */
  readonly table = (weight: Tensor): EmbeddingTable => {
    const scheme = this.tableScheme;
    let stays = false;
    try {
      refuseNonFinite(EMBED_MODULE, weight, this.#source);
      if (scheme.kind === "cast" && scheme.dtype === this.dtype) {
        stays = true;
        this.#done(moduleRow(EMBED_MODULE, scheme, new Linear(weight), 0));
        return weight;
      }
      let packed: { next: LinearLayer; relError: number };
      try {
        packed = this.#pack(weight, null, scheme);
      } catch (e) {
        throw embeddingSchemeError(weight.shape, scheme, e);
      }
      const { next, relError } = packed;
      this.#done(moduleRow(EMBED_MODULE, scheme, next, relError));
      if (next instanceof Linear) {
        // simulate: the table stays dense, holding the dequantized values.
        return next.weight;
      }
      return next as QuantizedLinear | CastLinear;
    } finally {
      if (!stays) weight.dispose();
    }
  };

  /** Seconds spent packing and measuring errors so far (reading excluded). */
  get seconds(): number {
    return this.#seconds;
  }

  /** The report quantizeModel would have given for `model`: linear modules, then the table. */
  report(model: LlamaModel): QuantizationReport {
    const names = [...linearModules(model).map((slot) => slot.name), EMBED_MODULE];
    const modules = names.map((name) => {
      const row = this.#rows.get(name);
      if (!row) throw new Error(`quantize: module '${name}' was never packed`);
      return row;
    });
    return {
      scheme: parseScheme(this.options.scheme).name,
      simulate: !!this.options.simulate,
      modules,
      weightBytes: model.weightBytes(),
      seconds: this.#seconds,
    };
  }
}

/** Bytes of a dense model of `c` in `dtype`, as LlamaModel.weightBytes counts them. */
export function denseWeightBytes(c: ModelConfig, dtype: DType): number {
  const item = ITEM_SIZE[dtype];
  let n = c.vocabSize * c.hiddenSize + (2 * c.numLayers + 1) * c.hiddenSize;
  for (const m of linearShapes(c)) n += m.out * m.in + (m.bias ? m.out : 0);
  return n * item;
}
