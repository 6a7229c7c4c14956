// Profiling: statistics, the request trace, the batcher's bookkeeping, generation figures.
import assert from "node:assert/strict";
import { loadModel } from "../models/mod.ts";
import { createTinyModel } from "../models/tiny.ts";
import { quantile, rng, summary } from "../models/profile/stats.ts";
import { profileGeneration } from "../models/profile/generation.ts";
import { makeTrace, simulateDynamicBatching } from "../models/profile/dynamic_batching.ts";

Deno.test("quantiles interpolate linearly, as numpy's default", () => {
  assert.equal(quantile([3, 1, 2, 4], 0.5), 2.5);
  assert.equal(quantile([1, 2, 3, 4, 5], 0.95), 4.8);
  assert.equal(quantile([7], 0.99), 7);
  assert.ok(Number.isNaN(quantile([], 0.5)));
  assert.deepEqual(summary([5, 1, 3]), { median: 3, min: 1, max: 5 });
  const a = rng(9), b = rng(9);
  assert.equal(a(), b());
});

function withTiny(fn: (dir: string) => void) {
  const dir = Deno.makeTempDirSync({ prefix: "lab-prof-" });
  try {
    createTinyModel({ arch: "llama", preset: "tiny", out: dir, seed: 1 });
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("the trace has Poisson arrivals at the requested rate and seeded lengths", () => {
  withTiny((dir) => {
    using model = loadModel(dir);
    const o = {
      requests: 2000,
      ratePerS: 50,
      promptTokens: [4, 9] as [number, number],
      outputTokens: [2, 5] as [number, number],
      maxBatch: 4,
      maxWaitMs: 10,
      seed: 3,
    };
    const t = makeTrace(model, o);
    const meanGapMs = t[t.length - 1].arrival / t.length;
    assert.ok(Math.abs(meanGapMs - 20) < 2, `mean gap ${meanGapMs} ms, want 20`);
    assert.ok(t.every((r) => r.prompt.length >= 4 && r.prompt.length <= 9));
    assert.ok(t.every((r) => r.output >= 2 && r.output <= 5));
    assert.deepEqual(makeTrace(model, o).map((r) => r.arrival), t.map((r) => r.arrival));
  });
});

Deno.test("dynamic batching serves every request once, within its limits", () => {
  withTiny((dir) => {
    using model = loadModel(dir);
    const base = {
      requests: 12,
      ratePerS: 200,
      promptTokens: [3, 6] as [number, number],
      outputTokens: [2, 4] as [number, number],
      seed: 5,
    };
    const r = simulateDynamicBatching(model, { ...base, maxBatch: 3, maxWaitMs: 50 });
    assert.deepEqual(r.requests.map((x) => x.id).sort((a, b) => a - b), [...Array(12).keys()]);
    for (const x of r.requests) {
      assert.ok(x.batch >= 1 && x.batch <= 3);
      assert.ok(x.queueMs >= 0, `queue ${x.queueMs}`);
      assert.ok(x.ttftMs >= x.queueMs && x.latencyMs >= x.ttftMs);
    }
    assert.ok(r.batches >= 4);
    assert.equal(r.meanBatch, 12 / r.batches);
    const one = simulateDynamicBatching(model, { ...base, maxBatch: 1, maxWaitMs: 0 });
    assert.equal(one.batches, 12);
    const all = simulateDynamicBatching(model, { ...base, maxBatch: 12, maxWaitMs: 1e9 });
    assert.equal(all.batches, 1);
    assert.ok(all.throughputTps > 0);
  });
});

Deno.test("generation profile: counts, orderings and memory figures", () => {
  withTiny((dir) => {
    using model = loadModel(dir);
    for (const kvCache of [true, false]) {
      const p = profileGeneration(model, { batch: 2, promptTokens: 8, newTokens: 5, kvCache }, {
        warmup: 1,
        repeats: 2,
      });
      assert.equal(p.repeats, 2);
      assert.ok(p.ttftMinMs <= p.ttftMs && p.ttftMs <= p.ttftMaxMs);
      assert.ok(p.decodeTpsMin <= p.decodeTps && p.decodeTps <= p.decodeTpsMax);
      assert.ok(p.latencyP50Ms <= p.latencyP95Ms && p.latencyP95Ms <= p.latencyP99Ms);
      assert.ok(p.prefillTps > 0 && p.e2eMs >= p.ttftMs);
      assert.equal(p.memorySource, "process-rss");
      assert.ok(p.peakMemBytes > 0);
    }
    assert.throws(
      () =>
        profileGeneration(model, { batch: 1, promptTokens: 10_000, newTokens: 5, kvCache: true }),
      /needs 10005 positions, but the model allows 512/,
    );
  });
});
