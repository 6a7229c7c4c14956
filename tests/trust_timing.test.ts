// Timing statistics: bootstrap intervals that cover the truth as often as they claim, and a
// comparison that finds a real slowdown without crying wolf over noise.
import assert from "node:assert/strict";
import {
  bootstrapMedian,
  compareSamples,
  mannWhitneyP,
  normalCdf,
  quantile,
  rng,
} from "../models/profile/stats.ts";
import { join } from "node:path";
import { runPipeline, silentReporter } from "../engine/mod.ts";
import { loadModel } from "../models/mod.ts";
import { createTinyModel } from "../models/tiny.ts";
import { profileGenerations } from "../models/profile/generation.ts";
import { ENGINE, lab, queryRows, tempProject } from "./engine_helpers.ts";

/** Log-normal samples with median `median` and log-sd `sigma`, seeded. */
function lognormal(n: number, median: number, sigma: number, random: () => number): number[] {
  return Array.from({ length: n }, () => {
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return median * Math.exp(sigma * z);
  });
}

Deno.test("bootstrap median intervals cover the true median in about 95% of seeded trials", () => {
  const random = rng(42);
  let covered = 0;
  const trials = 400;
  for (let t = 0; t < trials; t++) {
    const xs = lognormal(31, 10, 0.3, random);
    const ci = bootstrapMedian(xs, { seed: t, resamples: 1000 });
    assert.ok(ci.lo <= ci.median && ci.median <= ci.hi);
    if (ci.lo <= 10 && 10 <= ci.hi) covered++;
  }
  const rate = covered / trials;
  assert.ok(rate >= 0.9 && rate <= 0.99, `coverage ${rate}`);
  // Seeded: the same samples give the same interval.
  const xs = lognormal(9, 5, 0.2, rng(1));
  assert.deepEqual(bootstrapMedian(xs, { seed: 3 }), bootstrapMedian(xs, { seed: 3 }));
  assert.deepEqual(bootstrapMedian([4]), { n: 1, median: 4, lo: 4, hi: 4 });
  assert.equal(bootstrapMedian([]).n, 0);
});

Deno.test("compare finds a planted 20% slowdown and no difference between equal distributions", () => {
  const random = rng(7);
  let found = 0, falseAlarms = 0;
  const trials = 100;
  for (let t = 0; t < trials; t++) {
    const before = lognormal(10, 100, 0.05, random);
    const slower = lognormal(10, 80, 0.05, random);
    const same = lognormal(10, 100, 0.05, random);
    const c = compareSamples(before, slower, { seed: t, resamples: 500 });
    if (c.significant && c.relLo <= -0.2 + 0.05 && c.relHi >= -0.2 - 0.05) found++;
    if (compareSamples(before, same, { seed: t, resamples: 500 }).significant) falseAlarms++;
  }
  assert.ok(found >= 95, `found the slowdown in ${found} of ${trials}`);
  assert.ok(falseAlarms <= 10, `${falseAlarms} false alarms in ${trials}`);
  const c = compareSamples([100, 101, 99, 102, 98], [80, 81, 79, 82, 78]);
  assert.ok(Math.abs(c.relDiff - -0.2) < 1e-12);
  assert.equal(c.significant, true);
  assert.ok(Math.abs(c.p - 2 / 252) < 1e-12, `exact p ${c.p}`);
});

Deno.test("Mann–Whitney: exact small-sample p-values, normal approximation with ties", () => {
  assert.ok(Math.abs(mannWhitneyP([1, 2, 3], [4, 5, 6]) - 0.1) < 1e-12);
  assert.ok(Math.abs(mannWhitneyP([4, 5, 6], [1, 2, 3]) - 0.1) < 1e-12);
  assert.equal(mannWhitneyP([1, 3, 5], [2, 4, 6]), 0.7);
  // Ties: scipy.stats.mannwhitneyu([1,2,2,3,4], [2,3,5,6,7], method="asymptotic") gives 0.11161.
  assert.ok(Math.abs(mannWhitneyP([1, 2, 2, 3, 4], [2, 3, 5, 6, 7]) - 0.111612) < 1e-5);
  assert.equal(mannWhitneyP([1, 1], [1, 1]), 1);
  assert.ok(Math.abs(normalCdf(1.96) - 0.975) < 1e-4);
});

const TIMED = new URL("./fixtures/pipelines/timed_stage.ts", import.meta.url).href;

Deno.test("lab compare: a planted 20% slowdown is found, equal runs are not, in the CLI and in SQL", async () => {
  const t = tempProject();
  const file = (tps: number, seed: number) =>
    t.write(
      `p${tps}_${seed}.ts`,
      `import { pipeline } from "${ENGINE}";
import { timed } from "${TIMED}";
export default pipeline("timing", () => { timed({ tps: ${tps}, seed: ${seed} }); });
`,
    );
  const runs: string[] = [];
  for (const [tps, seed] of [[100, 1], [100, 2], [80, 3]]) {
    const r = await runPipeline(file(tps, seed), {
      resultsDir: t.results,
      executor: "inline",
      reporter: silentReporter,
    });
    assert.equal(r.status, "ok");
    runs.push(r.runId);
  }
  const keys = (await queryRows(
    t.results,
    "SELECT s.key FROM stages s JOIN runs r USING (run_id) ORDER BY r.started_at",
  )).map((r) => String(r.key));

  // Two runs: their timing stages pair up by name.
  const slower = await lab(["compare", runs[0], runs[2], "--json", "--results", t.results]);
  assert.equal(slower.code, 0, slower.stderr);
  const rows = JSON.parse(slower.stdout) as Record<string, number | string>[];
  assert.deepEqual(rows.map((r) => `${r.config} ${r.metric}`), [
    "b1 p8 n4 decode_tps",
    "b1 p8 n4 ttft_ms",
    "b4 p8 n4 decode_tps",
    "b4 p8 n4 ttft_ms",
  ]);
  for (const r of rows) {
    assert.equal(r.verdict, "B worse", JSON.stringify(r));
    const planted = r.metric === "decode_tps" ? 0.8 - 1 : 1 / 0.8 - 1;
    assert.ok(
      Number(r.change_lo) <= planted && planted <= Number(r.change_hi),
      `${r.metric}: [${r.change_lo}, ${r.change_hi}] holds ${planted}`,
    );
    assert.ok(Number(r.p) < 0.01);
  }
  // Two stages by key prefix; same distribution, other seed.
  const same = await lab([
    "compare",
    keys[0].slice(0, 10),
    keys[1],
    "--json",
    "--results",
    t.results,
  ]);
  assert.equal(same.code, 0, same.stderr);
  for (const r of JSON.parse(same.stdout)) {
    assert.equal(r.verdict, "no significant difference", JSON.stringify(r));
  }
  const table = await lab([
    "compare",
    runs[0],
    runs[2],
    "--metric",
    "decode_tps",
    "--results",
    t.results,
  ]);
  assert.match(
    table.stdout,
    /b1 p8 n4\s+decode_tps\s+12\s+12\s+[\d.]+\s+[\d.]+\s+-\d+\.\d%\s+\[-\d+\.\d%, -\d+\.\d%\]\s+[\d.e-]+\s+B worse/,
  );

  const sql = await queryRows(
    t.results,
    `SELECT batch, metric, n_a, n_b, round(change, 2) AS change, significant
     FROM compare('${keys[0]}', '${keys[2]}') ORDER BY batch, metric`,
  );
  assert.deepEqual(sql.map((r) => [r.batch, r.metric, r.n_a, r.n_b, r.significant]), [
    [1, "decode_tps", 12, 12, true],
    [1, "ttft_ms", 12, 12, true],
    [4, "decode_tps", 12, 12, true],
    [4, "ttft_ms", 12, 12, true],
  ]);
  const equal = await queryRows(
    t.results,
    `SELECT bool_or(significant) AS any FROM compare('${keys[0]}', '${keys[1]}')`,
  );
  assert.equal(equal[0].any, false);

  const unknown = await lab(["compare", "nonesuch", runs[0], "--results", t.results]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /"nonesuch" is neither a run id, a timing stage's key nor/);
});

Deno.test("profile alternates configurations and stores samples, intervals and conditions", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-timing-" });
  createTinyModel({ arch: "llama", preset: "tiny", out: join(dir, "m"), seed: 1 });
  {
    using model = loadModel(join(dir, "m"));
    const order: string[] = [];
    const cases = [1, 2].map((batch) => ({ batch, promptTokens: 6, newTokens: 4, kvCache: true }));
    const out = profileGenerations(model, cases, {
      warmup: 0,
      repeats: 3,
      onRun: (i, r) => order.push(`${i}:${r}`),
    });
    assert.deepEqual(order, ["0:0", "1:0", "0:1", "1:1", "0:2", "1:2"]);
    for (const p of out) {
      assert.equal(p.samples.decodeTps.length, 3);
      assert.deepEqual(p.samples.latencyMs.map((s) => s.length), [3, 3, 3]);
      assert.equal(p.decodeTps, quantile(p.samples.decodeTps, 0.5));
      assert.ok(p.ci.decodeTps.lo <= p.decodeTps && p.decodeTps <= p.ci.decodeTps.hi);
      assert.equal(p.ci.latencyMs.n, 9);
    }
  }
  const file = join(dir, "p.ts");
  Deno.writeTextFileSync(
    file,
    `import { load, pipeline, profile } from "${new URL("../mod.ts", import.meta.url).href}";
export default pipeline("prof", () => {
  profile(load({ model: ${JSON.stringify(join(dir, "m"))} }),
    { batch: [1, 2], promptTokens: 6, newTokens: 4, repeats: 3, warmup: 0 });
});
`,
  );
  const results = join(dir, "results");
  const r = await runPipeline(file, {
    resultsDir: results,
    executor: "inline",
    reporter: silentReporter,
  });
  assert.equal(r.status, "ok", r.failures.map((f) => f.error?.message).join("\n"));
  const counts = await queryRows(
    results,
    `SELECT batch, metric, count(*)::INT AS n FROM timing_samples GROUP BY ALL ORDER BY ALL`,
  );
  assert.deepEqual(
    counts.map((c) => `${c.batch} ${c.metric} ${c.n}`),
    [1, 2].flatMap((b) => [
      `${b} decode_tps 3`,
      `${b} e2e_ms 3`,
      `${b} latency_ms 9`,
      `${b} prefill_tps 3`,
      `${b} ttft_ms 3`,
    ]),
  );
  const prof = await queryRows(
    results,
    `SELECT bool_and(decode_tps_ci_lo <= decode_tps AND decode_tps <= decode_tps_ci_hi
                     AND ttft_ci_lo_ms <= ttft_ms AND ttft_ms <= ttft_ci_hi_ms
                     AND latency_ci_lo_ms <= latency_p50_ms AND latency_p50_ms <= latency_ci_hi_ms
                     AND prefill_tps_ci_lo <= prefill_tps) AS inside,
            count(noisy)::INT AS flagged, min(repeats)::INT AS n FROM profiles`,
  );
  assert.deepEqual(prof, [{ inside: true, flagged: 2, n: 3 }]);
  const cond = await queryRows(
    results,
    `SELECT cores::INT AS cores, cpu_model IS NOT NULL AS model, others_share >= 0 AS share,
            own_cpu_s > 0 AS own, load1_before IS NOT NULL AS load FROM timing_conditions`,
  );
  assert.deepEqual(cond, [{
    cores: navigator.hardwareConcurrency,
    model: true,
    share: true,
    own: true,
    load: true,
  }]);
  // The report draws the intervals as error bars on the speed chart.
  const { buildReport } = await import("../reports/build.ts");
  const rep = await buildReport(results, { out: join(dir, "report.html") });
  const speed = rep.charts.find((c) => c.id === "prefill_decode")!;
  const svg = speed.svg ?? "";
  const rules = svg.slice(svg.indexOf('aria-label="rule"'), svg.indexOf('aria-label="dot"'));
  const bars = rules.match(/<line/g)?.length;
  assert.equal(bars, 4, "one bar per phase and batch");
  assert.match(speed.caption, /95% bootstrap intervals/);
});
