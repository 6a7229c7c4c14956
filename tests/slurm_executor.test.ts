// The slurm executor against a real Slurm controller (tasks/slurm_local.sh starts a one-node
// cluster; CI runs it). Skipped, with the reason printed, only where no controller answers.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline } from "../engine/mod.ts";
import { controllerAnswers } from "../engine/executors/slurm_commands.ts";
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

const slurmUp = await controllerAnswers();
if (!slurmUp) {
  console.log(
    "slurm_executor tests skipped: no Slurm controller answers (`scontrol ping`); " +
      "start one with `sudo tasks/slurm_local.sh`",
  );
}
/** Coordinators a test started, and their results folders: cleaned up even when it fails. */
const started: { child: Deno.ChildProcess; results: string }[] = [];
const slurmTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name,
    ignore: !slurmUp,
    fn: async () => {
      try {
        await fn();
      } finally {
        for (const { child, results } of started.splice(0)) {
          try {
            child.kill("SIGKILL");
          } catch { /* already ended */ }
          await child.output().catch(() => {});
          const ids = (await liveJobs(results)).map((j) => j.id);
          if (ids.length) await new Deno.Command("scancel", { args: ids }).output();
        }
      }
    },
  });

/** Fast polling for tests; the default (1 s) is kinder to a busy controller. */
const ENV = { LAB_SLURM_POLL_MS: "200" };

/** This results folder's jobs that squeue lists as pending or running. */
async function liveJobs(results: string): Promise<{ id: string; state: string; name: string }[]> {
  const out = await new Deno.Command("squeue", {
    args: ["--me", "-h", "-o", "%i|%T|%j|%k"],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean)
    .map((l) => l.split("|"))
    .filter(([, , , comment]) => comment?.endsWith(`@${results}`))
    .map(([id, state, name]) => ({ id, state, name }));
}

/** Starts `lab run FILE --executor slurm` in the background. */
function startCoordinator(file: string, results: string): Deno.ChildProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: labCommandArgs(["run", file, "--results", results, "--executor", "slurm"]),
    cwd: ROOT,
    env: { NO_COLOR: "1", ...ENV },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  started.push({ child, results });
  return child;
}

/** Waits (polling squeue) until a job of stage `name` runs; returns its id. */
async function runningJob(results: string, name: string): Promise<string> {
  let id = "";
  const poll = async () => {
    const job = (await liveJobs(results)).find((j) => j.name === `lab:${name}`);
    if (job?.state === "RUNNING") id = job.id;
  };
  for (let i = 0; i < 600 && !id; i++) {
    await poll();
    if (!id) await new Promise((r) => setTimeout(r, 100));
  }
  if (!id) throw new Error(`no running Slurm job for stage ${name} after 60 s`);
  return id;
}

/** Time limit of each stage's job (by stage key), from its output file name and scontrol. */
async function timeLimits(results: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of Deno.readDirSync(join(results, "slurm"))) {
    const [key, jobId, ext] = e.name.split(".");
    if (ext !== "out") continue;
    const shown = await new Deno.Command("scontrol", {
      args: ["show", "job", "-o", jobId],
      stdout: "piped",
    }).output();
    out.set(key, new TextDecoder().decode(shown.stdout).match(/TimeLimit=(\S+)/)?.[1] ?? "");
  }
  return out;
}

const ROWS_SQL = [
  "SELECT key, name, value FROM metrics ORDER BY key, name",
  "SELECT key, dataset, metric, value, tokens FROM evals ORDER BY key",
  "SELECT key, part, sum, factor FROM part_sums ORDER BY key, part",
];

slurmTest("a pipeline run as Slurm jobs gives the same rows as the local executor", async () => {
  const local = tempProject();
  const viaSlurm = tempProject();
  const text = basicPipeline("same-rows", [1, 2, 3]);
  const s = await runPipeline(local.write("p.ts", text), { resultsDir: local.results });
  assert.equal(s.status, "ok");
  const r = await lab([
    "run",
    viaSlurm.write("p.ts", text),
    "--results",
    viaSlurm.results,
    "--executor",
    "slurm",
    "--time",
    "7",
    "--cpus-per-stage",
    "1",
    "--slurm-arg=--nice=5",
  ], { env: ENV });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /\[slurm, \d+ jobs\]/);
  for (const sql of ROWS_SQL) {
    const want = await queryRows(local.results, sql);
    assert.ok(want.length > 0, sql);
    assert.deepEqual(await queryRows(viaSlurm.results, sql), want, sql);
  }
  // One job per stage, each with its output file on the shared results folder.
  const outs = [...Deno.readDirSync(join(viaSlurm.results, "slurm"))]
    .filter((e) => e.name.endsWith(".out"));
  assert.equal(outs.length, 5);
  // The flags reached sbatch.
  const job = await new Deno.Command("scontrol", {
    args: ["show", "job", "-o", outs[0].name.split(".")[1]],
    stdout: "piped",
  }).output();
  const shown = new TextDecoder().decode(job.stdout);
  assert.match(shown, /TimeLimit=00:07:00/);
  assert.match(shown, /Nice=5/);
  assert.match(shown, /NumCPUs=1 /);
});

slurmTest(
  "a failing stage is recorded with its Slurm state; only its descendants are skipped",
  async () => {
    const p = tempProject();
    const file = p.write(
      "p.ts",
      `import { defineStage, pipeline } from "${ENGINE}";
import { combine, scale, source } from "${FIXTURE_STAGES}";
// A stage whose process dies (as a native crash would): no result line, exit code 3.
const crash = defineStage({ kind: "crash", inputs: ["src"], run: () => Deno.exit(3) });
export default pipeline("fails", () => {
  const src = source({ n: 4 });
  const broken = crash(src);
  combine([scale(broken, { factor: 5 }).named("after_crash")]);
  scale(src, { factor: 2, fail: true }).named("fails");
  scale(src, { factor: 3 }).named("fine");
}, { slurm: { time: "8", stages: { fine: { time: "9" } } } });
`,
    );
    const r = await lab(["run", file, "--results", p.results, "--executor", "slurm"], { env: ENV });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const rows = await queryRows(p.results, "SELECT name, status, error FROM stages ORDER BY name");
    const by = Object.fromEntries(rows.map((x) => [x.name, x]));
    assert.equal(by["crash"].status, "failed");
    assert.match(String(by["crash"].error), /^Slurm job \d+ FAILED on \S+, exit code 3:0/);
    assert.equal(by["fails"].status, "failed");
    assert.match(String(by["fails"].error), /^Slurm job \d+ FAILED.*: factor 2 was asked to fail/);
    assert.equal(by["after_crash"].status, "skipped");
    assert.equal(by["combine"].status, "skipped");
    assert.equal(by["source"].status, "ok");
    assert.equal(by["fine"].status, "ok");
    assert.equal(rows.length, 6);
    // The pipeline file's slurm settings, with the per-stage override, reached the jobs.
    const limits = await timeLimits(p.results);
    const keys = await queryRows(p.results, "SELECT name, key FROM stages");
    const keyOf = Object.fromEntries(keys.map((x) => [x.name, String(x.key)]));
    assert.equal(limits.get(keyOf["fine"]), "00:09:00");
    assert.equal(limits.get(keyOf["source"]), "00:08:00");
  },
);

/** A pipeline whose "wait" stage runs until `flag` exists, beside a quick one; both feed "combine". */
function waitingPipeline(p: ReturnType<typeof tempProject>, flag: string): string {
  return p.write(
    "p.ts",
    `import { pipeline } from "${ENGINE}";
import { combine, scale, source, wait } from "${FIXTURE_STAGES}";
export default pipeline("waits", () => {
  const src = source({ n: 4 });
  const slow = wait(src, { file: ${JSON.stringify(flag)} });
  combine([slow, scale(src, { factor: 3 }).named("quick")]);
});
`,
  );
}

/** Stages that ran (not from the cache) in the newest run, by name. */
async function ranInLastRun(results: string): Promise<string[]> {
  const rows = await queryRows(
    results,
    `SELECT name FROM stages WHERE NOT cached AND status = 'ok' AND run_id =
       (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1) ORDER BY name`,
  );
  return rows.map((r) => String(r.name));
}

slurmTest(
  "a job cancelled with scancel is recorded as cancelled; the next run re-runs only it",
  async () => {
    const p = tempProject();
    const flag = join(p.dir, "go");
    const file = waitingPipeline(p, flag);
    const coordinator = startCoordinator(file, p.results);
    const jobId = await runningJob(p.results, "wait");
    await new Deno.Command("scancel", { args: [jobId] }).output();
    const out = await coordinator.output();
    assert.equal(out.code, 1, new TextDecoder().decode(out.stdout));
    const rows = await queryRows(p.results, "SELECT name, status, error FROM stages");
    const by = Object.fromEntries(rows.map((x) => [x.name, x]));
    assert.equal(by["wait"].status, "failed");
    assert.match(String(by["wait"].error), new RegExp(`^Slurm job ${jobId} CANCELLED`));
    assert.equal(by["combine"].status, "skipped");
    assert.equal(by["quick"].status, "ok");

    Deno.writeTextFileSync(flag, "");
    const again = await lab(["run", file, "--results", p.results, "--executor", "slurm"], {
      env: ENV,
    });
    assert.equal(again.code, 0, again.stdout + again.stderr);
    // The cancelled stage and the one it blocked; source and quick come from the cache.
    assert.deepEqual(await ranInLastRun(p.results), ["combine", "wait"]);
  },
);

slurmTest("SIGINT to the coordinator cancels its jobs: none is left in squeue", async () => {
  const p = tempProject();
  const file = waitingPipeline(p, join(p.dir, "never"));
  const coordinator = startCoordinator(file, p.results);
  await runningJob(p.results, "wait");
  coordinator.kill("SIGINT");
  const out = await coordinator.output();
  assert.equal(out.code, 130, new TextDecoder().decode(out.stdout));
  assert.deepEqual(await liveJobs(p.results), []);
  const runs = await queryRows(p.results, "SELECT status FROM runs");
  assert.deepEqual(runs.map((r) => r.status), ["interrupted"]);
});

slurmTest(
  "a new coordinator does not resubmit a stage whose job an earlier one left running",
  async () => {
    const p = tempProject();
    const flag = join(p.dir, "go");
    const file = waitingPipeline(p, flag);
    const first = startCoordinator(file, p.results);
    const jobId = await runningJob(p.results, "wait");
    first.kill("SIGKILL"); // no chance to cancel: its job goes on
    await first.output();
    const second = startCoordinator(file, p.results);
    await until(
      () => {
        try {
          return Deno.readTextFileSync(join(p.results, ".lock")).includes(`"pid"`);
        } catch {
          return false;
        }
      },
      30_000,
      "the second coordinator to take the lock",
    );
    Deno.writeTextFileSync(flag, "");
    const out = await second.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stdout));
    const waitOutputs = [...Deno.readDirSync(join(p.results, "slurm"))]
      .filter((e) => e.name.endsWith(".out"))
      .map((e) => e.name.split(".")[1]);
    assert.equal(waitOutputs.filter((id) => id === jobId).length, 1);
    // Four stages, four jobs: the wait stage was not submitted twice.
    assert.equal(waitOutputs.length, 4);
  },
);

slurmTest("an unknown partition is refused before anything runs, naming the option", async () => {
  const p = tempProject();
  const file = p.write("p.ts", basicPipeline("bad-partition", [1]));
  const r = await lab(
    ["run", file, "--results", p.results, "--executor", "slurm", "--partition", "nosuch"],
    { env: ENV },
  );
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(
    r.stderr,
    /^error: --executor slurm: sbatch refused a test job \(--partition=nosuch\)/,
  );
  assert.match(r.stderr, /invalid partition specified: nosuch.*fix --partition/);
});

/** True when this machine lets a process have a mount namespace of its own. */
const privateMounts = new Deno.Command("unshare", { args: ["-m", "true"], stderr: "null" })
  .outputSync().success;
if (slurmUp && !privateMounts) {
  console.log("unshared results folder test skipped: `unshare -m` is not allowed here");
}

Deno.test({
  name: "a job whose cache entry never shows on the coordinator's side is an error that says why",
  ignore: !slurmUp || !privateMounts,
  fn: async () => {
    const p = tempProject();
    const file = p.write(
      "p.ts",
      `import { pipeline } from "${ENGINE}";
import { source } from "${FIXTURE_STAGES}";
export default pipeline("unshared", () => { source({ n: 2 }); });
`,
    );
    // The job's Deno sees a private, empty results/cache: as on a node whose results folder is
    // a local disk rather than the shared file system.
    const cache = join(p.results, "cache");
    const wrapper = p.write(
      "private_cache_deno.sh",
      `#!/bin/sh
mkdir -p '${cache}'
exec unshare -m sh -c 'mount -t tmpfs lab-private "$0" && exec "$@"' '${cache}' '${Deno.execPath()}' "$@"
`,
    );
    Deno.chmodSync(wrapper, 0o755);
    const r = await lab(["run", file, "--results", p.results, "--executor", "slurm"], {
      env: { ...ENV, LAB_SLURM_DENO: wrapper, LAB_SLURM_ENTRY_WAIT_S: "1" },
    });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /Slurm job \d+ COMPLETED on \S+, but its cache entry never appeared on the coordinator's side/,
    );
  },
});

/** Runs scontrol with `args` (retrying while the job is between states); true when it took. */
async function scontrol(args: string[]): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if ((await new Deno.Command("scontrol", { args, stderr: "null" }).output()).success) {
      return true;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

slurmTest("a requeued job is followed to its end and its stage counted once", async () => {
  const p = tempProject();
  const flag = join(p.dir, "go");
  const file = waitingPipeline(p, flag);
  const coordinator = startCoordinator(file, p.results);
  const jobId = await runningJob(p.results, "wait");
  assert.ok(await scontrol(["requeue", jobId]));
  // Slurm holds a requeued job back for a while (BeginTime): once it is pending again, let it
  // start now, until it runs its second attempt.
  const jobText = () =>
    new TextDecoder().decode(
      new Deno.Command("scontrol", { args: ["show", "job", "-o", jobId], stdout: "piped" })
        .outputSync().stdout,
    );
  await until(
    () => {
      const text = jobText();
      if (/JobState=PENDING/.test(text)) {
        new Deno.Command("scontrol", { args: ["update", `jobid=${jobId}`, "StartTime=now"] })
          .outputSync();
      }
      return /JobState=RUNNING/.test(text) && /Restarts=1/.test(text);
    },
    60_000,
    "the requeued job to run again",
  );
  Deno.writeTextFileSync(flag, "");
  const out = await coordinator.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stdout));
  const rows = await queryRows(p.results, "SELECT name, status FROM stages WHERE name = 'wait'");
  assert.deepEqual(rows, [{ name: "wait", status: "ok" }]);
  const metrics = await queryRows(
    p.results,
    "SELECT count(*)::INT AS n FROM metrics WHERE name = 'waited'",
  );
  assert.deepEqual(metrics, [{ n: 1 }]);
  // Both attempts wrote to the same output file: one job, one stage.
  const outs = [...Deno.readDirSync(join(p.results, "slurm"))].map((e) => e.name)
    .filter((n) => n.endsWith(`.${jobId}.out`));
  assert.equal(outs.length, 1);
  assert.match(
    Deno.readTextFileSync(join(p.results, "slurm", outs[0].replace(/out$/, "err"))),
    /REQUEUE/,
  );
});
