/**
 * Reads what the report shows from a results folder, read-only and briefly: the database is
 * opened, every section's query runs, and it is closed again, so a running sweep (the only
 * writer) can flush between reads.
 */
import { existsSync } from "node:fs";
import { LabError } from "../engine/errors.ts";
import { databasePath, LabDatabase } from "../engine/store.ts";
import { ADVISOR_METRICS_SQL, RUNS, type SectionQuery, SECTIONS } from "./queries.ts";

export type Row = Record<string, unknown>;

/** A section's query with its rows, or the reason there are none. */
export interface SectionData {
  query: SectionQuery;
  columns: string[];
  rows: Row[];
  /** Set when there is nothing to draw: "no data yet: …" or the error met. */
  note?: string;
}

/** Everything a report or the dashboard renders. */
export interface ReportData {
  resultsDir: string;
  sections: Map<string, SectionData>;
  runs: SectionData;
  /** Advisor rows (metrics named advisor_*), and the advisor_choices table when it exists. */
  advisor: { metrics: Row[]; choices: { columns: string[]; rows: Row[] } | null };
  generatedAt: string;
}

/** Tables and views present in the open database. */
export async function existingRelations(db: LabDatabase): Promise<Set<string>> {
  const r = await db.query(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'",
  );
  return new Set(r.rows.map((x) => String(x.table_name)));
}

/** Runs one section's query; a missing table or no rows give a note instead of an error. */
export async function runSection(
  db: LabDatabase,
  have: Set<string>,
  query: SectionQuery,
): Promise<SectionData> {
  const missing = query.needs.filter((t) => !have.has(t));
  if (missing.length) {
    return { query, columns: [], rows: [], note: `no data yet: ${query.empty}` };
  }
  try {
    const r = await db.query(query.sql);
    return {
      query,
      columns: r.columns,
      rows: r.rows,
      note: r.rows.length ? undefined : `no data yet: ${query.empty}`,
    };
  } catch (e) {
    return {
      query,
      columns: [],
      rows: [],
      note: `could not read this section: ${(e as Error).message.split("\n")[0]}`,
    };
  }
}

/**
 * Opens `resultsDir`'s database read-only and reads every section. A missing folder or
 * database is a LabError naming the folder and the fix; nothing is created.
 */
export async function readReportData(resultsDir: string): Promise<ReportData> {
  if (!existsSync(resultsDir)) {
    throw new LabError(
      `no results folder at ${resultsDir}: run a pipeline first (lab run <pipeline.ts>), ` +
        `or point --results (or LAB_RESULTS) at an existing results folder`,
    );
  }
  const path = databasePath(resultsDir);
  if (!existsSync(path)) {
    throw new LabError(
      `no results in ${resultsDir} yet (no lab.duckdb): run a pipeline first (lab run <pipeline.ts>)`,
    );
  }
  const db = await LabDatabase.open(path, { readOnly: true });
  try {
    return await readFrom(db, resultsDir);
  } finally {
    db.close();
  }
}

/** Reads every section from an open database. */
export async function readFrom(db: LabDatabase, resultsDir: string): Promise<ReportData> {
  const have = await existingRelations(db);
  // Several sections read latest_stages, quant_tradeoff and pareto, views that do real work
  // (a window over all stages; the Pareto marking compares every pair). Snapshot each once in a temporary table of the same name,
  // which shadows the view for this connection only: the SQL printed under each chart is the
  // SQL that runs, over the same rows, and the database file is not touched.
  for (const view of ["latest_stages", "quant_tradeoff", "pareto"]) {
    if (!have.has(view)) continue;
    try {
      await db.conn.run(`CREATE OR REPLACE TEMP TABLE ${view} AS SELECT * FROM main.${view}`);
    } catch { /* the section's own query reports the problem */ }
  }
  const sections = new Map<string, SectionData>();
  for (const q of SECTIONS) sections.set(q.id, await runSection(db, have, q));
  const runs = await runSection(db, have, RUNS);
  let metrics: Row[] = [];
  if (have.has("metrics") && have.has("latest_stages")) {
    try {
      metrics = (await db.query(ADVISOR_METRICS_SQL)).rows;
    } catch { /* an older schema: no advisor */ }
  }
  let choices: ReportData["advisor"]["choices"] = null;
  if (have.has("advisor_choices")) {
    try {
      // The advise stage's params say which fallback the kept modules stay in.
      const r = await db.query(
        `SELECT st.pipeline, st.name AS stage, json_extract_string(st.params, '$.fallback') AS fallback,
                json_extract_string(st.params, '$.scheme') AS base_scheme, a.*
         FROM advisor_choices a
         JOIN (SELECT key, any_value(pipeline) AS pipeline, any_value(name) AS name,
                      any_value(params) AS params FROM latest_stages GROUP BY key) st USING (key)
         LIMIT 5000`,
      );
      choices = { columns: r.columns, rows: r.rows };
    } catch { /* unreadable: treated as absent */ }
  }
  return {
    resultsDir,
    sections,
    runs,
    advisor: { metrics, choices },
    generatedAt: new Date().toISOString(),
  };
}
