// The slurm executor's settings, sbatch arguments per stage and job outcomes (no Slurm needed),
// and the errors of `lab run --executor slurm` where Slurm is missing or misused.
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { loadPipelineFile, type PlanNode, planPipeline } from "../engine/plan.ts";
import { CacheStore } from "../engine/cache.ts";
import { pinEnvironment } from "../engine/environment.ts";
import {
  checkSlurmSettings,
  mergeSlurmSettings,
  settingHint,
  slurmSettingsFromEnv,
  stageJobArgs,
} from "../engine/executors/slurm_settings.ts";
import { type JobFacts, jobOutcome } from "../engine/executors/slurm_outcome.ts";
import { basicPipeline, lab, tempProject } from "./engine_helpers.ts";

const node = (name: string, kind: string, device = "cpu", exclusive = false) =>
  ({ name, kind, stage: { device, exclusive } }) as unknown as PlanNode;

Deno.test("stage needs become sbatch arguments: exclusive, GPUs, per-stage overrides", () => {
  const settings = mergeSlurmSettings(
    checkSlurmSettings({
      partition: "cpu",
      time: "1:00:00",
      args: ["--constraint=avx512"],
      stages: { "profile*": { partition: "bench", time: "4:00:00", args: ["--nice=0"] } },
    }, "p.ts"),
    { mem: "8G", gpusPerStage: 2 },
  );
  assert.deepEqual(stageJobArgs(node("quantize[scheme=nf4]", "quantize"), settings), [
    "--partition=cpu",
    "--time=1:00:00",
    "--mem=8G",
    "--constraint=avx512",
  ]);
  assert.deepEqual(stageJobArgs(node("profile[scheme=nf4]", "profile", "cpu", true), settings), [
    "--partition=bench",
    "--time=4:00:00",
    "--mem=8G",
    "--exclusive",
    "--constraint=avx512",
    "--nice=0",
  ]);
  assert.deepEqual(stageJobArgs(node("train", "finetune", "gpu"), settings), [
    "--partition=cpu",
    "--time=1:00:00",
    "--mem=8G",
    "--gres=gpu:2",
    "--constraint=avx512",
  ]);
  // A per-stage override can take an exclusive stage's node back or give a stage no GPU.
  const off = { stages: { train: { gpus: 0 }, profile: { exclusive: false } } };
  assert.deepEqual(stageJobArgs(node("train", "finetune", "gpu"), off), []);
  assert.deepEqual(stageJobArgs(node("p", "profile", "cpu", true), off), []);
});

Deno.test("flags win over LAB_SLURM_* which win over the pipeline file; args add up", () => {
  const env = slurmSettingsFromEnv((k) =>
    ({ LAB_SLURM_PARTITION: "env", LAB_SLURM_CPUS_PER_STAGE: "4", LAB_SLURM_ARGS: "--a --b" })[
      k as "LAB_SLURM_PARTITION"
    ]
  );
  const merged = mergeSlurmSettings(
    { partition: "file", account: "file", args: ["--f"] },
    env,
    { partition: "flag", args: ["--c"] },
  );
  assert.deepEqual(merged, {
    partition: "flag",
    account: "file",
    cpusPerStage: 4,
    args: ["--f", "--a", "--b", "--c"],
  });
  assert.throws(
    () => slurmSettingsFromEnv((k) => (k === "LAB_SLURM_CPUS_PER_STAGE" ? "four" : undefined)),
    /LAB_SLURM_CPUS_PER_STAGE must be a whole number, got "four"/,
  );
  assert.throws(
    () => checkSlurmSettings({ stages: { profile: { gpu: 1 } } }, "pipelines/x.ts"),
    /^LabError: pipelines\/x.ts: slurm.stages.profile: .*"gpu"/,
  );
});

const facts = (over: Partial<JobFacts>): JobFacts => ({
  jobId: "42",
  end: { state: "COMPLETED", reason: "None", exitCode: "0:0", restarts: 0, nodes: "n1" },
  result: { status: "ok", wallS: 1.5 },
  entryVisible: true,
  cancelledByUs: false,
  outputFile: "/r/slurm/k.42.out",
  stderrTail: "",
  wallS: 3,
  limits: { mem: "4G", time: "0:10:00" },
  ...over,
});
const end = (state: string, reason = "None", exitCode = "0:0") => ({
  state,
  reason,
  exitCode,
  restarts: 0,
  nodes: "n1",
});

Deno.test("a job's Slurm state becomes a result that says what happened and what to change", () => {
  assert.deepEqual(jobOutcome(facts({})), { status: "ok", wallS: 1.5 });
  const oom = jobOutcome(facts({ end: end("OUT_OF_MEMORY", "None", "0:125"), result: undefined }));
  assert.equal(oom.status, "failed");
  assert.match(
    oom.error!.message,
    /^Slurm job 42 OUT_OF_MEMORY on n1, exit code 0:125: .*--mem=4G.*raise --mem/,
  );
  const timeout = jobOutcome(facts({ end: end("TIMEOUT", "TimeLimit"), result: undefined }));
  assert.match(timeout.error!.message, /^Slurm job 42 TIMEOUT .*reason TimeLimit: .*raise --time/);
  for (const state of ["NODE_FAIL", "PREEMPTED", "CANCELLED"]) {
    const r = jobOutcome(facts({ end: end(state), result: undefined, stderrTail: "boom" }));
    assert.match(r.error!.message, new RegExp(`^Slurm job 42 ${state} on n1`));
    assert.match(r.error!.message, /stderr ends:\nboom\njob output: \/r\/slurm\/k.42.out$/);
  }
  // Slurm's refusals name the option to fix.
  assert.match(
    settingHint("Invalid account or account/partition combination specified"),
    /--account/,
  );
  assert.match(
    settingHint("Unable to contact slurm controller (connect failure)"),
    /scontrol ping/,
  );
  // Cancelled by this run (Ctrl-C): interrupted, not failed; unless it had finished by then.
  assert.equal(
    jobOutcome(facts({ end: end("CANCELLED"), cancelledByUs: true, result: undefined })).status,
    "interrupted",
  );
  assert.equal(
    jobOutcome(facts({ end: end("COMPLETED"), cancelledByUs: true })).status,
    "ok",
  );
  // Finished, but the entry is not visible here: the results folder is not shared.
  const unshared = jobOutcome(facts({ entryVisible: false }));
  assert.equal(unshared.status, "failed");
  assert.match(
    unshared.error!.message,
    /never appeared on the coordinator's side.*must be on a file system that .* share/,
  );
});

Deno.test("lab run --executor slurm without Slurm installed says what to install", async () => {
  const p = tempProject();
  const file = p.write("p.ts", basicPipeline("no-slurm", [1]));
  // Only Deno's own folder on PATH: no sbatch.
  const r = await lab(["run", file, "--results", p.results, "--executor", "slurm"], {
    env: { PATH: dirname(Deno.execPath()) },
  });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(
    r.stderr,
    /^error: the slurm executor needs Slurm's "sbatch" on PATH: .*slurm_local\.sh/,
  );
  const local = await lab(["run", file, "--results", p.results, "--partition", "gpu"]);
  assert.equal(local.code, 2);
  assert.match(local.stderr, /--partition only apply with --executor slurm/);
});

Deno.test("a worker on another machine finds its stage by the coordinator's key environment", async () => {
  const p = tempProject();
  const file = p.write("p.ts", basicPipeline("pinned", [1]));
  const coordinatorEnv = { cpu: { cpu: "the login node's CPU", cores: 64 } };
  pinEnvironment(coordinatorEnv);
  let key: string;
  try {
    const plan = await planPipeline(await loadPipelineFile(file), { resultsDir: p.results });
    key = plan.nodes.find((n) => n.kind === "source")!.key;
  } finally {
    pinEnvironment({});
  }
  const args = ["run-node", "--pipeline", file, "--key", key, "--results", p.results];
  // Without the coordinator's environment, this machine's gives another key.
  const lost = await lab(args);
  assert.equal(lost.code, 1);
  assert.match(lost.stdout, /no stage with key [0-9a-f]+ in .*plans it differently/);
  const found = await lab(args, { env: { LAB_KEY_ENV: JSON.stringify(coordinatorEnv) } });
  assert.equal(found.code, 0, found.stdout + found.stderr);
  assert.match(found.stdout, /this node's environment \{\} differs from the coordinator's/);
  assert.equal(new CacheStore(p.results).readMeta(key).key, key);
});
