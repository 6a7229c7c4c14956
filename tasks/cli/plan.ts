// `lab plan`: what a run of a pipeline would do with each stage.
import type { Command } from "commander";
import { loadPipelineFile, nodeStatus, type Plan, planPipeline } from "../../engine/plan.ts";
import { collect, resultsDir } from "./common.ts";

/** Prints a plan: one line per stage with what a run would do. */
export function printPlan(plan: Plan): void {
  const rows = plan.nodes.map((n) => ({ n, status: nodeStatus(n) }));
  const count = (s: string) => rows.filter((r) => r.status === s).length;
  const parts = [
    `${count("cached")} cached`,
    `${count("to-run")} to run`,
    `${count("blocked")} blocked`,
  ];
  if (count("excluded")) parts.push(`${count("excluded")} excluded`);
  console.log(
    `plan ${plan.pipeline} (${plan.displayFile}): ${plan.nodes.length} stages: ${parts.join(", ")}`,
  );
  const w = Math.min(48, Math.max(4, ...plan.nodes.map((n) => n.name.length)));
  for (const { n, status } of rows) {
    const inputs = n.deps.map((d) => d.name).join(", ");
    const forced = n.forced && status !== "excluded" ? " (forced)" : "";
    console.log(
      `  ${status.padEnd(8)}  ${n.name.padEnd(w)}  ${n.key.slice(0, 12)}${
        inputs ? `  <- ${inputs}` : ""
      }${forced}`,
    );
  }
  for (const a of plan.aliases) {
    console.log(`  (same)    ${a.name.padEnd(w)}  ${a.key.slice(0, 12)}  = ${a.aliasOf!.name}`);
  }
}

/** `lab plan <pipeline.ts>` */
export function register(program: Command): void {
  program
    .command("plan")
    .description("show the DAG with cached / to-run / blocked per stage, without running anything")
    .argument("<pipeline>", "pipeline file")
    .option("--force <pattern>", "treat matching stages (and descendants) as forced", collect)
    .option("--only <pattern>", "restrict to matching stages and what they need", collect)
    .option("--json", "print the plan as JSON")
    .action(async (file: string, opts, cmd: Command) => {
      const plan = await planPipeline(await loadPipelineFile(file), {
        resultsDir: resultsDir(cmd),
        force: opts.force,
        only: opts.only,
      });
      if (opts.json) {
        console.log(JSON.stringify(
          {
            pipeline: plan.pipeline,
            file: plan.displayFile,
            nodes: plan.nodes.map((n) => ({
              name: n.name,
              kind: n.kind,
              key: n.key,
              status: nodeStatus(n),
              forced: n.forced,
              device: n.stage.device,
              coords: n.coords,
              params: n.params,
              inputs: Object.fromEntries(
                n.inputs.map((i) => [
                  i.name,
                  i.list ? i.nodes.map((d) => d.name) : i.nodes[0]?.name ?? null,
                ]),
              ),
            })),
            aliases: plan.aliases.map((a) => ({
              name: a.name,
              key: a.key,
              sameAs: a.aliasOf!.name,
            })),
          },
          null,
          2,
        ));
      } else printPlan(plan);
    });
}
