/**
 * The `lab` command line: `deno task lab <command>`. Each command lives in tasks/cli/<name>.ts
 * and exports register(program); adding one is one line in COMMANDS.
 */
import { Command } from "commander";
import { LabError } from "../engine/errors.ts";

const COMMANDS = [
  import("./cli/run.ts"),
  import("./cli/plan.ts"),
  import("./cli/query.ts"),
  import("./cli/export.ts"),
  import("./cli/db.ts"),
  import("./cli/cache.ts"),
  import("./cli/run_node.ts"),
  import("./cli/init_model.ts"),
  import("./cli/generate.ts"),
  import("./cli/report.ts"),
  import("./cli/serve.ts"),
];

/** Builds the program with every command registered. */
export async function labProgram(): Promise<Command> {
  const program = new Command("lab")
    .description("LLM Efficiency Lab: run pipelines, cache stages, query results")
    .option("--results <dir>", "results folder (default: $LAB_RESULTS or ./results)")
    .showHelpAfterError()
    .configureOutput({ outputError: (s, write) => write(s) });
  for (const mod of await Promise.all(COMMANDS)) mod.register(program);
  return program;
}

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const program = await labProgram();
  program.exitOverride();
  try {
    await program.parseAsync(args, { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : 0;
  } catch (e) {
    const err = e as { code?: string; exitCode?: number };
    if (typeof err?.code === "string" && err.code.startsWith("commander.")) {
      return err.code === "commander.helpDisplayed" || err.code === "commander.version"
        ? 0
        : err.exitCode ?? 2;
    }
    if (e instanceof LabError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    console.error(e);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
