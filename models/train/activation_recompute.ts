// Per-layer gradient checkpointing: the forward keeps only each decoder layer's input, and
// the backward recomputes one layer at a time from it, so activation memory is that of one
// layer plus a [batch, seq, hidden] tensor per layer, for about one extra forward of compute.
//
// The layer math mirrors LlamaModel's TypeScript forward (models/llama.ts); a test checks
// that losses and gradients match the plain path.
import {
  crossEntropy,
  embedding,
  noGrad,
  rmsNorm,
  type Tensor,
  tensor,
  tidy,
} from "../../ffi/mod.ts";
import { attentionMask } from "../attention_mask.ts";
import { isPacked, lookupEmbedding } from "../embedding.ts";
import type { ModelConfig } from "../config.ts";
import type { LlamaModel } from "../llama.ts";
import { applyRope, invFreqTensor, ropeTables } from "../rope.ts";
import type { LayerWeights } from "../weights.ts";
import { type Batch, IGNORE_INDEX } from "./data.ts";

function layerForward(
  c: ModelConfig,
  dtype: string,
  w: LayerWeights,
  x: Tensor,
  cos: Tensor,
  sin: Tensor,
  mask: Tensor | null,
): Tensor {
  const [batch, seq] = x.shape;
  const nh = c.numHeads, nkv = c.numKvHeads, hd = c.headDim, g = nh / nkv;
  const h = rmsNorm(x, w.inputNorm, c.rmsNormEps);
  const q = applyRope(w.qProj.forward(h).view([batch, seq, nh, hd]).transpose(1, 2), cos, sin);
  const k = applyRope(w.kProj.forward(h).view([batch, seq, nkv, hd]).transpose(1, 2), cos, sin);
  const v = w.vProj.forward(h).view([batch, seq, nkv, hd]).transpose(1, 2);
  const qg = q.reshape([batch, nkv, g * seq, hd]);
  let scores = qg.matmul(k.transpose(-1, -2)).div(Math.sqrt(hd));
  if (scores.dtype !== "float32") scores = scores.to("float32");
  if (mask) scores = scores.view([batch, nkv, g, seq, seq]).add(mask);
  let probs = scores.softmax(-1);
  if (probs.dtype !== dtype) probs = probs.to(dtype);
  const attn = probs.view([batch, nkv, g * seq, seq]).matmul(v)
    .view([batch, nh, seq, hd]).transpose(1, 2).reshape([batch, seq, nh * hd]);
  const x1 = x.add(w.oProj.forward(attn));
  const h2 = rmsNorm(x1, w.postAttentionNorm, c.rmsNormEps);
  const act = w.gateProj.forward(h2).silu().mul(w.upProj.forward(h2));
  return x1.add(w.downProj.forward(act));
}

/**
 * Forward and backward of one batch with per-layer recomputation. Gradients of the summed
 * token loss times `scale` accumulate into the parameters; returns the summed loss (the
 * backward is skipped when it is not finite).
 */
export function checkpointedBackward(model: LlamaModel, batch: Batch, scale: number): number {
  const c = model.config;
  const dev = model.device;
  return tidy(() => {
    const B = batch.ids.length, T = batch.ids[0].length;
    const flat = new BigInt64Array(B * T);
    batch.ids.forEach((r, b) => r.forEach((v, t) => (flat[b * T + t] = BigInt(v))));
    const ids = tensor(flat, { shape: [B, T], device: dev });
    const pos = new BigInt64Array(B * T);
    for (let i = 0; i < B * T; i++) pos[i] = BigInt(i % T);
    const inv = invFreqTensor(c, dev);
    const [cos, sin] = ropeTables(inv, tensor(pos, { shape: [B, T], device: dev }), model.dtype);
    const mask = attentionMask(B, T, 0, null, c.slidingWindow, dev);
    const w = model.weights;

    // Forward without a graph, keeping each layer's input.
    const inputs: Tensor[] = [];
    let x = noGrad(() => lookupEmbedding(w.embedTokens, ids, model.dtype));
    for (let l = 0; l < c.numLayers; l++) {
      inputs.push(x);
      const cur = x;
      x = noGrad(() => tidy(() => layerForward(c, model.dtype, w.layers[l], cur, cos, sin, mask)));
    }

    // Head and loss with a graph from the last hidden state.
    const top = x.detach().requiresGrad_();
    const logits = w.lmHead.forward(rmsNorm(top, w.norm, c.rmsNormEps));
    const V = logits.size(-1);
    const shifted = logits.narrow(1, 0, T - 1).reshape([B * (T - 1), V]);
    const f32 = shifted.dtype === "float32" ? shifted : shifted.to("float32");
    const target = tensor(batch.targets, { device: dev });
    const lossSum = crossEntropy(f32, target, { ignoreIndex: IGNORE_INDEX, reduction: "sum" });
    const value = lossSum.item();
    if (!Number.isFinite(value)) return value;
    lossSum.mul(scale).backward();
    let grad = top.grad!;

    // Layers in reverse: recompute with a graph, back-propagate the incoming gradient.
    for (let l = c.numLayers - 1; l >= 0; l--) {
      const g = grad;
      grad = tidy(() => {
        const xin = inputs[l].detach().requiresGrad_();
        const out = layerForward(c, model.dtype, w.layers[l], xin, cos, sin, mask);
        out.backward(g);
        return xin.grad!;
      });
      g.dispose();
      inputs[l].dispose();
    }
    const table = w.embedTokens;
    if (!isPacked(table) && table.requiresGrad) embedding(table, ids).backward(grad);
    return value;
  });
}
