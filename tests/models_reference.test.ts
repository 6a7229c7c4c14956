// Every architecture checked from the repository alone: tiny generated models (with the
// features that tell the architectures apart switched on: biases, llama3 rope, tied
// embeddings, sliding windows, fused projections) against the plain-TypeScript float64
// reference in tests/reference/, on logits, greedy ids and a left-padded batch. When the
// transformers fixtures sit beside the repository, the reference is checked against them too.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import { loadModel } from "../models/mod.ts";
import { loadSafetensors, saveSafetensors } from "../models/safetensors.ts";
import { createTinyModel, type TinyArch } from "../models/tiny.ts";
import { assertClose, fixtureTestName, haveHfFixtures, HF_FIXTURES } from "./helpers.ts";
import { ReferenceLlama } from "./reference/llama64.ts";
import { readSafetensors64 } from "./reference/safetensors64.ts";

torch.setNumThreads(2);
const root = Deno.makeTempDirSync({ prefix: "models_reference_" });
/** float32 against float64 over two layers: the issue's tolerance for transformers' logits. */
const TOL = 1e-4;

interface Variant {
  name: string;
  arch: TinyArch;
  /** config.json fields to change after generation. */
  config?: Record<string, unknown>;
  /** Add random biases to every projection (Llama's attention_bias + mlp_bias). */
  biases?: boolean;
}

const VARIANTS: Variant[] = [
  { name: "llama with attention and mlp biases", arch: "llama", biases: true },
  { name: "llama3 rope scaling, tied embeddings", arch: "llama3" },
  { name: "mistral, sliding window 5", arch: "mistral", config: { sliding_window: 5 } },
  {
    name: "qwen2 qkv biases, sliding window 6",
    arch: "qwen2",
    config: { use_sliding_window: true, sliding_window: 6 },
  },
  { name: "phi3 fused qkv and gate_up", arch: "phi3" },
];

function addBiases(dir: string): void {
  const path = `${dir}/model.safetensors`;
  const tensors = loadSafetensors(path);
  torch.manualSeed(9);
  for (const [name, t] of [...tensors]) {
    if (!/\.(self_attn|mlp)\.\w+_proj\.weight$/.test(name)) continue;
    using r = torch.randn([t.shape[0]]);
    tensors.set(name.replace(/weight$/, "bias"), r.mul(0.1));
  }
  saveSafetensors(path, tensors);
  for (const t of tensors.values()) t.dispose();
}

function makeModel(v: Variant): string {
  const dir = `${root}/${v.arch}`;
  createTinyModel({ out: dir, arch: v.arch, preset: "tiny", seed: 5, initStd: 0.1 });
  const cfg = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
  Object.assign(cfg, v.config ?? {});
  if (v.biases) Object.assign(cfg, { attention_bias: true, mlp_bias: true });
  Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(cfg, null, 2));
  if (v.biases) addBiases(dir);
  return dir;
}

const IDS = [
  [1, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33],
  [1, 30, 31, 200, 17, 95, 96, 97, 3, 4, 5, 250, 251, 252],
];
// Left padding: the first row's first four slots, the second row's first one.
const PAD = [[0, 0, 0, 0, 1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]];
const PADDED = [[0, 0, 0, 0, 1, 90, 91, 92, 93, 94], [0, 1, 40, 41, 42, 43, 44, 45, 46, 47]];

const realPositions = (logits: Float64Array[][], mask?: number[][]) =>
  logits.flatMap((row, b) => row.filter((_, t) => !mask || mask[b][t] === 1))
    .flatMap((l) => [...l]);

function ours(t: torch.Tensor, mask?: number[][]): number[] {
  const rows = t.toArray() as number[][][];
  return rows.flatMap((row, b) => row.filter((_, i) => !mask || mask[b][i] === 1)).flat();
}

for (const v of VARIANTS) {
  Deno.test(`${v.name}: logits, greedy ids and a left-padded batch match the float64 reference`, () => {
    const dir = makeModel(v);
    const ref = ReferenceLlama.load(dir);
    using model = loadModel(dir);
    const want = realPositions(ref.forward(IDS));
    for (const fused of [true, false]) {
      using logits = torch.noGrad(() => model.forward(IDS, { fused }));
      assertClose(ours(logits), want, TOL, `logits (fused ${fused})`);
    }
    const wantPadded = realPositions(ref.forward(PADDED, PAD), PAD);
    using padded = torch.noGrad(() => model.forward(PADDED, { attentionMask: PAD }));
    assertClose(ours(padded, PAD), wantPadded, TOL, "left-padded logits");
    const prompt = IDS[1].slice(0, 6);
    const res = model.generate([prompt], { maxNewTokens: 8, stopTokens: [] });
    assert.deepEqual(res.tokens[0], ref.greedy(prompt, 8), "greedy ids (KV cache vs full passes)");
  });
}

for (const arch of ["llama", "llama3-rope", "mistral", "qwen2", "phi3"]) {
  Deno.test({
    name: fixtureTestName(`${arch} fixture: the float64 reference matches transformers' logits`),
    ignore: !haveHfFixtures,
    fn: () => {
      const ref = ReferenceLlama.load(`${HF_FIXTURES}${arch}`);
      const t = readSafetensors64(`${HF_FIXTURES}${arch}/reference.safetensors`);
      const toRows = (name: string) => {
        const x = t.get(name)!;
        return Array.from(
          { length: x.shape[0] },
          (_, i) => [...x.data.subarray(i * x.shape[1], (i + 1) * x.shape[1])],
        );
      };
      assertClose(
        realPositions(ref.forward(toRows("input_ids"))),
        t.get("logits")!.data,
        TOL,
        "logits",
      );
      const mask = toRows("padded_attention_mask");
      const last = ref.forward(toRows("padded_input_ids"), mask).flatMap((row) => [...row.at(-1)!]);
      assertClose(last, t.get("padded_last_logits")!.data, TOL, "left-padded last logits");
    },
  });
}
