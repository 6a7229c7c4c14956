import assert from "node:assert/strict";
import { join } from "node:path";
import { type RunOptions, runPipeline } from "../engine/mod.ts";
import { CacheStore } from "../engine/cache.ts";
import { lockResults } from "../engine/lock.ts";
import { clearSourceCache } from "../engine/source_hash.ts";
import {
  basicPipeline,
  ENGINE,
  FIXTURE_STAGES,
  namesWith,
  queryRows,
  tempProject,
} from "./engine_helpers.ts";

const inline = (results: string, extra: Partial<RunOptions> = {}): RunOptions => ({
  resultsDir: results,
  executor: "inline",
  ...extra,
});

Deno.test("a second run of an unchanged pipeline executes nothing", async () => {
  const t = tempProject();
  const file = t.write("p.ts", basicPipeline("basic", [1, 2, 3]));
  const first = await runPipeline(file, inline(t.results));
  assert.equal(first.status, "ok");
  assert.equal(first.counts.ok, 5);
  const second = await runPipeline(file, inline(t.results));
  assert.equal(second.counts.ok, 0);
  assert.equal(second.counts.cached, 5);
  // Cache layout: meta.json, records.jsonl, artifacts/.
  const cache = new CacheStore(t.results);
  assert.equal(cache.keys().size, 5);
  const scale2 = first.outcomes.find((o) => o.node.name === "scale[factor=2]")!.node;
  const meta = cache.readMeta(scale2.key);
  assert.equal(meta.status, "ok");
  assert.equal(meta.kind, "scale");
  assert.deepEqual(meta.params, { factor: 2, fail: false });
  assert.deepEqual(meta.coords, { factor: 2 });
  assert.deepEqual(meta.records, { metrics: 1, evals: 1 });
  assert.deepEqual(meta.output, { sum: 20 });
  assert.deepEqual(
    JSON.parse(
      Deno.readTextFileSync(join(cache.entryDir(scale2.key), "artifacts", "numbers.json")),
    ),
    [2, 4, 6, 8],
  );
  assert.deepEqual(cache.readRecords(scale2.key).get("metrics"), [{
    name: "sum",
    value: 20,
    unit: "units",
  }]);
});

Deno.test("changing one sweep value re-runs only that branch and what depends on it", async () => {
  const t = tempProject();
  await runPipeline(t.write("p1.ts", basicPipeline("basic", [1, 2, 3])), inline(t.results));
  const s = await runPipeline(
    t.write("p2.ts", basicPipeline("basic", [1, 2, 4])),
    inline(t.results),
  );
  assert.deepEqual(namesWith(s, "ok"), ["combine", "scale[factor=4]"]);
  assert.deepEqual(namesWith(s, "cached"), ["scale[factor=1]", "scale[factor=2]", "source"]);
});

Deno.test("editing a stage module re-runs its stages", async () => {
  const t = tempProject();
  const mod = (extra: string) =>
    `import { z } from "zod";
import { defineStage } from "${ENGINE}";
export const own = defineStage({ kind: "own", inputs: ["src"], params: z.object({}), run: (ctx) => { ctx.metric("x", 1); } });
${extra}`;
  t.write("own_stage.ts", mod(""));
  const file = t.write(
    "p.ts",
    `import { pipeline } from "${ENGINE}";
import { source, scale } from "${FIXTURE_STAGES}";
import { own } from "./own_stage.ts";
export default pipeline("edit", () => { const s = source(); own(s); scale(s, { factor: 2 }); });
`,
  );
  assert.equal((await runPipeline(file, inline(t.results))).counts.ok, 3);
  t.write("own_stage.ts", mod("// edited\n"));
  clearSourceCache();
  const s = await runPipeline(file, inline(t.results));
  assert.deepEqual(namesWith(s, "ok"), ["own"]);
  assert.deepEqual(namesWith(s, "cached"), ["scale", "source"]);
});

Deno.test("a failing stage skips only its descendants; the rest goes on; failure is recorded", async () => {
  const t = tempProject();
  const file = t.write(
    "p.ts",
    `import { pipeline } from "${ENGINE}";
import { combine, scale, source } from "${FIXTURE_STAGES}";
export default pipeline("fail", ({ sweep }) => {
  const src = source({ n: 4 });
  const parts = [];
  for (const factor of sweep("factor", [1, 2, 3])) parts.push(scale(src, { factor, fail: factor === 2 }));
  combine(parts);
  combine([parts[0], parts[2]]).named("combine_ok");
  combine([scale(parts[1], { factor: 10 }).named("after_fail")]).named("deep");
});
`,
  );
  const s = await runPipeline(file, inline(t.results));
  assert.equal(s.status, "failed");
  assert.deepEqual(namesWith(s, "failed"), ["scale[factor=2]"]);
  assert.deepEqual(namesWith(s, "skipped"), ["after_fail", "combine", "deep"]);
  assert.deepEqual(namesWith(s, "ok"), [
    "combine_ok",
    "scale[factor=1]",
    "scale[factor=3]",
    "source",
  ]);
  assert.equal(s.failures.length, 1);
  assert.match(s.failures[0].error!.message, /factor 2 was asked to fail/);
  const cache = new CacheStore(t.results);
  const failedKey = s.failures[0].node.key;
  assert.equal(cache.has(failedKey), false, "a failed stage is not cached");
  const fmeta = cache.readFailure(failedKey)!;
  assert.equal(fmeta.status, "failed");
  assert.match(fmeta.error!.message, /asked to fail/);
  assert.match(fmeta.error!.stack!, /stages\.ts/);
  const rows = await queryRows(
    t.results,
    "SELECT name, status, cached, error FROM stages ORDER BY name",
  );
  assert.deepEqual(rows.map((r) => [r.name, r.status]), [
    ["after_fail", "skipped"],
    ["combine", "skipped"],
    ["combine_ok", "ok"],
    ["deep", "skipped"],
    ["scale[factor=1]", "ok"],
    ["scale[factor=2]", "failed"],
    ["scale[factor=3]", "ok"],
    ["source", "ok"],
  ]);
  assert.match(String(rows[5].error), /asked to fail/);
  const f = await queryRows(t.results, "SELECT name FROM failures");
  assert.deepEqual(f, [{ name: "scale[factor=2]" }]);
  // The failed stage is tried again next time; the rest is cached.
  const again = await runPipeline(file, inline(t.results));
  assert.deepEqual(namesWith(again, "failed"), ["scale[factor=2]"]);
  assert.equal(again.counts.ok, 0);
  assert.equal(again.counts.cached, 4);
});

Deno.test("independent stages run concurrently up to --jobs, after their inputs", async () => {
  const t = tempProject();
  const rendezvous = join(t.dir, "rv");
  Deno.mkdirSync(rendezvous);
  const file = t.write(
    "p.ts",
    `import { z } from "zod";
import { join } from "node:path";
import { defineStage, pipeline } from "${ENGINE}";
import { source } from "${FIXTURE_STAGES}";
// Each meets the others: it only finishes once all three have started, so it needs 3 slots.
const meet = defineStage({
  kind: "meet",
  inputs: ["src"],
  params: z.object({ id: z.number(), dir: z.string(), of: z.number() }),
  run: async (ctx) => {
    const srcDone = ctx.inputs.src.meta.status;
    Deno.writeTextFileSync(join(ctx.params.dir, String(ctx.params.id)), "");
    const end = Date.now() + 15000;
    while ([...Deno.readDirSync(ctx.params.dir)].length < ctx.params.of) {
      if (Date.now() > end) throw new Error("the others never started");
      await new Promise((r) => setTimeout(r, 10));
    }
    ctx.record("meetings", { id: ctx.params.id, input_status: srcDone });
  },
});
export default pipeline("meet", ({ sweep }) => {
  const src = source();
  for (const id of sweep("id", [1, 2, 3])) meet(src, { id, dir: ${
      JSON.stringify(rendezvous)
    }, of: 3 });
});
`,
  );
  const s = await runPipeline(file, inline(t.results, { jobs: 3 }));
  assert.equal(s.status, "ok", s.failures.map((f) => f.error?.message).join());
  const rows = await queryRows(t.results, "SELECT id, input_status FROM meetings ORDER BY id");
  assert.deepEqual(rows, [{ id: 1, input_status: "ok" }, { id: 2, input_status: "ok" }, {
    id: 3,
    input_status: "ok",
  }]);
});

Deno.test("an exclusive stage runs alone, never beside another stage", async () => {
  const t = tempProject();
  const file = t.write(
    "p.ts",
    `import { z } from "zod";
import { defineStage, pipeline } from "${ENGINE}";
import { source } from "${FIXTURE_STAGES}";
const work = (exclusive: boolean) =>
  defineStage({
    kind: exclusive ? "timed" : "busy",
    exclusive,
    inputs: ["src"],
    params: z.object({ id: z.number() }),
    run: async (ctx) => {
      const start = performance.timeOrigin + performance.now();
      await new Promise((r) => setTimeout(r, 60));
      ctx.record("spans", { id: ctx.params.id, solo: exclusive, t0: start, t1: performance.timeOrigin + performance.now() });
    },
  });
const busy = work(false), timed = work(true);
export default pipeline("solo", ({ sweep }) => {
  const src = source();
  for (const id of sweep("id", [1, 2, 3, 4])) busy(src, { id });
  for (const id of sweep("t", [10, 11])) timed(src, { id });
});
`,
  );
  const s = await runPipeline(file, inline(t.results, { jobs: 4 }));
  assert.equal(s.status, "ok", s.failures.map((f) => f.error?.message).join());
  const spans = await queryRows(
    t.results,
    "SELECT id, solo, t0, t1 FROM spans ORDER BY t0",
  );
  assert.equal(spans.length, 6);
  for (const a of spans.filter((x) => x.solo)) {
    for (const b of spans) {
      if (a === b) continue;
      const overlap = Number(b.t0) < Number(a.t1) && Number(a.t0) < Number(b.t1);
      assert.ok(!overlap, `stage ${a.id} (exclusive) overlapped stage ${b.id}`);
    }
  }
  // the busy stages still ran side by side
  const busy = spans.filter((x) => !x.solo);
  assert.ok(
    busy.some((a) =>
      busy.some((b) => a !== b && Number(b.t0) < Number(a.t1) && Number(a.t0) < Number(b.t1))
    ),
  );
});

Deno.test("--force re-runs a kind and its descendants; --only runs a subset", async () => {
  const t = tempProject();
  const file = t.write("p.ts", basicPipeline("basic", [1, 2, 3]));
  const only = await runPipeline(file, inline(t.results, { only: ["scale[factor=1]"] }));
  assert.deepEqual(namesWith(only, "ok"), ["scale[factor=1]", "source"]);
  assert.equal(only.counts.excluded, 3);
  await runPipeline(file, inline(t.results));
  const forced = await runPipeline(file, inline(t.results, { force: ["scale"] }));
  assert.deepEqual(namesWith(forced, "ok"), [
    "combine",
    "scale[factor=1]",
    "scale[factor=2]",
    "scale[factor=3]",
  ]);
  assert.deepEqual(namesWith(forced, "cached"), ["source"]);
  // The replaced entries still load once (no duplicate metrics rows).
  const rows = await queryRows(t.results, "SELECT count(*) AS n FROM metrics");
  assert.deepEqual(rows, [{ n: 5 }]);
  // ... and the database describes the new entry, not the replaced one.
  const key = forced.outcomes.find((o) => o.node.name === "scale[factor=1]")!.node.key;
  const meta = new CacheStore(t.results).readMeta(key);
  const entry = await queryRows(
    t.results,
    `SELECT strftime(finished_at, '%Y-%m-%dT%H:%M:%S.%g') AS t FROM cache_entries WHERE key = '${key}'`,
  );
  assert.deepEqual(entry, [{ t: meta.finishedAt.slice(0, 23) }]);
});

Deno.test("identical nodes run once; records go to built-in and custom tables", async () => {
  const t = tempProject();
  const file = t.write(
    "p.ts",
    `import { pipeline } from "${ENGINE}";
import { combine, scale, source } from "${FIXTURE_STAGES}";
export default pipeline("dupes", () => {
  const a = source({ n: 2 }).named("a");
  const b = source({ n: 2 }).named("b");
  combine([scale(a, { factor: 1 }), scale(b, { factor: 5 })]);
});
`,
  );
  const s = await runPipeline(file, inline(t.results));
  assert.equal(s.counts.ok, 4);
  assert.deepEqual(s.plan.aliases.map((n) => [n.name, n.aliasOf!.name]), [["b", "a"]]);
  const parts = await queryRows(
    t.results,
    "SELECT part, sum, factor FROM part_sums ORDER BY factor",
  );
  assert.deepEqual(parts, [{ part: "scale#1", sum: 3, factor: 1 }, {
    part: "scale#2",
    sum: 15,
    factor: 5,
  }]);
  const evals = await queryRows(
    t.results,
    "SELECT dataset, metric, value, tokens FROM evals ORDER BY value",
  );
  assert.deepEqual(evals, [
    { dataset: "numbers", metric: "max", value: 2, tokens: 2 },
    { dataset: "numbers", metric: "max", value: 10, tokens: 2 },
  ]);
});

Deno.test("recording an unknown column of a built-in table fails the stage with a clear message", async () => {
  const t = tempProject();
  const file = t.write(
    "p.ts",
    `import { defineStage, pipeline } from "${ENGINE}";
const bad = defineStage({ kind: "bad", run: (ctx) => { ctx.record("metrics", { name: "x", value: 1, colour: "red" }); } });
export default pipeline("bad-record", () => { bad(); });
`,
  );
  const s = await runPipeline(file, inline(t.results));
  assert.match(
    s.failures[0].error!.message,
    /stage "bad": table metrics has no column "colour" \(columns: name, value, unit\)/,
  );
});

Deno.test("ctx carries params, coords, env, inputs, progress and logs", async () => {
  const t = tempProject();
  const seen: unknown[] = [];
  (globalThis as Record<string, unknown>).__labSeen = seen;
  const file = t.write(
    "p.ts",
    `import { z } from "zod";
import { defineStage, pipeline } from "${ENGINE}";
import { source } from "${FIXTURE_STAGES}";
const look = defineStage({
  kind: "look",
  inputs: ["src", "extra?"],
  params: z.object({ lr: z.number().default(0.1) }),
  device: "any",
  run: async (ctx) => {
    ctx.progress(1, 2, "half");
    ctx.log("hello");
    (globalThis as any).__labSeen.push({
      params: ctx.params, coords: ctx.coords, env: ctx.env, device: ctx.device, name: ctx.name,
      input: { kind: ctx.inputs.src.kind, output: ctx.inputs.src.output, rows: (await ctx.inputs.src.records()).length },
      extra: ctx.inputs.extra, outDirIsTemp: ctx.outDir.includes(".tmp-"),
    });
  },
});
export default pipeline("look", ({ sweep }) => { for (const k of sweep("k", ["a"])) look(source({ n: 2 })); });
`,
  );
  const s = await runPipeline(file, inline(t.results));
  assert.equal(s.status, "ok");
  assert.deepEqual(seen, [{
    params: { lr: 0.1 },
    coords: { k: "a" },
    env: {},
    device: "any",
    name: "look[k=a]",
    input: { kind: "source", output: { n: 2 }, rows: 1 },
    extra: undefined,
    outDirIsTemp: true,
  }]);
  const look = s.outcomes.find((o) => o.node.name === "look[k=a]")!.node;
  const log = Deno.readTextFileSync(join(new CacheStore(t.results).entryDir(look.key), "log.txt"));
  assert.match(log, /hello/);
});

Deno.test("a held results folder makes a second run fail with a clear message", async () => {
  const t = tempProject();
  const file = t.write("p.ts", basicPipeline("basic", [1]));
  const lock = await lockResults(t.results, { purpose: "lab run other.ts" });
  try {
    await assert.rejects(
      () => runPipeline(file, inline(t.results)),
      /results folder .* is in use by another lab process \(pid \d+ on .*: lab run other\.ts, since .*\)\. Wait for it to finish, or pass --wait/,
    );
    // With wait, it proceeds once the lock is released.
    setTimeout(() => lock.release(), 300);
    const s = await runPipeline(file, inline(t.results, { wait: true }));
    assert.equal(s.counts.ok, 3);
  } finally {
    lock.release();
  }
});
