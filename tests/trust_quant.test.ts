// quant_tradeoff says when an int4 configuration is partly something else: modules whose width
// the group size does not divide fall back to a smaller group or int8, and are counted.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline, silentReporter } from "../engine/mod.ts";
import { queryRows } from "./engine_helpers.ts";

const ROOT_MOD = new URL("../mod.ts", import.meta.url).href;

Deno.test("quant_tradeoff counts int4 fallback modules, not deliberate keeps", async () => {
  const work = Deno.makeTempDirSync({ prefix: "lab-trust-quant-" });
  const file = join(work, "p.ts");
  // tiny llama: hidden 64 (q/k/v/o/gate/up take 64 inputs), intermediate 160 (down_proj):
  // group 128 divides neither, so g128 falls back to g64 (12 modules) and g32 (the 2
  // down_proj); g32 divides both. lm_head is kept in int8 on purpose everywhere.
  Deno.writeTextFileSync(
    file,
    `import { load, pipeline, quantize } from "${ROOT_MOD}";
export default pipeline("fallbacks", () => {
  const base = load({ tiny: { arch: "llama", preset: "tiny", seed: 1 } });
  const head = { lm_head: "int8" };
  quantize(base, { scheme: "int4-g128", keep: head });
  quantize(base, { scheme: "int4", keep: head });
  quantize(base, { scheme: "int4-g32", keep: head });
  quantize(base, { scheme: "int4-g128", keep: { ...head, down_proj: "int8", "model.layers.0.self_attn.*": "int4-g64" } });
  quantize(base, { scheme: "nf4", keep: { ...head, down_proj: "int4-g128" } });
});
`,
  );
  const results = join(work, "results");
  const r = await runPipeline(file, {
    resultsDir: results,
    executor: "inline",
    reporter: silentReporter,
  });
  assert.equal(r.status, "ok", r.failures.map((f) => f.error?.message).join("\n"));
  const rows = await queryRows(
    results,
    `SELECT stage, configuration, fallback_modules, fallback_schemes FROM quant_tradeoff ORDER BY stage`,
  );
  assert.deepEqual(rows, [
    {
      stage: "quantize#1",
      configuration: "int4-g128",
      fallback_modules: 14,
      fallback_schemes: "int4-g32, int4-g64",
    },
    {
      stage: "quantize#2",
      configuration: "int4",
      fallback_modules: 14,
      fallback_schemes: "int4-g32, int4-g64",
    },
    { stage: "quantize#3", configuration: "int4-g32", fallback_modules: 0, fallback_schemes: null },
    // down_proj kept in int8 and layer 0's attention in g64 on purpose: layer 0's gate and up
    // and layer 1's six fell back from g128.
    {
      stage: "quantize#4",
      configuration: "int4-g128",
      fallback_modules: 8,
      fallback_schemes: "int4-g64",
    },
    // nf4 never falls back; the 2 down_proj kept in int4-g128 fall back to g32.
    {
      stage: "quantize#5",
      configuration: "nf4",
      fallback_modules: 2,
      fallback_schemes: "int4-g32",
    },
  ]);
});
