// The cache key covers what changes results, and `lab why` says which part changed: a param,
// an input, a source file, an npm package (from deno.lock) or a data file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadPipelineFile, planPipeline } from "../engine/mod.ts";
import { clearNpmCache, npmVersions } from "../engine/npm_versions.ts";
import { clearSourceCache } from "../engine/source_hash.ts";
import { hashFile, hashStats } from "../engine/file_hash.ts";
import { folderFingerprint } from "../stages/model_input.ts";
import { ENGINE, lab, ROOT, tempProject } from "./engine_helpers.ts";

const FILE_HASH = new URL("../engine/file_hash.ts", import.meta.url).href;

/** A project with a stage module (importing a helper and maybe yaml) and a pipeline over it. */
function project(opts: { n: number; data: string; helper: string }) {
  const t = tempProject();
  t.write("helper.ts", opts.helper);
  t.write("data.txt", opts.data);
  t.write(
    "stages.ts",
    `import { z } from "zod";
import { defineStage } from "${ENGINE}";
import { hashFile } from "${FILE_HASH}";
import { double } from "./helper.ts";
export const count = defineStage({
  kind: "count",
  params: z.object({ n: z.number() }),
  keyExtra: () => ({ data: hashFile(${JSON.stringify(join(t.dir, "data.txt"))}) }),
  run: (ctx) => { ctx.metric("n", double(ctx.params.n)); },
});
export const after = defineStage({
  kind: "after",
  inputs: ["src"],
  run: (ctx) => { ctx.metric("one", 1); },
});
`,
  );
  t.write(
    "yaml_stage.ts",
    `import { parse } from "yaml";
import { defineStage } from "${ENGINE}";
export const parsed = defineStage({ kind: "parsed", run: (ctx) => { ctx.metric("x", parse("x: 1").x); } });
`,
  );
  const file = t.write(
    "p.ts",
    `import { pipeline } from "${ENGINE}";
import { after, count } from "./stages.ts";
import { parsed } from "./yaml_stage.ts";
export default pipeline("why", () => { after(count({ n: ${opts.n} })); parsed(); });
`,
  );
  const setN = (n: number) =>
    Deno.writeTextFileSync(file, Deno.readTextFileSync(file).replace(/n: \d+/, `n: ${n}`));
  return { ...t, file, setN };
}

Deno.test("lab why names the changed param, input, source file and data file", async () => {
  const p = project({
    n: 4,
    data: "alpha",
    helper: "export const double = (x: number) => 2 * x;\n",
  });
  assert.equal((await lab(["run", p.file, "--results", p.results])).code, 0);
  const quiet = await lab(["why", p.file, "--results", p.results]);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.match(quiet.stdout, /every stage of why is cached: nothing would run/);

  p.setN(5);
  p.write("helper.ts", "export const double = (x: number) => x + x;\n");
  p.write("data.txt", "beta");
  const r = await lab(["why", p.file, "--json", "--results", p.results]);
  assert.equal(r.code, 0, r.stderr);
  const answers = Object.fromEntries(
    (JSON.parse(r.stdout) as { name: string; reasons: string[] }[]).map((a) => [a.name, a.reasons]),
  );
  assert.deepEqual(Object.keys(answers).sort(), ["after", "count"], "parsed stays cached");
  const count = answers.count;
  assert.ok(count.includes("param n: 4 → 5"), count.join("\n"));
  assert.ok(count.includes(`source file ${join(p.dir, "helper.ts")}: edited`), count.join("\n"));
  assert.ok(count.some((l) => /^file or data data: "[0-9a-f]{32}" → "[0-9a-f]{32}"$/.test(l)));
  assert.equal(count.length, 3, count.join("\n"));
  // `after` lives in the same module, which imports the helper: both reasons hold.
  assert.equal(answers.after.length, 2, answers.after.join("\n"));
  assert.match(
    answers.after[0],
    /^input src \(count\): its key changed .*ask lab why about count$/,
  );
  assert.equal(answers.after[1], `source file ${join(p.dir, "helper.ts")}: edited`);
  const text = await lab(["why", p.file, "count", "--results", p.results]);
  assert.match(text.stdout, /^count {2}[0-9a-f]{12}: would run; against [0-9a-f]{12} from /);
  assert.match(text.stdout, /\n {2}- param n: 4 → 5\n/);
});

Deno.test("a deno.lock change re-keys only stages whose modules reach that package", async () => {
  const p = project({ n: 1, data: "d", helper: "export const double = (x: number) => 2 * x;\n" });
  const keys = async () => {
    clearSourceCache();
    clearNpmCache();
    const plan = await planPipeline(await loadPipelineFile(p.file), { resultsDir: p.results });
    return Object.fromEntries(plan.nodes.map((n) => [n.name, n.key]));
  };
  const before = await keys();
  const lock = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.lock")));
  const old = lock.specifiers["npm:yaml@2.9.1"];
  assert.ok(old, "the project's lock pins yaml");
  // yaml 2.9.1 "upgraded" in place: same request, another locked version.
  lock.specifiers["npm:yaml@2.9.1"] = "2.9.2";
  lock.npm["yaml@2.9.2"] = { integrity: "sha512-planted" };
  const lockFile = p.write("deno.lock", JSON.stringify(lock));
  assert.equal(npmVersions(["yaml"]).yaml.split(" ")[0], "2.9.1");
  Deno.env.set("LAB_DENO_LOCK", lockFile);
  try {
    const after = await keys();
    assert.equal(npmVersions(["yaml"]).yaml.split(" ")[0], "2.9.2");
    assert.notEqual(after.parsed, before.parsed, "the yaml stage re-keys");
    assert.equal(after.count, before.count, "stages that do not import yaml keep their keys");
    assert.equal(after.after, before.after);
  } finally {
    Deno.env.delete("LAB_DENO_LOCK");
    clearNpmCache();
  }
  assert.equal((await lab(["run", p.file, "--results", p.results])).code, 0);
  const why = await lab(["why", p.file, "parsed", "--results", p.results], {
    env: { LAB_DENO_LOCK: lockFile },
  });
  assert.match(why.stdout, /npm package yaml: 2\.9\.1 → 2\.9\.2/);
});

Deno.test("checkpoint fingerprints hash every file's content, once per unchanged file", () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-fp-" });
  Deno.env.set("LAB_HASH_CACHE", join(dir, "memo.json"));
  try {
    const ckpt = join(dir, "ckpt");
    Deno.mkdirSync(ckpt);
    for (
      const f of [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
      ]
    ) {
      Deno.writeTextFileSync(join(ckpt, f), `${f} v1`);
    }
    const reads = hashStats.read;
    const a = folderFingerprint(ckpt);
    assert.equal(hashStats.read - reads, 3);
    assert.deepEqual(folderFingerprint(ckpt), a);
    assert.equal(hashStats.read - reads, 3, "unchanged files are not read again");
    // The second shard rewritten with the same size and the same mtime: content still counts
    // once the memo's identity (inode) differs; here a new inode via rename.
    const shard = join(ckpt, "model-00002-of-00002.safetensors");
    const st = Deno.statSync(shard);
    Deno.writeTextFileSync(shard + ".new", "model-00002-of-00002.safetensors v2");
    Deno.utimeSync(shard + ".new", st.atime!, st.mtime!);
    Deno.renameSync(shard + ".new", shard);
    const b = folderFingerprint(ckpt);
    assert.equal(b["config.json"], a["config.json"]);
    assert.equal(b["model-00001-of-00002.safetensors"], a["model-00001-of-00002.safetensors"]);
    assert.notEqual(b["model-00002-of-00002.safetensors"], a["model-00002-of-00002.safetensors"]);
    assert.match(hashFile(shard), /^[0-9a-f]{32}$/);
    // The memo is shared through the file (a worker process re-plans without re-reading).
    const memo = JSON.parse(Deno.readTextFileSync(join(dir, "memo.json")));
    assert.equal(memo[shard].hash, b["model-00002-of-00002.safetensors"]);
  } finally {
    Deno.env.delete("LAB_HASH_CACHE");
  }
});
