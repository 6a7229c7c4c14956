// `lab query`: SQL against lab.duckdb.
import type { Command } from "commander";
import { formatCsv, formatTable, resultsDir } from "./common.ts";

/** `lab query [sql]` */
export function register(program: Command): void {
  program
    .command("query")
    .description(
      "run one SQL query on results/lab.duckdb (read-only: statements that write, COPY and " +
        "EXPORT included, are refused); without SQL, list tables and views with their columns",
    )
    .argument("[sql]", "a SQL query")
    .option("--json", "print rows as a JSON array")
    .option("--csv", "print rows as CSV")
    .action(async (sql: string | undefined, opts, cmd: Command) => {
      const { LabDatabase, databasePath } = await import("../../engine/store.ts");
      const db = await LabDatabase.open(databasePath(resultsDir(cmd)), { readOnly: true });
      try {
        if (!sql) {
          const r = await db.query(
            `SELECT t.table_name AS name, lower(replace(t.table_type, 'BASE ', '')) AS type,
                    string_agg(c.column_name || ' ' || c.data_type, ', ' ORDER BY c.ordinal_position) AS columns
             FROM information_schema.tables t JOIN information_schema.columns c USING (table_schema, table_name)
             WHERE t.table_schema = 'main' GROUP BY ALL ORDER BY type, name`,
          );
          if (opts.json) console.log(JSON.stringify(r.rows, null, 2));
          else if (opts.csv) console.log(formatCsv(r.columns, r.rows));
          else for (const row of r.rows) console.log(`${row.type} ${row.name}(${row.columns})`);
          return;
        }
        const { LabError } = await import("../../engine/errors.ts");
        const { prepareReadOnly } = await import("../../reports/sql.ts");
        let r;
        try {
          // The database is open read-only, but COPY … TO writes files beside it: refuse
          // anything but a query before it runs, as the dashboard's SQL box does.
          const checked = await prepareReadOnly(db, sql, "lab query");
          if ("refused" in checked) throw new LabError(checked.refused);
          r = await db.query(sql);
        } catch (e) {
          if (e instanceof LabError) throw e;
          throw new LabError(`query failed: ${(e as Error).message}`);
        }
        if (opts.json) console.log(JSON.stringify(r.rows, null, 2));
        else if (opts.csv) console.log(formatCsv(r.columns, r.rows));
        else console.log(formatTable(r.columns, r.rows, r.types));
      } finally {
        db.close();
      }
    });
}
