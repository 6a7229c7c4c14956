// Every result row joins to what produced it: the lab's commit, Deno, libtorch, the kernels.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline, silentReporter } from "../engine/mod.ts";
import { labVersion } from "../engine/provenance.ts";
import { getNumThreads, KERNEL_ISAS, version } from "../ffi/mod.ts";
import { basicPipeline, lab, queryRows, tempProject } from "./engine_helpers.ts";

const ROOT_MOD = new URL("../mod.ts", import.meta.url).href;

Deno.test("environments: evals and metrics rows join to lab commit, Deno, libtorch and kernels", async () => {
  const t = tempProject();
  const file = t.write(
    "p.ts",
    `import { evaluate, load, pipeline } from "${ROOT_MOD}";
export default pipeline("prov", () => {
  evaluate(load({ tiny: { arch: "llama", preset: "tiny", seed: 4 } }),
    { dataset: ${
      JSON.stringify(join(Deno.cwd(), "data/eval.txt"))
    }, contextLength: 32, maxTokens: 64 });
});
`,
  );
  const r = await runPipeline(file, {
    resultsDir: t.results,
    executor: "inline",
    reporter: silentReporter,
  });
  assert.equal(r.status, "ok", r.failures.map((f) => f.error?.message).join("\n"));
  const v = labVersion();
  assert.match(v.commit ?? "", /^[0-9a-f]{40}$/, "the tests run in a git checkout");
  const rows = await queryRows(
    t.results,
    `SELECT DISTINCT v.lab_commit, v.lab_dirty, v.deno, v.libtorch, v.libtorch_build, v.kernel_isa,
            v.threads::INT AS threads, v.cpu_model IS NOT NULL AS cpu, v.device_name IS NOT NULL AS device
     FROM evals e JOIN provenance v USING (key)`,
  );
  assert.deepEqual(rows, [{
    lab_commit: v.commit,
    lab_dirty: v.dirty,
    deno: Deno.version.deno,
    libtorch: version(),
    libtorch_build: "cpu",
    kernel_isa: rows[0]?.kernel_isa,
    threads: getNumThreads(),
    cpu: true,
    device: true,
  }]);
  assert.ok((KERNEL_ISAS as readonly string[]).includes(String(rows[0].kernel_isa)));
  // The load stage and the evaluate stage share one environment row.
  const n = await queryRows(
    t.results,
    "SELECT count(DISTINCT env_id)::INT AS envs, count(*)::INT AS entries FROM cache_entries",
  );
  assert.deepEqual(n, [{ envs: 1, entries: 2 }]);
});

Deno.test("stages that never load libtorch record the lab's part only, and do not load it", async () => {
  const t = tempProject();
  const file = t.write("p.ts", basicPipeline("basic", [1]));
  // A fresh process: this test process has loaded libtorch (and registered torch providers).
  const r = await lab(["run", file, "--results", t.results]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const rows = await queryRows(
    t.results,
    "SELECT DISTINCT deno, lab_commit IS NOT NULL AS commit, libtorch FROM provenance",
  );
  assert.deepEqual(rows, [{ deno: Deno.version.deno, commit: true, libtorch: null }]);
});
