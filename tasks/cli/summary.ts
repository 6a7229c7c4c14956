// Prints a pipeline's summary table after a run, read back from DuckDB.
import type { PipelineOptions } from "../../engine/build.ts";
import { formatTable } from "./common.ts";

/** Prints `summary` (if any) from the results database, with the SQL behind it. */
export async function printSummary(
  summary: PipelineOptions["summary"],
  resultsDir: string,
): Promise<void> {
  if (!summary) return;
  const { LabDatabase, databasePath } = await import("../../engine/store.ts");
  const db = await LabDatabase.open(databasePath(resultsDir), { readOnly: true });
  try {
    const r = await db.query(summary.sql);
    console.log(`\n${summary.title ?? "Summary"}\n`);
    console.log(formatTable(r.columns, r.rows, r.types));
    const oneLine = summary.sql.replace(/\s+/g, " ").trim();
    console.log(
      `\nFrom DuckDB (${databasePath(resultsDir)}); the query:\n  deno task lab query "${oneLine}"`,
    );
  } catch (e) {
    console.error(`summary table unavailable: ${(e as Error).message}`);
  } finally {
    db.close();
  }
}
