// `lab export`: the tables as Parquet files, or evaluate stages in lm-eval's shape.
import type { Command } from "commander";
import { resolve } from "node:path";
import { LabError } from "../../engine/errors.ts";
import { mustBeFolder, resultsDir } from "./common.ts";
import { exportLmEval } from "./export_lm_eval.ts";

/** `lab export --parquet DIR` and `lab export --lm-eval DIR` */
export function register(program: Command): void {
  program
    .command("export")
    .description("write every table and view of results/lab.duckdb as files")
    .option("--parquet <dir>", "folder for <table>.parquet files")
    .option("--lm-eval <dir>", "folder for each evaluate stage's lm-eval results.json")
    .action(async (opts, cmd: Command) => {
      const { LabDatabase, databasePath } = await import("../../engine/store.ts");
      if (!opts.parquet && !opts.lmEval) {
        throw new LabError("export: say where to: --parquet DIR and/or --lm-eval DIR");
      }
      if (opts.lmEval) mustBeFolder(resolve(opts.lmEval), "--lm-eval");
      if (opts.parquet) mustBeFolder(resolve(opts.parquet), "--parquet");
      const results = resultsDir(cmd);
      const db = await LabDatabase.open(databasePath(results), { readOnly: true });
      try {
        if (opts.lmEval) await exportLmEval(db, results, resolve(opts.lmEval));
        if (!opts.parquet) return;
        const out = resolve(opts.parquet);
        Deno.mkdirSync(out, { recursive: true });
        const r = await db.query(
          "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name",
        );
        for (const row of r.rows) {
          const name = String(row.table_name);
          const file = `${out}/${name}.parquet`;
          try {
            await db.conn.run(
              `COPY (SELECT * FROM "${name.replaceAll('"', '""')}") TO '${
                file.replaceAll("'", "''")
              }' (FORMAT parquet)`,
            );
          } catch (e) {
            throw new LabError(`exporting ${name} failed: ${(e as Error).message}`);
          }
          const n = await db.query(
            `SELECT count(*)::BIGINT AS n FROM "${name.replaceAll('"', '""')}"`,
          );
          console.log(`${name}.parquet  ${n.rows[0].n} rows`);
        }
        console.log(`wrote ${r.rows.length} files to ${out}`);
      } finally {
        db.close();
      }
    });
}
