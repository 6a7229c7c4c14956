// `lab why`: why a stage's cache key differs from the one cached before.
import type { Command } from "commander";
import { CacheStore } from "../../engine/cache.ts";
import { globMatcher, loadPipelineFile, planPipeline } from "../../engine/plan.ts";
import { entryMetas, explainNode } from "../../engine/why.ts";
import { LabError } from "../../engine/errors.ts";
import { resultsDir } from "./common.ts";

/** `lab why <pipeline.ts> [stage...]` */
export function register(program: Command): void {
  program
    .command("why")
    .description(
      "why would a stage re-run? compare its key's parts (params, inputs, environment, source " +
        "files, npm packages, data and checkpoint files) with the last cached entry of the same name",
    )
    .argument("<pipeline>", "pipeline file")
    .argument("[stages...]", "stage names or kinds (globs); default: every stage that would run")
    .option("--json", "print the answers as JSON")
    .action(async (file: string, stages: string[], opts, cmd: Command) => {
      const results = resultsDir(cmd);
      const plan = await planPipeline(await loadPipelineFile(file), { resultsDir: results });
      let nodes = plan.nodes;
      if (stages.length) {
        nodes = plan.nodes.filter((n) => stages.some((s) => globMatcher(s)(n)));
        if (!nodes.length) {
          throw new LabError(
            `no stage of ${plan.pipeline} matches ${stages.join(", ")} (stages: ${
              plan.nodes.slice(0, 15).map((n) => n.name).join(", ")
            })`,
          );
        }
      } else nodes = nodes.filter((n) => !n.cached);
      const metas = entryMetas(new CacheStore(results));
      const answers = nodes.map((n) => explainNode(n, plan.pipeline, metas));
      if (opts.json) return console.log(JSON.stringify(answers, null, 2));
      if (!answers.length) {
        console.log(`every stage of ${plan.pipeline} is cached: nothing would run`);
      }
      for (const a of answers) {
        const head = a.cached ? "cached (would not run)" : "would run";
        const vs = a.previous
          ? `; against ${a.previous.key.slice(0, 12)} from ${a.previous.finishedAt.slice(0, 19)}`
          : "";
        console.log(`${a.name}  ${a.key.slice(0, 12)}: ${head}${vs}`);
        for (const r of a.reasons) console.log(`  - ${r}`);
      }
    });
}
