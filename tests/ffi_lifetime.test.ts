// Handle lifetimes: tidy scopes, the live counter, async scopes, keep().
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";

Deno.test("100,000 ops in a loop end with zero live tensors", () => {
  const before = torch.liveTensors();
  const a = torch.ones([2, 2]);
  let acc = torch.zeros([2, 2]);
  for (let i = 0; i < 100_000; i++) {
    acc = torch.tidy(() => {
      const next = acc.add(a).mul(1);
      acc.dispose();
      return next;
    });
  }
  assert.equal(torch.tidy(() => acc.sum().item()), 400_000);
  torch.tidy(() => {
    for (let i = 0; i < 1000; i++) a.add(1).exp().log();
  });
  acc.dispose();
  a.dispose();
  assert.equal(torch.liveTensors(), before);
});

Deno.test("nested tidy hands kept tensors to the outer scope", () => {
  const before = torch.liveTensors();
  const result = torch.tidy(() => {
    const inner = torch.tidy(() => {
      torch.ones([1]);
      return [torch.ones([2]), { deep: torch.zeros([3]) }];
    });
    assert.equal(torch.liveTensors(), before + 2);
    return inner[0] as torch.Tensor;
  });
  assert.equal(torch.liveTensors(), before + 1);
  assert.equal(result.numel, 2);
  result.dispose();
  assert.equal(torch.liveTensors(), before);
});

Deno.test("async tidy frees after the promise settles", async () => {
  const before = torch.liveTensors();
  const out = await torch.tidy(async () => {
    const a = torch.ones([64, 64]);
    const b = await a.matmulAsync(a);
    torch.ones([5]);
    return b;
  });
  assert.equal(out.sum().item(), 64 * 64 * 64);
  assert.equal(torch.liveTensors(), before + 2); // out, and out.sum()
  out.dispose();
});

Deno.test("keep() lets a tensor outlive its scope", () => {
  const before = torch.liveTensors();
  let k: torch.Tensor | null = null;
  torch.tidy(() => {
    k = torch.keep(torch.ones([3]));
    torch.ones([3]);
  });
  assert.equal(k!.isDisposed, false);
  assert.equal(torch.liveTensors(), before + 1);
  k!.dispose();
});

Deno.test("nonblocking matmul and linear report errors from their worker thread", async () => {
  const a = torch.ones([2, 3]);
  await assert.rejects(() => a.matmulAsync(a), /matmul: .*2x3 and 2x3/);
  const y = await torch.linearAsync(a, torch.ones([4, 3]));
  assert.deepEqual(y.shape, [2, 4]);
  assert.equal(y.sum().item(), 24);
  a.dispose();
});

Deno.test("memory stats report process RSS on the CPU", () => {
  const s = torch.memory.stats();
  assert.equal(s.source, "process-rss");
  assert.ok(s.allocated > 1e6 && s.peak >= s.allocated * 0.5);
  torch.memory.resetPeak();
  const big = torch.ones([64, 1024, 1024]); // 256 MiB
  assert.ok(torch.memory.peak() >= torch.memory.allocated() - 1e6);
  assert.ok(torch.memory.peak() > 256 * 1024 * 1024);
  big.dispose();
});

Deno.test("version reports the libtorch the shim was built against", () => {
  assert.match(torch.version(), /^\d+\.\d+\.\d+$/);
  assert.ok(torch.getNumThreads() >= 1);
});
