import type { Command } from "commander";
import { resolve } from "node:path";
import { LabError } from "../../engine/errors.ts";
import { mustBeFolder, resultsDir } from "./common.ts";

/** `lab export --parquet DIR` */
export function register(program: Command): void {
  program
    .command("export")
    .description("write every table and view of results/lab.duckdb as files")
    .requiredOption("--parquet <dir>", "folder for <table>.parquet files")
    .action(async (opts, cmd: Command) => {
      const { LabDatabase, databasePath } = await import("../../engine/store.ts");
      const out = resolve(opts.parquet);
      mustBeFolder(out, "--parquet");
      Deno.mkdirSync(out, { recursive: true });
      const db = await LabDatabase.open(databasePath(resultsDir(cmd)), { readOnly: true });
      try {
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
