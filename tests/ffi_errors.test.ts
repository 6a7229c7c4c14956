// Bad input: each case is a TorchError/Error with a plain message, and the process keeps running.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import { locateLibtorch } from "../ffi/libtorch_locate.ts";

const { tensor, tidy, TorchError } = torch;

function throwsTorch(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TorchError, `expected TorchError, got ${e}`);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

Deno.test("shape mismatch names the shapes", () => {
  tidy(() => {
    throwsTorch(() => torch.ones([2, 3]).matmul(torch.ones([2, 3])), /matmul: .*2x3 and 2x3/);
    throwsTorch(() => torch.ones([2]).add(torch.ones([3])), /add: .*size of tensor a \(2\).*\(3\)/);
    throwsTorch(() => torch.ones([6]).view([4, 2]), /view: .*shape '\[4, 2\]' is invalid/);
    throwsTorch(() => tensor([1, 2, 3], { shape: [2, 2] }), /shape \[2,2\] needs 4 elements/);
    throwsTorch(() => tensor([[1, 2], [3]]), /ragged/);
    throwsTorch(() => torch.ones([2]).size(3), /dimension 3 out of range/);
  });
});

Deno.test("wrong dtype is a clear error", () => {
  tidy(() => {
    throwsTorch(() => torch.ones([2]).bitwiseAnd(1), /bitwiseAnd: .*(not implemented|Float)/);
    throwsTorch(
      () => torch.embedding(torch.ones([4, 2]), tensor([0.5])),
      /embedding: .*(Long|Int)/,
    );
    throwsTorch(
      () => torch.zeros([2], { dtype: "complex64" as torch.DType }),
      /unknown dtype 'complex64'/,
    );
  });
});

Deno.test("unknown device and CUDA without CUDA", () => {
  throwsTorch(
    () => torch.zeros([2], { device: "tpu" }),
    /unknown device 'tpu'.*'cpu', 'cuda' or 'cuda:N'/,
  );
  if (!torch.cuda.isAvailable()) {
    throwsTorch(
      () => torch.zeros([2], { device: "cuda" }),
      /CUDA is not available.*Use device 'cpu'/,
    );
    throwsTorch(() => tidy(() => torch.ones([2]).to("cuda:1")), /CUDA is not available/);
    assert.equal(torch.cuda.deviceCount(), 0);
    torch.cuda.synchronize(); // a no-op without CUDA
  }
});

Deno.test("use after dispose and double dispose", () => {
  const t = torch.ones([2]);
  t.dispose();
  t.dispose(); // harmless
  assert.equal(t.isDisposed, true);
  throwsTorch(() => t.add(1), /used after dispose\(\)/);
  throwsTorch(() => t.shape, /used after dispose\(\)/);
  throwsTorch(() => t.values(), /used after dispose\(\)/);
  const kept = tidy(() => {
    const inner = torch.ones([2]);
    return { inner, other: torch.zeros([1]).add(1) };
  });
  assert.equal(kept.inner.isDisposed, false);
  kept.inner.dispose();
  kept.other.dispose();
  let leaked: torch.Tensor | null = null;
  tidy(() => {
    leaked = torch.ones([1]);
  });
  throwsTorch(() => leaked!.item(), /used after dispose/);
});

Deno.test("a failing op inside tidy frees the scope and rethrows", () => {
  const before = torch.liveTensors();
  assert.throws(() =>
    tidy(() => {
      torch.ones([3]);
      return torch.ones([2]).matmul(torch.ones([3]));
    })
  );
  assert.equal(torch.liveTensors(), before);
});

async function runSnippet(code: string, env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-lock", code],
    env,
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

Deno.test("a missing shim library is a clear error, not a crash", async () => {
  const text = await runSnippet(
    `import * as torch from "./ffi/mod.ts";
     try { torch.ones([1]); } catch (e) { console.log("caught:", e.message); }
     console.log("still running");`,
    { LAB_TORCH_SHIM: "/nonexistent/liblab_torch.so" },
  );
  assert.match(text, /caught: the libtorch shim is not built .*Run: deno task setup/);
  assert.match(text, /still running/);
});

Deno.test("a LIBTORCH that is not a libtorch folder is named with the fix", () => {
  assert.throws(
    () => locateLibtorch("/nonexistent/libtorch"),
    /LIBTORCH=\/nonexistent\/libtorch is not a libtorch folder.*ATen\.h.*pip install/s,
  );
});

Deno.test("using declarations free tensors at block end", () => {
  const before = torch.liveTensors();
  {
    using a = torch.ones([4]);
    using b = a.mul(2);
    using s = b.sum();
    assert.equal(s.item(), 8);
    assert.equal(torch.liveTensors(), before + 3);
  }
  assert.equal(torch.liveTensors(), before);
});
