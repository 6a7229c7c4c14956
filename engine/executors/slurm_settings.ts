// What a Slurm job of a stage asks for: settings from the command line, LAB_SLURM_* and the
// pipeline file, merged, checked, and turned into sbatch arguments per stage.
import { z } from "zod";
import { LabError } from "../errors.ts";
import { globMatcher } from "../plan_actions.ts";
import type { PlanNode } from "../plan_types.ts";

const stageResources = z.object({
  partition: z.string().min(1).optional(),
  time: z.string().min(1).optional(),
  cpus: z.number().int().positive().optional(),
  mem: z.string().min(1).optional(),
  gpus: z.number().int().nonnegative().optional(),
  exclusive: z.boolean().optional(),
  args: z.array(z.string()).optional(),
}).strict();

const slurmSettingsSchema = z.object({
  partition: z.string().min(1).optional(),
  account: z.string().min(1).optional(),
  qos: z.string().min(1).optional(),
  time: z.string().min(1).optional(),
  cpusPerStage: z.number().int().positive().optional(),
  mem: z.string().min(1).optional(),
  gpusPerStage: z.number().int().nonnegative().optional(),
  args: z.array(z.string()).optional(),
  maxJobs: z.number().int().positive().optional(),
  deno: z.string().min(1).optional(),
  stages: z.record(z.string(), stageResources).optional(),
}).strict();

/** Per-stage overrides in a pipeline's `slurm.stages`, keyed by a glob on stage name or kind. */
export type StageResources = z.infer<typeof stageResources>;

/** How the slurm executor submits jobs (`pipeline(name, build, { slurm })`, flags, LAB_SLURM_*). */
export type SlurmSettings = z.infer<typeof slurmSettingsSchema>;

/** Checks settings from `where` (a pipeline file, the command line); a LabError names the field. */
export function checkSlurmSettings(value: unknown, where: string): SlurmSettings {
  const parsed = slurmSettingsSchema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = ["slurm", ...issue.path.map(String)].join(".");
  throw new LabError(`${where}: ${field}: ${issue.message}`);
}

const ENV_FIELDS: [string, keyof SlurmSettings, "string" | "int" | "list"][] = [
  ["LAB_SLURM_PARTITION", "partition", "string"],
  ["LAB_SLURM_ACCOUNT", "account", "string"],
  ["LAB_SLURM_QOS", "qos", "string"],
  ["LAB_SLURM_TIME", "time", "string"],
  ["LAB_SLURM_CPUS_PER_STAGE", "cpusPerStage", "int"],
  ["LAB_SLURM_MEM", "mem", "string"],
  ["LAB_SLURM_GPUS_PER_STAGE", "gpusPerStage", "int"],
  ["LAB_SLURM_ARGS", "args", "list"],
  ["LAB_SLURM_MAX_JOBS", "maxJobs", "int"],
  ["LAB_SLURM_DENO", "deno", "string"],
];

/** Settings from LAB_SLURM_* variables (LAB_SLURM_ARGS is split on spaces). */
export function slurmSettingsFromEnv(env: (name: string) => string | undefined): SlurmSettings {
  const out: Record<string, unknown> = {};
  for (const [name, field, type] of ENV_FIELDS) {
    const v = env(name)?.trim();
    if (!v) continue;
    if (type === "int") {
      if (!/^\d+$/.test(v)) throw new LabError(`${name} must be a whole number, got "${v}"`);
      out[field] = Number(v);
    } else out[field] = type === "list" ? v.split(/\s+/) : v;
  }
  return checkSlurmSettings(out, "LAB_SLURM_* variables");
}

/**
 * Merges settings, later ones winning field by field: pass them as pipeline file, environment,
 * command line. `args` add up; `stages` overrides of the pipeline file are kept.
 */
export function mergeSlurmSettings(...layers: SlurmSettings[]): SlurmSettings {
  const out: SlurmSettings = {};
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer) as [keyof SlurmSettings, unknown][]) {
      if (v === undefined) continue;
      if (k === "args") out.args = [...(out.args ?? []), ...(v as string[])];
      else if (k === "stages") out.stages = { ...out.stages, ...(v as SlurmSettings["stages"]) };
      else (out as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}

/** The overrides that apply to `node`: every matching `stages` entry, later ones winning. */
export function stageOverrides(node: PlanNode, settings: SlurmSettings): StageResources {
  const out: StageResources = {};
  for (const [pattern, res] of Object.entries(settings.stages ?? {})) {
    if (!globMatcher(pattern)(node)) continue;
    Object.assign(out, { ...res, args: [...(out.args ?? []), ...(res.args ?? [])] });
  }
  return out;
}

/**
 * sbatch resource arguments for `node`: the pipeline-wide settings, the stage definition's
 * needs (exclusive → --exclusive, device "gpu" → --gres=gpu:N) and its per-stage overrides.
 */
export function stageJobArgs(node: PlanNode, settings: SlurmSettings): string[] {
  const o = stageOverrides(node, settings);
  const args: string[] = [];
  const opt = (flag: string, v: string | number | undefined) => {
    if (v !== undefined) args.push(`${flag}=${v}`);
  };
  opt("--partition", o.partition ?? settings.partition);
  opt("--account", settings.account);
  opt("--qos", settings.qos);
  opt("--time", o.time ?? settings.time);
  opt("--cpus-per-task", o.cpus ?? settings.cpusPerStage);
  opt("--mem", o.mem ?? settings.mem);
  const gpus = o.gpus ?? (node.stage.device === "gpu" ? settings.gpusPerStage ?? 1 : 0);
  if (gpus > 0) args.push(`--gres=gpu:${gpus}`);
  // Timing stages get a node to themselves so that no other job shares their cores.
  if (o.exclusive ?? node.stage.exclusive) args.push("--exclusive");
  args.push(...(settings.args ?? []), ...(o.args ?? []));
  return args;
}

/** Which setting to change for an sbatch refusal, judged from Slurm's message. */
export function settingHint(message: string): string {
  if (/contact slurm controller|connection refused|slurm_load/i.test(message)) {
    return "no Slurm controller answers: check `scontrol ping` and the cluster's slurm.conf";
  }
  const hints: [RegExp, string][] = [
    [/account/i, "--account (LAB_SLURM_ACCOUNT, slurm.account)"],
    [/partition/i, "--partition (LAB_SLURM_PARTITION, slurm.partition)"],
    [/qos/i, "--qos (LAB_SLURM_QOS, slurm.qos)"],
    [/time limit|time specification/i, "--time (LAB_SLURM_TIME, slurm.time)"],
    [/memory/i, "--mem (LAB_SLURM_MEM, slurm.mem)"],
    [/gres|gpu/i, "--gpus-per-stage (LAB_SLURM_GPUS_PER_STAGE, slurm.gpusPerStage)"],
    [/cpu|processor/i, "--cpus-per-stage (LAB_SLURM_CPUS_PER_STAGE, slurm.cpusPerStage)"],
  ];
  const hit = hints.find(([re]) => re.test(message));
  return hit ? `fix ${hit[1]}` : "check --slurm-arg and the other --executor slurm options";
}
