// Gradients against central finite differences, AdamW against its update rule.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import { assertClose } from "./helpers.ts";

const { tensor, tidy } = torch;
type T = torch.Tensor;

/** Compares autograd's gradient of sum(f(x) * probe) with central differences in float64. */
function checkGrad(shape: number[], f: (x: T) => T, seed: number, tol = 1e-6) {
  tidy(() => {
    torch.manualSeed(seed);
    const x0 = torch.randn(shape, { dtype: "float64" });
    const probe = torch.noGrad(() =>
      f(x0).mul(0).add(torch.randn(f(x0).shape, { dtype: "float64" }))
    );
    const x = x0.clone().requiresGrad_();
    f(x).mul(probe).sum().backward();
    const analytic = x.grad!.values();
    const base = x0.values();
    const eps = 1e-6;
    const numeric = base.map((_, i) =>
      torch.noGrad(() =>
        tidy(() => {
          const plus = base.slice();
          const minus = base.slice();
          plus[i] += eps;
          minus[i] -= eps;
          const fp = f(tensor(plus, { dtype: "float64", shape })).mul(probe).sum().item();
          const fm = f(tensor(minus, { dtype: "float64", shape })).mul(probe).sum().item();
          return (fp - fm) / (2 * eps);
        })
      )
    );
    assertClose(analytic, numeric, tol, "gradient");
  });
}

Deno.test("matmul gradient matches finite differences", () => {
  const w = tidy(() => torch.keep(torch.randn([4, 3], { dtype: "float64" })));
  checkGrad([2, 4], (x) => x.matmul(w), 1);
  checkGrad([4, 3], (x) => torch.randn([2, 4], { dtype: "float64" }).mul(0).add(1).matmul(x), 2);
  w.dispose();
});

Deno.test("softmax gradient matches finite differences", () => {
  checkGrad([3, 5], (x) => x.softmax(-1), 3);
  checkGrad([3, 5], (x) => x.logSoftmax(0), 4);
});

Deno.test("rms-norm gradient (input and weight) matches finite differences", () => {
  const w = tidy(() => torch.keep(torch.randn([6], { dtype: "float64" })));
  checkGrad([2, 6], (x) => torch.rmsNorm(x, w, 1e-5), 5);
  const x = tidy(() => torch.keep(torch.randn([2, 6], { dtype: "float64" })));
  checkGrad([6], (wt) => torch.rmsNorm(x, wt, 1e-5), 6);
  w.dispose();
  x.dispose();
});

Deno.test("cross_entropy gradient (with ignore_index) matches finite differences", () => {
  const target = tensor([1, -100, 3], { dtype: "int64" });
  checkGrad([3, 5], (x) => torch.crossEntropy(x, target, { ignoreIndex: -100 }), 7);
  target.dispose();
});

Deno.test("backward, grad, zeroGrad, detach and noGrad", () => {
  tidy(() => {
    const x = tensor([1, 2, 3]).requiresGrad_();
    assert.equal(x.requiresGrad, true);
    assert.equal(x.grad, null);
    x.mul(x).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
    x.mul(x).sum().backward(); // accumulates
    assert.deepEqual(x.grad!.toArray(), [4, 8, 12]);
    x.zeroGrad();
    assert.equal(x.grad, null);
    assert.equal(x.detach().requiresGrad, false);
    assert.equal(torch.noGrad(() => x.mul(2)).requiresGrad, false);
    assert.equal(x.mul(2).requiresGrad, true);
  });
});

Deno.test("AdamW takes the same steps as the decoupled-weight-decay formula", () => {
  tidy(() => {
    const p0 = [0.5, -1, 2];
    const p = tensor(p0, { dtype: "float64" }).requiresGrad_();
    const lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
    const opt = new torch.AdamW([p], { lr, betas: [b1, b2], eps, weightDecay: wd });
    // reference: loss = sum(p^2) -> grad = 2p
    let ref = p0.slice();
    const m = [0, 0, 0], v = [0, 0, 0];
    for (let step = 1; step <= 3; step++) {
      const stepLr = step === 3 ? 0.05 : lr;
      opt.zeroGrad();
      p.mul(p).sum().backward();
      opt.step(stepLr);
      ref = ref.map((w, i) => {
        const g = 2 * w;
        const decayed = w * (1 - stepLr * wd);
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        const mh = m[i] / (1 - b1 ** step);
        const vh = v[i] / (1 - b2 ** step);
        return decayed - (stepLr * mh) / (Math.sqrt(vh) + eps);
      });
    }
    assertClose(p.values(), ref, 1e-12, "AdamW parameters");
    opt.dispose();
  });
});

Deno.test("clipGradNorm scales gradients to the requested norm", () => {
  tidy(() => {
    const a = tensor([3, 0]).requiresGrad_();
    const b = tensor([4]).requiresGrad_();
    a.sum().mul(0).add(a.mul(tensor([3, 0])).sum()).backward(); // grad a = [3, 0]
    b.mul(4).sum().backward(); // grad b = [4]
    const total = torch.clipGradNorm([a, b], 1);
    assertClose([total], [5], 1e-6);
    assertClose(a.grad!.values(), [0.6, 0], 1e-5);
    assertClose(b.grad!.values(), [0.8], 1e-5);
    // under the limit: unchanged
    assertClose([torch.clipGradNorm([a, b], 10)], [1], 1e-5);
    assertClose(b.grad!.values(), [0.8], 1e-5);
  });
});
