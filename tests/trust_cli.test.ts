// Trustworthy CLI behaviour: user mistakes are one line and exit 2, lab query writes nothing,
// a damaged database says how to get it back, a killed run is marked interrupted.
import assert from "node:assert/strict";
import { join } from "node:path";
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

/** Asserts a user error: exit code 2, one `error: …` line on stderr matching `re`, no stack. */
function assertUserError(r: { code: number; stderr: string }, re: RegExp, what: string): void {
  assert.equal(r.code, 2, `${what}: exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `${what}: one line, got:\n${r.stderr}`);
  assert.match(lines[0], /^error: /, what);
  assert.match(lines[0], re, what);
}

Deno.test("bad flags and paths are one line and exit 2", async () => {
  const t = tempProject();
  const file = t.write("p.ts", basicPipeline("basic", [1]));
  for (const jobs of ["0", "abc", "-3", "2.5"]) {
    const r = await lab(["run", file, "--results", t.results, "--jobs", jobs]);
    assertUserError(r, new RegExp(`--jobs must be a positive integer, got ${jobs}`), jobs);
  }
  const aFile = t.write("not-a-folder", "x");
  assertUserError(
    await lab(["run", file, "--results", aFile]),
    /--results .*not-a-folder is a file, not a folder/,
    "--results <file>",
  );
  assertUserError(
    await lab(["query", "--results", aFile]),
    /--results .*not-a-folder is a file, not a folder/,
    "query --results <file>",
  );
  assert.equal((await lab(["run", file, "--results", t.results])).code, 0);
  assertUserError(
    await lab(["export", "--parquet", aFile, "--results", t.results]),
    /--parquet .*not-a-folder is a file, not a folder/,
    "export --parquet <file>",
  );
  assertUserError(await lab(["run"]), /missing required argument 'pipeline'/, "no pipeline");
  assertUserError(await lab(["frobnicate"]), /unknown command 'frobnicate'/, "unknown command");
});

Deno.test("lab query refuses COPY, EXPORT and writes, and writes nothing", async () => {
  const t = tempProject();
  const file = t.write("p.ts", basicPipeline("basic", [1, 2]));
  assert.equal((await lab(["run", file, "--results", t.results])).code, 0);
  const out = join(t.dir, "out.csv");
  const refused = [
    `COPY runs TO '${out}'`,
    `copy (select * from stages) to '${out}' (format csv)`,
    `/* hidden */ COPY runs TO '${out}'`,
    `EXPORT DATABASE '${join(t.dir, "dump")}'`,
    "CREATE TABLE x AS SELECT 1",
    "DELETE FROM runs",
    `ATTACH '${join(t.dir, "other.duckdb")}' AS o`,
    "SELECT 1; DROP TABLE runs",
  ];
  for (const sql of refused) {
    const r = await lab(["query", sql, "--results", t.results]);
    assertUserError(r, /refused|one statement at a time/, sql);
  }
  assert.deepEqual([...Deno.readDirSync(t.dir)].map((e) => e.name).sort(), ["p.ts", "results"]);
  assert.match(
    (await lab(["query", "COPY runs TO 'x.csv'", "--results", t.results])).stderr,
    /COPY changes the database or writes files.*lab query --csv/,
  );
  const ok = await lab([
    "query",
    "SELECT count(*) AS n FROM runs",
    "--results",
    t.results,
    "--json",
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(JSON.parse(ok.stdout), [{ n: 1 }]);
});

Deno.test("a damaged lab.duckdb says so and names lab db rebuild, which recovers it", async () => {
  const t = tempProject();
  const file = t.write("p.ts", basicPipeline("basic", [1, 2]));
  assert.equal((await lab(["run", file, "--results", t.results])).code, 0);
  const path = join(t.results, "lab.duckdb");
  for (const damage of ["truncate", "garbage"]) {
    if (damage === "truncate") Deno.truncateSync(path, 1000);
    else Deno.writeFileSync(path, new Uint8Array(8192).fill(0x5a));
    const q = await lab(["query", "SELECT * FROM stages", "--results", t.results]);
    assertUserError(
      q,
      /lab\.duckdb is damaged or unreadable .*lab db rebuild recreates it/,
      damage,
    );
    const run = await lab(["run", file, "--results", t.results]);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, /damaged or unreadable.*lab db rebuild/);
    const rb = await lab(["db", "rebuild", "--results", t.results]);
    assert.equal(rb.code, 0, rb.stderr);
    const rows = await queryRows(t.results, "SELECT count(*)::INT AS n FROM stages");
    assert.ok(Number(rows[0].n) >= 4, `stages rows after rebuild: ${rows[0].n}`);
  }
});

function spawnLab(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: labCommandArgs(args),
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

function waitPipeline(flag: string): string {
  return `import { pipeline } from "${ENGINE}";
import { combine, source, wait } from "${FIXTURE_STAGES}";
export default pipeline("waiting", () => {
  const w = wait(source(), { file: ${JSON.stringify(flag)} });
  combine([w]);
});
`;
}

/** Starts a run that blocks until `flag` exists, waits for its manifest, then SIGKILLs it. */
async function killedRun(file: string, results: string): Promise<string> {
  const runs = join(results, "runs");
  const before = new Set(listRuns(runs));
  const child = spawnLab(["run", file, "--results", results, "--executor", "inline"]);
  let id: string | undefined;
  try {
    await until(
      () => (id = listRuns(runs).find((n) => !before.has(n))) !== undefined,
      30_000,
      "the run's manifest",
    );
    await until(() => tempCount(results) > 0, 30_000, "the wait stage to start");
  } finally {
    child.kill("SIGKILL");
  }
  await child.status;
  return id!.replace(/\.json$/, "");
}

function listRuns(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".json"));
  } catch {
    return [];
  }
}

function tempCount(results: string): number {
  try {
    return [...Deno.readDirSync(join(results, "cache"))].filter((e) => e.name.startsWith("."))
      .length;
  } catch {
    return 0;
  }
}

Deno.test("a run whose coordinator was killed is marked interrupted by the next run and by rebuild", async () => {
  const t = tempProject();
  const flag = join(t.dir, "go");
  const file = t.write("w.ts", waitPipeline(flag));
  const first = await killedRun(file, t.results);
  const manifest = JSON.parse(Deno.readTextFileSync(join(t.results, "runs", `${first}.json`)));
  assert.equal(manifest.run.status, "running", "the killed run could not say how it ended");

  Deno.writeTextFileSync(flag, "");
  const next = await lab(["run", file, "--results", t.results]);
  assert.equal(next.code, 0, next.stdout + next.stderr);
  const status = async () =>
    Object.fromEntries(
      (await queryRows(t.results, "SELECT run_id, status FROM runs")).map((
        r,
      ) => [r.run_id, r.status]),
    );
  const after = await status();
  assert.equal(after[first], "interrupted");
  assert.equal(Object.values(after).filter((s) => s === "ok").length, 1);

  const other = t.write("w2.ts", waitPipeline(join(t.dir, "never")));
  const second = await killedRun(other, t.results);
  const rb = await lab(["db", "rebuild", "--results", t.results]);
  assert.equal(rb.code, 0, rb.stderr);
  const rebuilt = await status();
  assert.equal(rebuilt[first], "interrupted");
  assert.equal(rebuilt[second], "interrupted");
  assert.equal(Object.values(rebuilt).filter((s) => s === "running").length, 0);
  const row = await queryRows(
    t.results,
    `SELECT finished_at IS NOT NULL AS has_end FROM runs WHERE run_id = '${second}'`,
  );
  assert.equal(row[0].has_end, true, "the last sign of life stands in for the finish time");
});
