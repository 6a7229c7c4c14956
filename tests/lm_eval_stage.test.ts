// evaluate(model, { tasks }) through the runner: evals rows, results.json, and `lab export --lm-eval`.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline } from "../engine/mod.ts";
import { readResultsJson } from "../models/eval/lm_eval/mod.ts";
import { lab, queryRows, tempProject } from "./engine_helpers.ts";

const MOD = new URL("../mod.ts", import.meta.url).href;
const TASKS = new URL("../data/lm_eval/", import.meta.url).pathname + "*.yaml";
const t = tempProject();
const file = t.write(
  "lm_eval.ts",
  `import { evaluate, load, pipeline } from "${MOD}";
export default pipeline("lm-eval-small", () => {
  const base = load({ tiny: { arch: "llama", preset: "tiny", seed: 4 } });
  evaluate(base, { tasks: ${JSON.stringify(TASKS)}, limit: 4 }).named("suite");
});
`,
);

Deno.test("evaluate with lm-eval tasks: evals rows per task and metric, results.json, export", async () => {
  const s = await runPipeline(file, { resultsDir: t.results, executor: "inline", db: true });
  assert.equal(s.status, "ok", JSON.stringify(s.failures.map((f) => f.error?.message)));
  const rows = await queryRows(
    t.results,
    "select dataset, metric, value from evals order by dataset, metric",
  );
  assert.deepEqual(rows.map((r) => `${r.dataset}/${r.metric}`), [
    "story_answer/exact_match",
    "story_answer/exact_match_stderr",
    "story_choice/acc",
    "story_choice/acc_norm",
    "story_choice/acc_norm_stderr",
    "story_choice/acc_stderr",
  ]);
  const out = join(t.dir, "lm-eval-out");
  const r = await lab(["--results", t.results, "export", "--lm-eval", out]);
  assert.equal(r.code, 0, r.stderr);
  const written = join(out, "lm-eval-small", "suite", "results.json");
  const metrics = readResultsJson(written);
  const acc = rows.find((x) => x.dataset === "story_choice" && x.metric === "acc")!;
  assert.equal(
    metrics.find((m) => m.task === "story_choice" && m.metric === "acc")!.value,
    acc.value,
  );
  const json = JSON.parse(Deno.readTextFileSync(written));
  assert.deepEqual(json["n-samples"].story_choice, { original: 32, effective: 4 });
  assert.equal(json["n-shot"].story_choice, 1);
  // A second run is cached: nothing re-evaluated.
  const again = await runPipeline(file, { resultsDir: t.results, executor: "inline", db: true });
  assert.ok(
    again.outcomes.every((o) => o.status === "cached"),
    JSON.stringify(again.outcomes.map((o) => o.status)),
  );
  const none = await lab(["--results", t.results, "export"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--parquet DIR and\/or --lm-eval DIR/);
});

Deno.test({ name: "cleanup", fn: () => Deno.removeSync(t.dir, { recursive: true }) });
