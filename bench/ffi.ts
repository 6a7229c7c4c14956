// `deno task bench ffi`: per-op overhead of a small add and a 1024×1024 matmul,
// through the TypeScript API and through Python eager on the same libtorch.
import * as torch from "../ffi/mod.ts";
import { pythonWithTorch, runPython } from "./python.ts";

interface Figures {
  add_us: number;
  matmul_ms: number;
  threads: number;
}

function bestOf(reps: number, fn: () => number): number {
  let best = Infinity;
  for (let r = 0; r < reps; r++) best = Math.min(best, fn());
  return best;
}

function measureOurs(): Figures {
  const a = torch.ones([2, 2]);
  const addUs = bestOf(5, () => {
    const n = 100_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) a.add(a).dispose();
    return ((performance.now() - t0) * 1000) / n;
  });
  torch.manualSeed(0);
  const m = torch.randn([1024, 1024]);
  const mmMs = bestOf(5, () => {
    const n = 20;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) m.matmul(m).dispose();
    return (performance.now() - t0) / n;
  });
  a.dispose();
  m.dispose();
  return { add_us: addUs, matmul_ms: mmMs, threads: torch.getNumThreads() };
}

const PY = `
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a = torch.ones(2, 2)
def best(reps, fn):
    return min(fn() for _ in range(reps))
def add():
    n = 100000
    t0 = time.perf_counter()
    for _ in range(n):
        b = a + a
        del b
    return (time.perf_counter() - t0) * 1e6 / n
torch.manual_seed(0)
m = torch.randn(1024, 1024)
def mm():
    n = 20
    t0 = time.perf_counter()
    for _ in range(n):
        r = m @ m
        del r
    return (time.perf_counter() - t0) * 1e3 / n
print(json.dumps({"add_us": best(5, add), "matmul_ms": best(5, mm), "threads": torch.get_num_threads()}))
`;

/** Runs the benchmark and prints a table with ratios. */
export async function main(_args: string[]): Promise<void> {
  const ours = measureOurs();
  console.log(`libtorch ${torch.version()}, ${ours.threads} threads`);
  const py = await pythonWithTorch();
  const theirs = py ? await runPython<Figures>(py, PY, [String(ours.threads)]) : null;
  const row = (name: string, o: number, t: number | undefined, unit: string) => {
    const ratio = t ? (o / t).toFixed(2) : "n/a";
    console.log(
      `${name.padEnd(22)} ours ${o.toFixed(3).padStart(9)} ${unit}   python ${
        t ? t.toFixed(3).padStart(9) : "      n/a"
      } ${unit}   ours/python ${ratio}`,
    );
  };
  row("small add (2x2)", ours.add_us, theirs?.add_us, "µs");
  row("matmul 1024x1024 f32", ours.matmul_ms, theirs?.matmul_ms, "ms");
  if (!theirs) {
    console.log("(no /usr/bin/python3 with torch: install python3-torch for the baseline)");
  }
  console.log("targets: small add ratio <= 1.0; matmul ratio <= 1.05");
}
