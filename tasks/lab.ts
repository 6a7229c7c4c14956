/**
 * The `lab` command line: `deno task lab <command>`. Each command lives in tasks/cli/<name>.ts
 * and exports register(program); adding one is one line in COMMANDS.
 */
import { Command } from "commander";
import { LabError } from "../engine/errors.ts";
import { HELP_SETTINGS } from "./cli/help.ts";

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
  import("./cli/compare.ts"),
  import("./cli/why.ts"),
  import("./cli/report.ts"),
  import("./cli/serve.ts"),
  import("./cli/serve_model.ts"),
];

/** Builds the program with every command registered. */
export async function labProgram(): Promise<Command> {
  const program = new Command("lab")
    .description("LLM Efficiency Lab: run pipelines, cache stages, query results")
    .option("--results <dir>", "results folder (default: $LAB_RESULTS or ./results)")
    .configureOutput({ outputError: (s, write) => write(s) })
    .configureHelp(HELP_SETTINGS)
    // Set before the commands are added, which inherit them: errors come back to main().
    .exitOverride();
  for (const mod of await Promise.all(COMMANDS)) mod.register(program);
  return program;
}

/** Runs the CLI with `args`; returns the exit code (2 for a user's mistake, 1 for a failure). */
export async function main(args: string[]): Promise<number> {
  const program = await labProgram();
  try {
    await program.parseAsync(args, { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : 0;
  } catch (e) {
    const err = e as { code?: string; exitCode?: number };
    if (typeof err?.code === "string" && err.code.startsWith("commander.")) {
      // Commander has printed its one-line message already (a bad flag or value).
      return err.code === "commander.helpDisplayed" || err.code === "commander.version" ||
          err.exitCode === 0
        ? 0
        : 2;
    }
    const user = userMessage(e);
    if (user !== null) {
      console.error(`error: ${user}`);
      return 2;
    }
    console.error(e);
    return 1;
  }
}

/**
 * The one-line message of an error the user caused, or null for a bug. Besides LabError,
 * file-system refusals on paths the user named (a file where a folder belongs, a missing or
 * unwritable path) are mistakes to fix, not crashes to debug.
 */
export function userMessage(e: unknown): string | null {
  if (e instanceof LabError) return e.message;
  const fs = [
    Deno.errors.NotFound,
    Deno.errors.AlreadyExists,
    Deno.errors.NotADirectory,
    Deno.errors.IsADirectory,
    Deno.errors.PermissionDenied,
  ];
  if (fs.some((c) => e instanceof c)) return (e as Error).message.split("\n")[0];
  return null;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
