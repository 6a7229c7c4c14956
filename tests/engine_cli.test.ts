import assert from "node:assert/strict";
import { join } from "node:path";
import { loadPipelineFile, planPipeline } from "../engine/mod.ts";
import { CacheStore } from "../engine/cache.ts";
import {
  basicPipeline,
  ENGINE,
  FIXTURE_STAGES,
  lab,
  labCommandArgs,
  queryRows,
  ROOT,
  tempProject,
  until,
} from "./engine_helpers.ts";

function spawnLab(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: labCommandArgs(args),
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function finish(
  child: Deno.ChildProcess,
): Promise<{ code: number; signal: string | null; stdout: string; stderr: string }> {
  const out = await child.output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

function waitPipeline(flag: string): string {
  return `import { pipeline } from "${ENGINE}";
import { combine, source, wait } from "${FIXTURE_STAGES}";
export default pipeline("waiting", () => {
  const s = source();
  const w = wait(s, { file: ${JSON.stringify(flag)} });
  combine([w]);
});
`;
}

async function keysOf(file: string, results: string): Promise<Record<string, string>> {
  const plan = await planPipeline(await loadPipelineFile(file), { resultsDir: results });
  return Object.fromEntries(plan.nodes.map((n) => [n.name, n.key]));
}

function temps(results: string): string[] {
  try {
    return [...Deno.readDirSync(join(results, "cache"))].map((e) => e.name).filter((n) =>
      n.startsWith(".")
    );
  } catch {
    return [];
  }
}

Deno.test("lab run with worker processes: runs, then caches; exit codes; failure summary", async () => {
  const t = tempProject();
  const file = t.write("p.ts", basicPipeline("basic", [1, 2, 3]));
  const first = await lab(["run", file, "--results", t.results]);
  assert.equal(first.code, 0, first.stderr + first.stdout);
  assert.match(
    first.stdout,
    /run basic \(.*p\.ts\): 5 stages, 0 cached, 5 to run \[local, \d+ jobs\]/,
  );
  assert.match(first.stdout, /done in .*: 5 ran, 0 cached/);
  const second = await lab(["run", file, "--results", t.results]);
  assert.match(second.stdout, /done in .*: 0 ran, 5 cached/);
  const plan = await lab(["plan", file, "--results", t.results]);
  assert.match(plan.stdout, /5 stages: 5 cached, 0 to run, 0 blocked/);

  const failing = t.write("f.ts", basicPipeline("basic", [1, 7], { fail: [7] }));
  const dry = await lab(["run", failing, "--dry-run", "--results", t.results]);
  assert.equal(dry.code, 0);
  assert.match(dry.stdout, /2 cached, 1 to run, 1 blocked/);
  assert.match(dry.stdout, /to-run\s+scale\[factor=7\]/);
  assert.match(dry.stdout, /blocked\s+combine/);
  const f = await lab(["run", failing, "--results", t.results]);
  assert.equal(f.code, 1);
  assert.match(f.stdout, /FAILED\s+scale\[factor=7\]: factor 7 was asked to fail/);
  assert.match(f.stdout, /finished with failures in .*: 0 ran, 2 cached, 1 failed, 1 skipped/);
  assert.match(
    f.stdout,
    /failed stages:\n {2}scale\[factor=7\] \(scale, key [0-9a-f]{12}\): factor 7 was asked to fail/,
  );
});

Deno.test("a stage that kills its worker fails alone", async () => {
  const t = tempProject();
  const file = t.write(
    "crash.ts",
    `import { defineStage, pipeline } from "${ENGINE}";
import { source } from "${FIXTURE_STAGES}";
const crash = defineStage({ kind: "crash", inputs: ["src"], run: () => { Deno.exit(3); } });
export default pipeline("crash", () => { const s = source(); crash(s); source({ n: 9 }); });
`,
  );
  const r = await lab(["run", file, "--results", t.results]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /FAILED\s+crash: worker process exited with code 3/);
  assert.match(r.stdout, /2 ran, 0 cached, 1 failed/);
});

Deno.test("user errors are plain messages, exit code 2, and nothing runs", async () => {
  const t = tempProject();
  const bad = t.write(
    "bad.ts",
    `import { pipeline } from "${ENGINE}";
import { scale, source } from "${FIXTURE_STAGES}";
export default pipeline("bad", () => { scale(source({ n: 2 }), { factor: "x", extra: 1 }); });
`,
  );
  const r = await lab(["run", bad, "--results", t.results]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error: 2 problems:/);
  assert.match(r.stderr, /bad\.ts: stage "scale": unknown field "extra"/);
  assert.match(r.stderr, /bad\.ts: stage "scale": field "factor": .*expected number.*got "x"/);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, "no stack trace for user errors");
  assert.deepEqual(new CacheStore(t.results).keys().size, 0);
  const missing = await lab(["run", join(t.dir, "missing.ts"), "--results", t.results]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /error: pipeline file not found: .*missing\.ts/);
  const badFlag = await lab(["run", bad, "--jobs", "0"]);
  assert.notEqual(badFlag.code, 0);
  assert.match(badFlag.stderr, /--jobs must be a positive integer/);
});

Deno.test("SIGINT mid-stage: no partial entry, lock refused meanwhile, next run resumes", async () => {
  const t = tempProject();
  const flag = join(t.dir, "go");
  const file = t.write("w.ts", waitPipeline(flag));
  const keys = await keysOf(file, t.results);
  const cache = new CacheStore(t.results);
  const child = spawnLab(["run", file, "--results", t.results]);
  try {
    await until(
      () => cache.has(keys.source) && temps(t.results).some((n) => n.includes(keys.wait)),
      30_000,
      "wait stage to start",
    );
    const second = await lab(["run", file, "--results", t.results]);
    assert.equal(second.code, 2);
    assert.match(
      second.stderr,
      /is in use by another lab process \(pid \d+ on .*: lab run .*w\.ts/,
    );
    child.kill("SIGINT");
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  const r = await finish(child);
  assert.equal(r.code, 130, r.stdout + r.stderr);
  assert.match(r.stdout, /interrupted/);
  assert.equal(cache.has(keys.wait), false);
  assert.equal(cache.has(keys.combine), false);
  assert.deepEqual(temps(t.results), []);
  const runs = await queryRows(t.results, "SELECT status FROM runs");
  assert.deepEqual(runs, [{ status: "interrupted" }]);
  Deno.writeTextFileSync(flag, "");
  const again = await lab(["run", file, "--results", t.results]);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /done in .*: 2 ran, 1 cached/);
});

Deno.test("SIGKILL mid-stage (worker and inline executors): next run resumes from what finished", async () => {
  for (const executor of ["local", "inline"]) {
    const t = tempProject();
    const flag = join(t.dir, "go");
    const file = t.write("w.ts", waitPipeline(flag));
    const keys = await keysOf(file, t.results);
    const cache = new CacheStore(t.results);
    const child = spawnLab(["run", file, "--results", t.results, "--executor", executor]);
    try {
      await until(
        () => cache.has(keys.source) && temps(t.results).some((n) => n.includes(keys.wait)),
        30_000,
        "wait stage to start",
      );
    } finally {
      child.kill("SIGKILL");
    }
    const r = await finish(child);
    assert.equal(r.signal, "SIGKILL");
    assert.equal(cache.has(keys.wait), false, executor);
    if (executor === "local") {
      // The orphaned worker notices that its coordinator is gone and cleans up.
      await until(() => temps(t.results).length === 0, 20_000, "worker to clean up");
    }
    Deno.writeTextFileSync(flag, "");
    const again = await lab(["run", file, "--results", t.results, "--executor", executor]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /done in .*: 2 ran, 1 cached/, executor);
    assert.deepEqual(temps(t.results), [], "leftover temporary folders are removed");
    assert.equal(cache.has(keys.combine), true);
  }
});

Deno.test("cache ls and gc", async () => {
  const t = tempProject();
  const pipelines = join(t.dir, "pipelines");
  Deno.mkdirSync(pipelines);
  const p1 = join(pipelines, "p.ts");
  Deno.writeTextFileSync(p1, basicPipeline("basic", [1, 2]));
  await lab(["run", p1, "--results", t.results, "--executor", "inline"]);
  const old = join(t.dir, "old.ts");
  Deno.writeTextFileSync(old, basicPipeline("basic", [5]));
  await lab(["run", old, "--results", t.results, "--executor", "inline"]);
  const ls = await lab(["cache", "ls", "--results", t.results]);
  assert.match(ls.stdout, /^6 entries, /m);
  assert.match(ls.stdout, /scale\[factor=5\]/);
  const dry = await lab([
    "cache",
    "gc",
    "--pipelines",
    pipelines,
    "--dry-run",
    "--results",
    t.results,
  ]);
  assert.match(dry.stdout, /would remove 2 entries .*; kept 4 referenced by 1 pipeline files/);
  const gc = await lab(["cache", "gc", "--pipelines", pipelines, "--results", t.results]);
  assert.equal(gc.code, 0, gc.stderr);
  assert.match(gc.stdout, /removed 2 entries/);
  assert.equal(new CacheStore(t.results).keys().size, 4);
  const rows = await queryRows(t.results, "SELECT count(*) AS n FROM cache_entries");
  assert.deepEqual(rows, [{ n: 4 }]);
  const aged = await lab([
    "cache",
    "gc",
    "--pipelines",
    pipelines,
    "--older-than",
    "0s",
    "--results",
    t.results,
  ]);
  assert.match(aged.stdout, /removed 4 entries/);
  const badAge = await lab(["cache", "gc", "--older-than", "soon", "--results", t.results]);
  assert.equal(badAge.code, 2);
  assert.match(badAge.stderr, /--older-than takes an age like 30m/);
});
