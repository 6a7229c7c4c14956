// An independent float64 forward pass of the Llama family in plain TypeScript (no libtorch),
// written from the transformers modeling code: embeddings, RMSNorm, rotary embeddings (with
// llama3 and linear scaling), grouped-query attention with causal, sliding-window and
// left-padding masks, optional biases, and Phi-3's fused qkv / gate_up projections. It reads
// config.json and the safetensors file itself, so that it shares nothing with models/.
import { readSafetensors64, type Tensor64 } from "./safetensors64.ts";

type Json = Record<string, unknown>;

/** What the reference needs of config.json, read on its own. */
interface RefConfig {
  arch: string;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  invFreq: Float64Array;
  window: number | null;
  tied: boolean;
}

function refConfig(raw: Json): RefConfig {
  const arch = (raw.architectures as string[])[0];
  const hidden = raw.hidden_size as number;
  const heads = raw.num_attention_heads as number;
  const headDim = (raw.head_dim as number | undefined) ?? hidden / heads;
  let window: number | null = null;
  if (arch === "MistralForCausalLM" || raw.use_sliding_window === true) {
    window = (raw.sliding_window as number | null) ?? null;
  }
  return {
    arch,
    hidden,
    layers: raw.num_hidden_layers as number,
    heads,
    kvHeads: (raw.num_key_value_heads as number | undefined) ?? heads,
    headDim,
    eps: (raw.rms_norm_eps as number | undefined) ?? 1e-6,
    invFreq: inverseFrequencies(raw, headDim),
    window,
    tied: raw.tie_word_embeddings === true,
  };
}

// transformers' default, linear and llama3 rope initialisations, in float64.
function inverseFrequencies(raw: Json, dim: number): Float64Array {
  const base = (raw.rope_theta as number | undefined) ?? 10000;
  const inv = Float64Array.from({ length: dim / 2 }, (_, i) => 1 / base ** ((2 * i) / dim));
  const s = raw.rope_scaling as Json | null | undefined;
  const type = s ? (s.rope_type ?? s.type) : "default";
  if (type === "linear") return inv.map((f) => f / (s!.factor as number));
  if (type !== "llama3") return inv;
  const factor = s!.factor as number, low = s!.low_freq_factor as number;
  const high = s!.high_freq_factor as number;
  const old = s!.original_max_position_embeddings as number;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < old / high) return f;
    if (wavelen > old / low) return f / factor;
    const smooth = (old / wavelen - low) / (high - low);
    return (1 - smooth) * f / factor + smooth * f;
  });
}

/** A dense matrix `[out, in]` with an optional bias. */
interface Linear64 {
  w: Float64Array;
  out: number;
  in: number;
  b: Float64Array | null;
}

function linear(x: Float64Array, l: Linear64): Float64Array {
  const y = new Float64Array(l.out);
  for (let o = 0; o < l.out; o++) {
    let s = l.b ? l.b[o] : 0;
    const row = o * l.in;
    for (let i = 0; i < l.in; i++) s += l.w[row + i] * x[i];
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * w[i]);
}

// x * cos + rotate_half(x) * sin for one head vector at position `pos`.
function rope(x: Float64Array, pos: number, invFreq: Float64Array): Float64Array {
  const half = x.length / 2;
  const out = new Float64Array(x.length);
  for (let i = 0; i < half; i++) {
    const c = Math.cos(pos * invFreq[i]), s = Math.sin(pos * invFreq[i]);
    out[i] = x[i] * c - x[i + half] * s;
    out[i + half] = x[i + half] * c + x[i] * s;
  }
  return out;
}

interface Layer64 {
  inputNorm: Float64Array;
  postNorm: Float64Array;
  q: Linear64;
  k: Linear64;
  v: Linear64;
  o: Linear64;
  gate: Linear64;
  up: Linear64;
  down: Linear64;
}

// Rows [from, from + n) of a matrix (and its bias): how Phi-3's fused projections split.
function rows(l: Linear64, from: number, n: number): Linear64 {
  return {
    w: l.w.subarray(from * l.in, (from + n) * l.in),
    out: n,
    in: l.in,
    b: l.b ? l.b.subarray(from, from + n) : null,
  };
}

/** The reference model: weights in float64 and the forward pass over plain arrays. */
export class ReferenceLlama {
  readonly config: RefConfig;
  readonly #embed: Tensor64;
  readonly #layers: Layer64[];
  readonly #norm: Float64Array;
  readonly #head: Linear64;

  private constructor(dir: string) {
    const c = this.config = refConfig(JSON.parse(Deno.readTextFileSync(`${dir}/config.json`)));
    const t = readSafetensors64(`${dir}/model.safetensors`);
    const get = (name: string) => {
      const x = t.get(name);
      if (!x) throw new Error(`reference: ${dir}/model.safetensors has no ${name}`);
      return x;
    };
    const lin = (name: string): Linear64 => {
      const w = get(`${name}.weight`);
      return { w: w.data, out: w.shape[0], in: w.shape[1], b: t.get(`${name}.bias`)?.data ?? null };
    };
    this.#embed = get("model.embed_tokens.weight");
    this.#norm = get("model.norm.weight").data;
    const [vocab, hidden] = this.#embed.shape;
    this.#head = c.tied ? { w: this.#embed.data, out: vocab, in: hidden, b: null } : lin("lm_head");
    const qn = c.heads * c.headDim, kvn = c.kvHeads * c.headDim;
    this.#layers = Array.from({ length: c.layers }, (_, l) => {
      const p = `model.layers.${l}`;
      const fused = c.arch === "Phi3ForCausalLM";
      const qkv = fused ? lin(`${p}.self_attn.qkv_proj`) : null;
      const gu = fused ? lin(`${p}.mlp.gate_up_proj`) : null;
      const inter = gu ? gu.out / 2 : 0;
      return {
        inputNorm: get(`${p}.input_layernorm.weight`).data,
        postNorm: get(`${p}.post_attention_layernorm.weight`).data,
        q: qkv ? rows(qkv, 0, qn) : lin(`${p}.self_attn.q_proj`),
        k: qkv ? rows(qkv, qn, kvn) : lin(`${p}.self_attn.k_proj`),
        v: qkv ? rows(qkv, qn + kvn, kvn) : lin(`${p}.self_attn.v_proj`),
        o: lin(`${p}.self_attn.o_proj`),
        gate: gu ? rows(gu, 0, inter) : lin(`${p}.mlp.gate_proj`),
        up: gu ? rows(gu, inter, inter) : lin(`${p}.mlp.up_proj`),
        down: lin(`${p}.mlp.down_proj`),
      };
    });
  }

  /** Reads a Hugging Face model folder (config.json, model.safetensors). */
  static load(dir: string): ReferenceLlama {
    return new ReferenceLlama(dir);
  }

  /**
   * Logits `[batch][seq]` (one Float64Array of the vocabulary each). `mask` marks left padding
   * with 0; positions then count real tokens only, as transformers' generate() sets them.
   */
  forward(ids: number[][], mask?: number[][]): Float64Array[][] {
    return ids.map((row, b) => this.#forwardRow(row, mask?.[b]));
  }

  /** Greedy continuation of one prompt by full forward passes (no cache): the new ids. */
  greedy(prompt: number[], steps: number): number[] {
    const seq = [...prompt];
    for (let s = 0; s < steps; s++) {
      const logits = this.#forwardRow(seq).at(-1)!;
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      seq.push(best);
    }
    return seq.slice(prompt.length);
  }

  #forwardRow(ids: number[], pad?: number[]): Float64Array[] {
    const hidden = this.#embed.shape[1];
    let count = 0;
    const positions = ids.map((_, j) => {
      if (!pad) return j;
      count += pad[j] ? 1 : 0;
      return pad[j] ? count - 1 : 1;
    });
    let xs: Float64Array[] = ids.map((id) =>
      this.#embed.data.slice(id * hidden, (id + 1) * hidden)
    );
    for (const layer of this.#layers) xs = this.#layer(layer, xs, positions, pad);
    return xs.map((x) => linear(rmsNorm(x, this.#norm, this.config.eps), this.#head));
  }

  #layer(w: Layer64, xs: Float64Array[], pos: number[], pad?: number[]): Float64Array[] {
    const c = this.config, hd = c.headDim, g = c.heads / c.kvHeads;
    const heads = (v: Float64Array, n: number, p: number, rotate: boolean) =>
      Array.from({ length: n }, (_, h) => {
        const x = v.slice(h * hd, (h + 1) * hd);
        return rotate ? rope(x, p, c.invFreq) : x;
      });
    const normed = xs.map((x) => rmsNorm(x, w.inputNorm, c.eps));
    const q = normed.map((h, t) => heads(linear(h, w.q), c.heads, pos[t], true));
    const k = normed.map((h, t) => heads(linear(h, w.k), c.kvHeads, pos[t], true));
    const v = normed.map((h, t) => heads(linear(h, w.v), c.kvHeads, pos[t], false));
    return xs.map((x, t) => {
      const attn = new Float64Array(c.heads * hd);
      for (let h = 0; h < c.heads; h++) {
        const kv = Math.floor(h / g);
        const out = attend(
          q[t][h],
          k.map((r) => r[kv]),
          v.map((r) => r[kv]),
          (j) => j <= t && !(c.window !== null && j <= t - c.window) && !(pad && pad[j] === 0),
        );
        attn.set(out, h * hd);
      }
      const o = linear(attn, w.o);
      const x1 = x.map((val, i) => val + o[i]);
      const h2 = rmsNorm(x1, w.postNorm, c.eps);
      const gate = linear(h2, w.gate), up = linear(h2, w.up);
      const act = gate.map((a, i) => (a / (1 + Math.exp(-a))) * up[i]);
      const down = linear(act, w.down);
      return x1.map((val, i) => val + down[i]);
    });
  }
}

// Softmax attention of one query over the keys `visible` lets it see. A query that sees none
// (a padding slot) attends uniformly, as transformers' finite mask value makes it.
function attend(
  q: Float64Array,
  keys: Float64Array[],
  values: Float64Array[],
  visible: (j: number) => boolean,
): Float64Array {
  const scale = 1 / Math.sqrt(q.length);
  const seen = keys.map((_, j) => visible(j));
  const any = seen.some((s) => s);
  const scores = keys.map((k, j) => {
    if (any && !seen[j]) return -Infinity;
    let s = 0;
    for (let i = 0; i < q.length; i++) s += q[i] * k[i];
    return any ? s * scale : 0;
  });
  const max = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - max));
  const sum = e.reduce((a, b) => a + b, 0);
  const out = new Float64Array(q.length);
  values.forEach((v, j) => {
    const p = e[j] / sum;
    for (let i = 0; i < out.length; i++) out[i] += p * v[i];
  });
  return out;
}
