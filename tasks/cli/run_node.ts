// `lab run-node` (internal): runs one stage of a pipeline for an executor.
import type { Command } from "commander";
import { runNodeWorker } from "../../engine/worker.ts";

/** `lab run-node` (internal): runs one stage for the local executor. */
export function register(program: Command): void {
  program
    .command("run-node", { hidden: true })
    .description("internal: run one stage of a pipeline by cache key (used by worker processes)")
    .requiredOption("--pipeline <file>", "pipeline file")
    .requiredOption("--key <key>", "cache key of the stage")
    .option("--replace", "replace an existing cache entry")
    .option("--watch-stdin", "stop when stdin closes")
    .action(async (opts, cmd: Command) => {
      const results = (cmd.optsWithGlobals() as { results?: string }).results ??
        Deno.env.get("LAB_RESULTS") ?? "results";
      Deno.exit(
        await runNodeWorker({
          pipeline: opts.pipeline,
          key: opts.key,
          results,
          replace: opts.replace,
          watchStdin: opts.watchStdin,
        }),
      );
    });
}
