// `lab db rebuild`: recreates lab.duckdb from the cache.
import type { Command } from "commander";
import { lockResults } from "../../engine/lock.ts";
import { resultsDir } from "./common.ts";

/** `lab db rebuild` */
export function register(program: Command): void {
  const db = program.command("db").description("manage results/lab.duckdb");
  db.command("rebuild")
    .description("recreate lab.duckdb from the cache and run manifests alone")
    .option("--wait", "wait for another lab process to release the results folder")
    .action(async (opts, cmd: Command) => {
      const { rebuildDatabase } = await import("../../engine/store.ts");
      const dir = resultsDir(cmd);
      const lock = await lockResults(dir, { purpose: "lab db rebuild", wait: opts.wait });
      try {
        const r = await rebuildDatabase(dir);
        console.log(
          `rebuilt ${dir}/lab.duckdb: ${r.runs} runs, ${r.stages} stage rows, ${r.entries} cache entries, ${r.rows} result rows`,
        );
      } finally {
        lock.release();
      }
    });
}
