import assert from "node:assert/strict";
import { join } from "node:path";
import { LabError, loadPipelineFile, PipelineError, planPipeline } from "../engine/mod.ts";
import { setEnvironmentProvider } from "../engine/environment.ts";
import { clearSourceCache } from "../engine/source_hash.ts";
import { ENGINE, FIXTURE_STAGES, FIXTURES, tempProject } from "./engine_helpers.ts";

async function plan(
  file: string,
  results: string,
  extra: { force?: string[]; only?: string[] } = {},
) {
  return await planPipeline(await loadPipelineFile(file), { resultsDir: results, ...extra });
}

async function planError(file: string, results: string): Promise<string> {
  try {
    await plan(file, results);
  } catch (e) {
    assert.ok(e instanceof LabError, `expected a LabError, got ${e}`);
    return e.message;
  }
  throw new Error("planning succeeded but should have failed");
}

Deno.test("sweep expands into named nodes with coordinates, inputs and distinct keys", async () => {
  const p = await plan(join(FIXTURES, "basic.ts"), tempProject().results);
  assert.equal(p.pipeline, "basic");
  assert.deepEqual(p.nodes.map((n) => n.name), [
    "source",
    "scale[factor=1]",
    "scale[factor=2]",
    "scale[factor=3]",
    "combine",
  ]);
  assert.deepEqual(p.nodes.map((n) => n.coords), [
    {},
    { factor: 1 },
    { factor: 2 },
    { factor: 3 },
    {},
  ]);
  assert.deepEqual(p.nodes[4].deps.map((d) => d.name), [
    "scale[factor=1]",
    "scale[factor=2]",
    "scale[factor=3]",
  ]);
  assert.equal(new Set(p.nodes.map((n) => n.key)).size, 5);
  assert.deepEqual(p.nodes[1].params, { factor: 1, fail: false });
  assert.deepEqual(p.nodes[0].params, { n: 4 });
  assert.ok(p.nodes.every((n) => n.action === "run" && !n.cached));
  assert.equal(p.nodes[1].inputKeys.src, p.nodes[0].key);
  assert.deepEqual(p.nodes[4].inputKeys.parts, p.nodes.slice(1, 4).map((n) => n.key));
});

Deno.test("grid, zip and seeded sample", async () => {
  const t = tempProject();
  const file = t.write(
    "grid.ts",
    `import { pipeline } from "${ENGINE}";
import { scale, source } from "${FIXTURE_STAGES}";
export default pipeline("grid", ({ grid, zip, sample }) => {
  for (const { n, factor } of grid({ n: [1, 2], factor: [1, 2, 3] })) scale(source({ n }), { factor });
  for (const { n, factor } of zip({ n: [5, 6], factor: [7, 8] })) scale(source({ n }), { factor }).named("z" + n);
  for (const { n, x } of sample({ n: [10, 11, 12, 13, 14, 15, 16, 17], x: ["a", "b"] }, { n: 3, seed: 7 })) {
    source({ n, label: x });
  }
});
`,
  );
  const p = await plan(file, t.results);
  const scales = p.nodes.filter((n) => n.kind === "scale" && !n.name.startsWith("z"));
  assert.deepEqual(scales.map((n) => [n.coords.n, n.coords.factor]), [
    [1, 1],
    [1, 2],
    [1, 3],
    [2, 1],
    [2, 2],
    [2, 3],
  ]);
  assert.equal(scales[0].name, "scale[n=1,factor=1]");
  const z = p.nodes.filter((n) => n.name.startsWith("z"));
  assert.deepEqual(z.map((n) => [n.name, n.coords]), [["z5", { n: 5, factor: 7 }], ["z6", {
    n: 6,
    factor: 8,
  }]]);
  const sampled = p.nodes.filter((n) => n.kind === "source" && Object.keys(n.coords).includes("x"));
  assert.equal(sampled.length, 3);
  // Same seed, same sample.
  const again = await plan(file, t.results);
  assert.deepEqual(
    again.nodes.filter((n) => "x" in n.coords).map((n) => n.coords),
    sampled.map((n) => n.coords),
  );
});

Deno.test("a wrong type names the pipeline file, the stage, the field and what was expected", async () => {
  const t = tempProject();
  const file = t.write(
    "bad_type.ts",
    `import { pipeline } from "${ENGINE}";
import { scale, source } from "${FIXTURE_STAGES}";
export default pipeline("bad", ({ sweep }) => {
  const s = source({ n: 2 });
  for (const factor of sweep("factor", [1, "two"])) scale(s, { factor });
});
`,
  );
  const msg = await planError(file, t.results);
  assert.match(
    msg,
    /bad_type\.ts: stage "scale\[factor=two\]" \(scale\): field "factor": .*expected number.*got "two"/,
  );
  assert.doesNotMatch(msg, /factor=1\]/);
  // Nothing ran: no cache folder was even created.
  assert.throws(() => Deno.statSync(join(t.results, "cache")));
});

Deno.test("an unknown field is reported with a suggestion", async () => {
  const t = tempProject();
  const file = t.write(
    "unknown.ts",
    `import { pipeline } from "${ENGINE}";
import { scale, source } from "${FIXTURE_STAGES}";
export default pipeline("unknown", () => { scale(source(), { factr: 2 }); });
`,
  );
  const msg = await planError(file, t.results);
  assert.match(
    msg,
    /unknown\.ts: stage "scale": unknown field "factr" \(did you mean "factor"\?\)/,
  );
  assert.match(msg, /stage "scale": field "factor": .*expected number/);
});

Deno.test("a missing input, an unknown ref and a cycle are plain errors", async () => {
  const t = tempProject();
  const missing = t.write(
    "missing.ts",
    `import { pipeline } from "${ENGINE}";
import { scale } from "${FIXTURE_STAGES}";
// deno-lint-ignore no-explicit-any
export default pipeline("missing", () => { (scale as any)({ factor: 2 }); });
`,
  );
  assert.match(
    await planError(missing, t.results),
    /missing\.ts: stage "scale": input "src" got \{"factor":2\}: expected the handle/,
  );

  const badRef = t.write(
    "bad_ref.ts",
    `import { pipeline } from "${ENGINE}";
import { scale } from "${FIXTURE_STAGES}";
export default pipeline("bad-ref", ({ ref }) => { scale(ref("nowhere"), { factor: 1 }); });
`,
  );
  assert.match(
    await planError(badRef, t.results),
    /bad_ref\.ts: stage "scale": input "src": ref\("nowhere"\) names no stage/,
  );

  const cycle = t.write(
    "cycle.ts",
    `import { pipeline } from "${ENGINE}";
import { scale } from "${FIXTURE_STAGES}";
export default pipeline("cycle", ({ ref }) => {
  const a = scale(ref("b"), { factor: 1 }).named("a");
  scale(a, { factor: 2 }).named("b");
});
`,
  );
  assert.match(
    await planError(cycle, t.results),
    /cycle\.ts: stages form a cycle: (a -> b -> a|b -> a -> b)/,
  );
});

Deno.test("unknown pipeline file and a file without a pipeline", async () => {
  const t = tempProject();
  await assert.rejects(
    () => loadPipelineFile(join(t.dir, "nope.ts")),
    /pipeline file not found: .*nope\.ts/,
  );
  const notPipeline = t.write("plain.ts", "export default 42;\n");
  await assert.rejects(
    () => loadPipelineFile(notPipeline),
    /plain\.ts has no default export made by pipeline/,
  );
  const broken = t.write("broken.ts", "throw new Error('kaput');\nexport default 1;\n");
  await assert.rejects(
    () => loadPipelineFile(broken),
    /pipeline file .*broken\.ts failed to load: kaput/,
  );
});

Deno.test("defaults are part of the key; explicit defaults give the same key", async () => {
  const t = tempProject();
  const file = t.write(
    "defaults.ts",
    `import { pipeline } from "${ENGINE}";
import { source } from "${FIXTURE_STAGES}";
export default pipeline("defaults", () => { source().named("implicit"); source({ n: 3 }).named("explicit"); });
`,
  );
  const p = await plan(file, t.results);
  assert.equal(p.nodes.length, 1, "identical nodes share one key");
  assert.equal(p.aliases.length, 1);
  assert.equal(p.aliases[0].aliasOf, p.nodes[0]);
});

Deno.test("the environment provider changes keys", async () => {
  const t = tempProject();
  const file = join(FIXTURES, "basic.ts");
  const before = (await plan(file, t.results)).nodes.map((n) => n.key);
  setEnvironmentProvider(() => ({ libtorch: "1.13.1", device: "cpu", dtype: "float32" }));
  try {
    const p = await plan(file, t.results);
    assert.deepEqual(p.nodes[0].env, { libtorch: "1.13.1", device: "cpu", dtype: "float32" });
    assert.ok(p.nodes.every((n, i) => n.key !== before[i]));
  } finally {
    setEnvironmentProvider(undefined);
  }
  assert.deepEqual((await plan(file, t.results)).nodes.map((n) => n.key), before);
});

Deno.test("fromYaml: the content is in the key, not the path; overrides merge", async () => {
  const t = tempProject();
  t.write("a.yaml", "lora:\n  n: 5\n  label: x\n");
  t.write("b.yaml", "lora:\n  n: 5\n  label: x\n");
  const mk = (name: string, yaml: string, override = "") =>
    t.write(
      name,
      `import { fromYaml, pipeline } from "${ENGINE}";
import { source } from "${FIXTURE_STAGES}";
export default pipeline("yaml", () => { source(fromYaml(${
        JSON.stringify(join(t.dir, yaml))
      }, "lora"${override})); });
`,
    );
  const a = await plan(mk("ya.ts", "a.yaml"), t.results);
  const b = await plan(mk("yb.ts", "b.yaml"), t.results);
  assert.deepEqual(a.nodes[0].params, { n: 5, label: "x" });
  assert.equal(a.nodes[0].key, b.nodes[0].key);
  const c = await plan(mk("yc.ts", "a.yaml", ", { n: 6 }"), t.results);
  assert.deepEqual(c.nodes[0].params, { n: 6, label: "x" });
  assert.notEqual(c.nodes[0].key, a.nodes[0].key);
  const missing = mk("yd.ts", "nope.yaml");
  await assert.rejects(
    () => plan(missing, t.results),
    /yd\.ts: building pipeline "yaml" failed: config file not found/,
  );
});

Deno.test("editing a stage module changes the keys of its stages and their descendants only", async () => {
  const t = tempProject();
  const stageModule = (kind: string, extra = "") =>
    `import { z } from "zod";
import { defineStage } from "${ENGINE}";
export const ${kind} = defineStage({
  kind: "${kind}",
  inputs: ["src?"],
  params: z.object({ v: z.number().default(1) }),
  run: (ctx) => { ctx.metric("v", ctx.params.v); },
});
${extra}`;
  t.write("stage_a.ts", stageModule("alpha"));
  t.write("stage_b.ts", stageModule("beta"));
  const file = t.write(
    "edit.ts",
    `import { pipeline } from "${ENGINE}";
import { alpha } from "./stage_a.ts";
import { beta } from "./stage_b.ts";
export default pipeline("edit", () => {
  const a = alpha();
  beta(a).named("b_after_a");
  beta().named("b_alone");
});
`,
  );
  const keys = async () =>
    Object.fromEntries((await plan(file, t.results)).nodes.map((n) => [n.name, n.key]));
  const k1 = await keys();
  t.write("stage_a.ts", stageModule("alpha", "// a comment changes the source\n"));
  clearSourceCache();
  const k2 = await keys();
  assert.notEqual(k2.alpha, k1.alpha);
  assert.notEqual(k2.b_after_a, k1.b_after_a, "descendant of an edited stage re-keys");
  assert.equal(k2.b_alone, k1.b_alone, "unrelated stage keeps its key");
  // A helper module imported by stage_b is part of stage_b's source.
  t.write("helper.ts", "export const h = 1;\n");
  t.write(
    "stage_b.ts",
    stageModule("beta", 'import { h } from "./helper.ts";\nexport const hh = h;\n'),
  );
  clearSourceCache();
  const k3 = await keys();
  t.write("helper.ts", "export const h = 2;\n");
  clearSourceCache();
  const k4 = await keys();
  assert.notEqual(k4.b_alone, k3.b_alone);
  assert.equal(k4.alpha, k3.alpha);
  // A helper that wraps defineStage (no literal kind) is an ordinary dependency.
  const wrapper = (v: number) =>
    `import { defineStage } from "${ENGINE}";
export const wrap = (kind: string) => defineStage({ kind, module: import.meta.url, run: () => ${v} });
`;
  t.write("wrapper.ts", wrapper(1));
  t.write(
    "stage_b.ts",
    stageModule("beta", 'import { wrap } from "./wrapper.ts";\nexport const w = wrap;\n'),
  );
  clearSourceCache();
  const k5 = await keys();
  t.write("wrapper.ts", wrapper(2));
  clearSourceCache();
  const k6 = await keys();
  assert.notEqual(k6.b_alone, k5.b_alone);
});

Deno.test("a stage defined in the pipeline file: editing a sweep value re-keys only that branch", async () => {
  const t = tempProject();
  const mk = (name: string, values: number[]) =>
    t.write(
      name,
      `import { z } from "zod";
import { defineStage, pipeline } from "${ENGINE}";
const triple = defineStage({
  kind: "triple",
  params: z.object({ x: z.number() }),
  run: (ctx) => { ctx.metric("y", ctx.params.x * 3); },
});
export default pipeline("inline-stage", ({ sweep }) => {
  for (const x of sweep("x", ${JSON.stringify(values)})) triple({ x });
});
`,
    );
  const a = await plan(mk("s1.ts", [1, 2, 3]), t.results);
  const b = await plan(mk("s2.ts", [1, 2, 4]), t.results);
  assert.deepEqual(a.nodes.slice(0, 2).map((n) => n.key), b.nodes.slice(0, 2).map((n) => n.key));
  assert.notEqual(a.nodes[2].key, b.nodes[2].key);
});

Deno.test("--only and --force select by name or kind glob", async () => {
  const file = join(FIXTURES, "basic.ts");
  const t = tempProject();
  const only = await plan(file, t.results, { only: ["*factor=2]"] });
  assert.deepEqual(only.nodes.filter((n) => n.action !== "excluded").map((n) => n.name), [
    "source",
    "scale[factor=2]",
  ]);
  const forced = await plan(file, t.results, { force: ["scale"] });
  assert.deepEqual(forced.nodes.filter((n) => n.forced).map((n) => n.name), [
    "scale[factor=1]",
    "scale[factor=2]",
    "scale[factor=3]",
    "combine",
  ]);
  await assert.rejects(
    () => plan(file, t.results, { force: ["nothing*"] }),
    /--force nothing\* matches no stage/,
  );
});

Deno.test("builders outside a pipeline and PipelineError shape", async () => {
  const { source } = await import("./fixtures/pipelines/stages.ts");
  assert.throws(() => source({ n: 1 }), /called outside a pipeline/);
  const e = new PipelineError(["a", "b"]);
  assert.match(e.message, /2 problems:\n {2}- a\n {2}- b/);
});
