// The `lab run` flags of the slurm executor, and the executor they make together with
// LAB_SLURM_* and the pipeline file's `slurm` settings.
import type { Command } from "commander";
import { LabError } from "../../engine/errors.ts";
import type { LoadedPipeline } from "../../engine/plan.ts";
import { SlurmExecutor } from "../../engine/executors/slurm.ts";
import {
  checkSlurmSettings,
  mergeSlurmSettings,
  type SlurmSettings,
  slurmSettingsFromEnv,
} from "../../engine/executors/slurm_settings.ts";
import { positiveInt } from "./common.ts";

/** The flag of each setting, for a message when one is given without --executor slurm. */
const FLAGS: [keyof SlurmFlags, string][] = [
  ["partition", "--partition"],
  ["account", "--account"],
  ["qos", "--qos"],
  ["time", "--time"],
  ["cpusPerStage", "--cpus-per-stage"],
  ["mem", "--mem"],
  ["gpusPerStage", "--gpus-per-stage"],
  ["slurmArg", "--slurm-arg"],
];

/** What the slurm flags parse into. */
export interface SlurmFlags {
  partition?: string;
  account?: string;
  qos?: string;
  time?: string;
  cpusPerStage?: number;
  mem?: string;
  gpusPerStage?: number;
  slurmArg?: string[];
}

/** Adds the --executor slurm flags to a command. */
export function addSlurmOptions(cmd: Command): Command {
  return cmd
    .option("--partition <name>", "slurm: partition of the stage jobs ($LAB_SLURM_PARTITION)")
    .option("--account <name>", "slurm: account to charge ($LAB_SLURM_ACCOUNT)")
    .option("--qos <name>", "slurm: quality of service ($LAB_SLURM_QOS)")
    .option("--time <limit>", "slurm: time limit per stage job, e.g. 2:00:00 ($LAB_SLURM_TIME)")
    .option(
      "--cpus-per-stage <n>",
      "slurm: CPUs per stage job ($LAB_SLURM_CPUS_PER_STAGE)",
      positiveInt("--cpus-per-stage"),
    )
    .option("--mem <size>", "slurm: memory per stage job, e.g. 16G ($LAB_SLURM_MEM)")
    .option(
      "--gpus-per-stage <n>",
      "slurm: GPUs per GPU stage job (default 1; $LAB_SLURM_GPUS_PER_STAGE)",
      positiveInt("--gpus-per-stage"),
    )
    .option(
      "--slurm-arg <arg>",
      "slurm: any other sbatch argument, e.g. --slurm-arg=--constraint=a100 (repeatable)",
      (v: string, prev: string[] = []) => [...prev, v],
    );
}

/** The executor `--executor slurm` runs with: pipeline file < LAB_SLURM_* < flags. */
export function slurmExecutorFrom(flags: SlurmFlags, loaded: LoadedPipeline): SlurmExecutor {
  const fromFile = checkSlurmSettings(
    (loaded.pipeline.options as { slurm?: unknown }).slurm,
    loaded.displayFile,
  );
  const fromFlags: SlurmSettings = {
    partition: flags.partition,
    account: flags.account,
    qos: flags.qos,
    time: flags.time,
    cpusPerStage: flags.cpusPerStage,
    mem: flags.mem,
    gpusPerStage: flags.gpusPerStage,
    args: flags.slurmArg,
  };
  const env = slurmSettingsFromEnv((k) => Deno.env.get(k));
  return new SlurmExecutor(mergeSlurmSettings(fromFile, env, fromFlags));
}

/** Refuses slurm flags without --executor slurm: they would be silently ignored. */
export function refuseSlurmFlags(flags: SlurmFlags, executor: string): void {
  const given = FLAGS.filter(([k]) => flags[k] !== undefined).map(([, f]) => f);
  if (given.length) {
    throw new LabError(
      `${given.join(", ")} only apply with --executor slurm (this run uses "${executor}")`,
    );
  }
}
