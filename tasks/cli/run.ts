// `lab run`: runs a pipeline with the chosen executor and prints its summary.
import type { Command } from "commander";
import { loadPipelineFile, planPipeline } from "../../engine/plan.ts";
import { lockResults } from "../../engine/lock.ts";
import { executePlan } from "../../engine/runner.ts";
import { defaultReporter } from "../../engine/progress.ts";
import { LabError } from "../../engine/errors.ts";
import { collect, positiveInt, resultsDir } from "./common.ts";
import { printPlan } from "./plan.ts";
import { printSummary } from "./summary.ts";
import { addSlurmOptions, refuseSlurmFlags, slurmExecutorFrom } from "./slurm_options.ts";

/** `lab run <pipeline.ts>` */
export function register(program: Command): void {
  const run = program
    .command("run")
    .description(
      "run a pipeline: every stage not in the cache, in dependency order; results go to DuckDB",
    )
    .argument("<pipeline>", "pipeline file (its default export is pipeline(name, build))")
    .option(
      "--force <pattern>",
      "re-run stages whose kind or name matches (glob; repeatable), and their descendants",
      collect,
    )
    .option(
      "--only <pattern>",
      "run only stages whose name or kind matches (glob; repeatable), and what they need",
      collect,
    )
    .option("--dry-run", "show the plan (cached / to-run / blocked) and run nothing")
    .option(
      "-j, --jobs <n>",
      "concurrent CPU stages (default: number of cores; with --executor slurm, jobs queued: 100)",
      positiveInt("--jobs"),
    )
    .option(
      "--gpu-jobs <n>",
      "concurrent GPU stages (default: number of GPUs)",
      positiveInt("--gpu-jobs"),
    )
    .option(
      "--executor <name>",
      "local (worker processes), slurm (a Slurm job per stage) or inline (this process)",
      "local",
    )
    .option(
      "--wait",
      "if another lab process holds the results folder, wait for it instead of failing",
    )
    .option("-q, --quiet", "print only the summary and failures");
  addSlurmOptions(run)
    .action(async (file: string, opts, cmd: Command) => {
      if (!["local", "slurm", "inline"].includes(opts.executor)) {
        throw new LabError(
          `--executor must be "local", "slurm" or "inline", got "${opts.executor}"`,
        );
      }
      if (opts.executor !== "slurm") refuseSlurmFlags(opts, opts.executor);
      const results = resultsDir(cmd);
      if (opts.dryRun) {
        const plan = await planPipeline(await loadPipelineFile(file), {
          resultsDir: results,
          force: opts.force,
          only: opts.only,
        });
        printPlan(plan);
        return;
      }
      const reporter = defaultReporter({ quiet: opts.quiet });
      const lock = await lockResults(results, {
        purpose: `lab run ${file}`,
        wait: opts.wait,
        onWait: (h) => console.log(`waiting for the results folder (${h})...`),
      });
      const ac = new AbortController();
      let interrupts = 0;
      const onSigint = () => {
        if (++interrupts > 1) Deno.exit(130);
        console.log(
          "\ninterrupting: waiting for running stages to stop (Ctrl-C again to quit now)",
        );
        ac.abort(new Error("interrupted"));
      };
      Deno.addSignalListener("SIGINT", onSigint);
      Deno.addSignalListener("SIGTERM", onSigint);
      try {
        const loaded = await loadPipelineFile(file);
        const plan = await planPipeline(loaded, {
          resultsDir: results,
          force: opts.force,
          only: opts.only,
        });
        const summary = await executePlan(plan, {
          resultsDir: results,
          executor: opts.executor === "slurm" ? slurmExecutorFrom(opts, loaded) : opts.executor,
          jobs: opts.jobs,
          gpuJobs: opts.gpuJobs,
          reporter,
          signal: ac.signal,
        }, lock);
        Deno.exitCode = summary.status === "ok" ? 0 : summary.status === "interrupted" ? 130 : 1;
        if (summary.status !== "interrupted" && !opts.quiet) {
          await printSummary(loaded.pipeline.options.summary, results);
        }
      } finally {
        Deno.removeSignalListener("SIGINT", onSigint);
        Deno.removeSignalListener("SIGTERM", onSigint);
        lock.release();
      }
    });
}
