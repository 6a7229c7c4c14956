/**
 * The DuckDB side: only the coordinator writes results/lab.duckdb. This is the only module
 * that imports DuckDB; everything that runs stages (workers, GPU machines) stays clear of it.
 */
import { type DuckDBConnection, DuckDBInstance, timestampValue } from "@duckdb/node-api";
import { join } from "node:path";
import { CacheStore } from "./cache.ts";
import { blake3Hex, canonicalJson, hashReady } from "./canonical.ts";
import { LabError } from "./errors.ts";
import {
  type ColumnType,
  ENVIRONMENT_FIELDS,
  MACROS,
  RECORD_TABLE_BY_NAME,
  RECORD_TABLES,
  SYSTEM_TABLES,
  type TableDef,
  VIEWS,
} from "./tables.ts";
import type { EntryMeta, Row } from "./types.ts";

/** A row of the runs table. */
export interface RunRow {
  run_id: string;
  pipeline: string;
  file: string;
  started_at: string;
  finished_at: string | null;
  host: string;
  device: string | null;
  libtorch: string | null;
  status: string;
  n_stages: number;
  n_ran: number;
  n_cached: number;
  n_failed: number;
  n_skipped: number;
  env: Record<string, unknown>;
}

/** A row of the stages table. */
export interface StageRow {
  key: string;
  run_id: string;
  pipeline: string;
  name: string;
  kind: string;
  params: unknown;
  inputs: unknown;
  coords: Record<string, unknown>;
  cached: boolean;
  status: string;
  wall_s: number;
  error: string | null;
  device: string;
}

/** What results/runs/<run_id>.json holds: enough to rebuild runs and stages. */
export interface RunManifest {
  run: RunRow;
  stages: StageRow[];
}

/** The database path inside a results folder. */
export function databasePath(resultsDir: string): string {
  return join(resultsDir, "lab.duckdb");
}

/** Rows of one read-only query on a results folder's database (opened and closed around it). */
export async function queryResults(
  resultsDir: string,
  sql: string,
): Promise<Record<string, unknown>[]> {
  const db = await LabDatabase.open(databasePath(resultsDir), { readOnly: true });
  try {
    return (await db.query(sql)).rows;
  } finally {
    db.close();
  }
}

const q = (id: string) => `"${id.replaceAll('"', '""')}"`;
const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** An open lab.duckdb. */
export class LabDatabase {
  private constructor(
    readonly path: string,
    private instance: DuckDBInstance,
    readonly conn: DuckDBConnection,
    readonly readOnly: boolean,
  ) {}

  /**
   * Opens (read-write: creates and migrates the schema) or read-only. A database busy in
   * another process is retried for `waitMs`, then reported plainly.
   */
  static async open(
    path: string,
    opts: { readOnly?: boolean; waitMs?: number } = {},
  ): Promise<LabDatabase> {
    if (opts.readOnly) {
      try {
        Deno.statSync(path);
      } catch {
        throw new LabError(
          `no results database at ${path} yet: run a pipeline first (lab run <pipeline.ts>)`,
        );
      }
    }
    const deadline = Date.now() + (opts.waitMs ?? 10_000);
    for (;;) {
      try {
        const instance = await DuckDBInstance.create(
          path,
          opts.readOnly ? { access_mode: "READ_ONLY" } : {},
        );
        const conn = await instance.connect();
        const db = new LabDatabase(path, instance, conn, !!opts.readOnly);
        if (!opts.readOnly) await db.ensureSchema();
        return db;
      } catch (e) {
        const msg = (e as Error).message ?? String(e);
        if (!/lock/i.test(msg)) throw damaged(path, e) ?? e;
        if (Date.now() > deadline) {
          throw new LabError(
            `${path} is busy (another lab process is writing it); try again in a moment`,
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  close(): void {
    this.conn.closeSync();
    this.instance.closeSync();
  }

  /** Creates missing tables, columns and views (idempotent, cheap when nothing is missing). */
  async ensureSchema(): Promise<void> {
    const r = await this.conn.runAndReadAll(
      "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'",
    );
    const have = new Set(r.getRows().map(([t, c]) => `${t}.${c}`));
    const tables = new Set(r.getRows().map(([t]) => String(t)));
    for (const t of [...SYSTEM_TABLES, ...RECORD_TABLES.map(withKey)]) {
      if (!tables.has(t.name)) {
        await this.conn.run(
          `CREATE TABLE ${q(t.name)} (${t.columns.map(([c, ty]) => `${q(c)} ${ty}`).join(", ")})`,
        );
        continue;
      }
      for (const [c, ty] of t.columns) {
        if (!have.has(`${t.name}.${c}`)) {
          await this.conn.run(`ALTER TABLE ${q(t.name)} ADD COLUMN ${q(c)} ${ty}`);
        }
      }
    }
    if (!tables.has("results_wide")) await this.refreshViews();
  }

  /** Runs SQL and returns column names, types and JSON-friendly rows. */
  async query(
    sql: string,
  ): Promise<{ columns: string[]; types: string[]; rows: Record<string, unknown>[] }> {
    let reader;
    try {
      reader = await this.conn.runAndReadAll(sql);
    } catch (e) {
      // Damage in a block only shows when a query reads it.
      throw damaged(this.path, e) ?? e;
    }
    const columns = reader.columnNames();
    const types = reader.columnTypes().map((t) => t.toString());
    const rows = reader.getRowObjectsJson() as Record<string, unknown>[];
    // BIGINT and friends come back as strings; give numbers where they are exact.
    const intCols = columns.filter((_, i) =>
      /^(U?(BIG|SMALL|TINY|HUGE)?INT(EGER)?|UHUGEINT)$/.test(types[i])
    );
    if (intCols.length) {
      for (const row of rows) {
        for (const c of intCols) {
          const v = row[c];
          if (typeof v === "string" && Number.isSafeInteger(Number(v))) row[c] = Number(v);
        }
      }
    }
    return { columns, types, rows };
  }

  /** Current columns of a table, in order (empty when it does not exist). */
  async columnsOf(table: string): Promise<[string, string][]> {
    const r = await this.conn.runAndReadAll(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ${
        lit(table)
      } ORDER BY ordinal_position`,
    );
    return r.getRows().map((x) => [String(x[0]), String(x[1])]);
  }

  /** Appends rows (objects) with DuckDB's appender, converting each value to its column's type. */
  async append(table: string, rows: Row[]): Promise<void> {
    if (!rows.length) return;
    const cols = await this.columnsOf(table);
    const appender = await this.conn.createAppender(table);
    try {
      for (const row of rows) {
        for (const [c, ty] of cols) appendValue(appender, ty, row[c]);
        appender.endRow();
      }
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    await this.conn.run("BEGIN TRANSACTION");
    try {
      const out = await fn();
      await this.conn.run("COMMIT");
      return out;
    } catch (e) {
      await this.conn.run("ROLLBACK");
      throw e;
    }
  }

  /** Replaces a run's row. */
  async writeRun(run: RunRow): Promise<void> {
    await this.conn.run(`DELETE FROM runs WHERE run_id = ${lit(run.run_id)}`);
    await this.append("runs", [{ ...run, env: canonicalJson(run.env) }]);
  }

  async appendStages(rows: StageRow[]): Promise<void> {
    await this.append(
      "stages",
      rows.map((r) => ({
        ...r,
        params: canonicalJson(r.params),
        inputs: canonicalJson(r.inputs),
        coords: canonicalJson(r.coords),
      })),
    );
  }

  /** Keys whose cache entry is already loaded. */
  async loadedKeys(): Promise<Set<string>> {
    const r = await this.conn.runAndReadAll("SELECT key FROM cache_entries");
    return new Set(r.getRows().map((x) => String(x[0])));
  }

  /**
   * Loads cache entries (meta and records) into cache_entries and the record tables. Rows of
   * the built-in tables go through DuckDB's JSON reader straight from records.jsonl (one
   * statement per table); custom tables are parsed here and appended.
   */
  async loadEntries(cache: CacheStore, keys: string[]): Promise<number> {
    const files = new Map<string, string[]>();
    const custom = new Map<string, Row[]>();
    await hashReady();
    const entries: Row[] = [];
    const envs: Row[] = [];
    const knownEnvs = new Set(
      (await this.conn.runAndReadAll("SELECT env_id FROM environments")).getRows().map((r) =>
        String(r[0])
      ),
    );
    let total = 0;
    for (const key of keys) {
      const meta: EntryMeta = cache.readMeta(key);
      let envId: string | null = null;
      if (meta.provenance) {
        envId = blake3Hex(canonicalJson(meta.provenance), 16);
        if (!knownEnvs.has(envId)) {
          knownEnvs.add(envId);
          envs.push(environmentRow(envId, meta.provenance));
        }
      }
      const counts = meta.records ?? {};
      const n = Object.values(counts).reduce((a, b) => a + b, 0);
      total += n;
      const needsParse = Object.keys(counts).some((t) =>
        counts[t] > 0 && !RECORD_TABLE_BY_NAME.has(t)
      );
      const parsed = needsParse ? cache.readRecords(key) : undefined;
      for (const [table, count] of Object.entries(counts)) {
        if (!count) continue;
        if (RECORD_TABLE_BY_NAME.has(table)) {
          let list = files.get(table);
          if (!list) files.set(table, list = []);
          list.push(join(cache.entryDir(key), "records.jsonl"));
        } else {
          let list = custom.get(table);
          if (!list) custom.set(table, list = []);
          for (const row of parsed!.get(table) ?? []) list.push({ ...row, key });
        }
      }
      entries.push({
        key,
        kind: meta.kind,
        name: meta.name,
        pipeline: meta.pipeline,
        params: canonicalJson(meta.params),
        inputs: canonicalJson(meta.inputs),
        coords: canonicalJson(meta.coords),
        env: canonicalJson(meta.env),
        source: meta.source,
        device: meta.device,
        host: meta.host,
        started_at: meta.startedAt,
        finished_at: meta.finishedAt,
        wall_s: meta.wallS,
        n_records: n,
        env_id: envId,
      });
    }
    await this.append("cache_entries", entries);
    await this.append("environments", envs);
    for (const [table, list] of files) {
      const def = RECORD_TABLE_BY_NAME.get(table)!;
      const struct = `STRUCT(${
        def.columns.map(([c, t]) => `${q(c)} ${t === "JSON" ? "JSON" : t}`).join(", ")
      })`;
      await this.conn.run(
        `INSERT INTO ${q(table)} BY NAME
         SELECT regexp_extract(filename, '([0-9a-f]+)[/\\\\]records\\.jsonl$', 1) AS key, unnest("row")
         FROM read_json([${
          list.map(lit).join(", ")
        }], format = 'newline_delimited', filename = true,
                        columns = {"table": 'VARCHAR', "row": ${lit(struct)}})
         WHERE "table" = ${lit(table)}`,
      );
    }
    for (const [table, rows] of custom) {
      await this.ensureCustomTable(table, rows);
      await this.append(table, rows);
    }
    return total;
  }

  /** Removes the rows that came from these cache entries. */
  async forgetEntries(keys: string[]): Promise<void> {
    if (!keys.length) return;
    const list = keys.map(lit).join(", ");
    const tables = await this.conn.runAndReadAll(
      `SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema='main' AND column_name='key' AND table_name NOT IN ('stages')
       AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type='BASE TABLE')`,
    );
    for (const [t] of tables.getRows()) {
      await this.conn.run(`DELETE FROM ${q(String(t))} WHERE key IN (${list})`);
    }
  }

  private async ensureCustomTable(table: string, rows: Row[]): Promise<void> {
    const existing = new Map(await this.columnsOf(table));
    const types = new Map<string, ColumnType>();
    for (const row of rows) {
      for (const [c, v] of Object.entries(row)) {
        if (c === "key" || v === null || v === undefined) continue;
        const t = typeOfValue(v);
        const prev = types.get(c);
        types.set(c, !prev || prev === t ? t : "VARCHAR");
      }
      for (const c of Object.keys(row)) if (!types.has(c) && c !== "key") types.set(c, "VARCHAR");
    }
    if (!existing.size) {
      const cols = [["key", "VARCHAR"], ...[...types].sort(([a], [b]) => a.localeCompare(b))];
      await this.conn.run(
        `CREATE TABLE ${q(table)} (${cols.map(([c, t]) => `${q(c)} ${t}`).join(", ")})`,
      );
      return;
    }
    for (const [c, t] of [...types].sort(([a], [b]) => a.localeCompare(b))) {
      if (!existing.has(c)) await this.conn.run(`ALTER TABLE ${q(table)} ADD COLUMN ${q(c)} ${t}`);
    }
  }

  /** Recreates the views whose columns follow the data (coordinates, params, metric names). */
  async refreshViews(): Promise<void> {
    const fixed = new Set(SYSTEM_TABLES.find((t) => t.name === "stages")!.columns.map(([c]) => c));
    const coordCols = await this.jsonColumns("stages", "coords");
    const used = new Set(fixed);
    const coordSel = coordCols.filter(([k]) => !used.has(k)).map(([k, t]) => {
      used.add(k);
      return `TRY_CAST(json_extract_string(s.coords, ${lit("$." + jsonPathKey(k))}) AS ${t}) AS ${
        q(k)
      }`;
    });
    await this.conn.run(
      `CREATE OR REPLACE VIEW stages_wide AS SELECT s.*${
        coordSel.map((c) => ", " + c).join("")
      } FROM stages s`,
    );
    const wideUsed = new Set([
      "pipeline",
      "name",
      "kind",
      "key",
      "status",
      "run_id",
      "params",
      "coords",
      "wall_s",
      "cached",
    ]);
    const coordNames = coordCols.map(([k]) => k).filter((k) => !fixed.has(k));
    for (const k of coordNames) wideUsed.add(k);
    const paramCols = (await this.jsonColumns("stages", "params")).filter(([k]) =>
      !wideUsed.has(k)
    );
    for (const [k] of paramCols) wideUsed.add(k);
    const metricNames = (await this.conn.runAndReadAll(
      "SELECT DISTINCT name FROM metrics WHERE name IS NOT NULL ORDER BY name",
    ))
      .getRows().map((r) => String(r[0]));
    const metricSel = metricNames.map((m) => {
      const col = wideUsed.has(m) ? `metric_${m}` : m;
      wideUsed.add(col);
      return `max(value) FILTER (WHERE name = ${lit(m)}) AS ${q(col)}`;
    });
    const latest =
      `SELECT s.*, r.started_at AS run_started_at FROM stages_wide s JOIN runs r USING (run_id)
      WHERE s.status = 'ok'
      QUALIFY row_number() OVER (PARTITION BY s.key ORDER BY r.started_at DESC, r.run_id DESC) = 1`;
    const metricsWide = `SELECT key${
      metricSel.map((m) => ", " + m).join("")
    } FROM metrics GROUP BY key`;
    const select = [
      "l.pipeline",
      "l.name",
      "l.kind",
      "l.key",
      ...coordNames.map((k) => `l.${q(k)}`),
      ...paramCols.map(([k, t]) =>
        `TRY_CAST(json_extract_string(l.params, ${lit("$." + jsonPathKey(k))}) AS ${t}) AS ${q(k)}`
      ),
      "l.params",
      "l.wall_s",
      "l.run_id",
      ...(metricSel.length ? ["m.* EXCLUDE (key)"] : []),
    ];
    await this.conn.run(
      `CREATE OR REPLACE VIEW results_wide AS WITH l AS (${latest}), m AS (${metricsWide})
       SELECT ${select.join(", ")} FROM l LEFT JOIN m USING (key)`,
    );
    for (const v of VIEWS) await this.conn.run(`CREATE OR REPLACE VIEW ${q(v.name)} AS ${v.sql}`);
    for (const m of MACROS) await this.conn.run(`CREATE OR REPLACE MACRO ${q(m.name)}${m.sql}`);
  }

  /** Top-level scalar keys of a JSON column with a SQL type that fits all their values. */
  private async jsonColumns(table: string, column: string): Promise<[string, string][]> {
    const r = await this.conn.runAndReadAll(
      `WITH k AS (SELECT DISTINCT unnest(json_keys(${q(column)})) AS k FROM ${q(table)} WHERE ${
        q(column)
      } IS NOT NULL)
       SELECT k.k, list(DISTINCT json_type(${q(column)}, '$.' || to_json(k.k)::VARCHAR)) AS types
       FROM k, ${q(table)} WHERE json_type(${q(column)}, '$.' || to_json(k.k)::VARCHAR) IS NOT NULL
       GROUP BY k.k ORDER BY k.k`,
    );
    const out: [string, string][] = [];
    for (const [k, types] of r.getRowsJson() as [string, string[]][]) {
      const set = new Set(types.filter((t) => t !== "NULL"));
      if ([...set].some((t) => t === "OBJECT" || t === "ARRAY")) continue;
      let ty = "VARCHAR";
      if (set.size && [...set].every((t) => t === "BIGINT" || t === "UBIGINT")) ty = "BIGINT";
      else if (
        set.size && [...set].every((t) => t === "BIGINT" || t === "UBIGINT" || t === "DOUBLE")
      ) ty = "DOUBLE";
      else if (set.size === 1 && set.has("BOOLEAN")) ty = "BOOLEAN";
      out.push([k, ty]);
    }
    return out;
  }
}

/**
 * A LabError saying that `path` is damaged (or not a DuckDB file at all) and how to get it
 * back, when DuckDB's error says so; null for any other error.
 */
export function damaged(path: string, e: unknown): LabError | null {
  const msg = (e as Error)?.message ?? String(e);
  if (
    !/not a valid DuckDB database|Could not read enough bytes|Corrupt|checksum|Serialization Error|can only read version|IO Error: .*read/i
      .test(msg)
  ) return null;
  return new LabError(
    `the results database ${path} is damaged or unreadable (${msg.replace(/\s+/g, " ")}). ` +
      `It holds nothing the cache does not: lab db rebuild recreates it from results/cache ` +
      `and results/runs.`,
  );
}

/** An environments row: the known fields in columns, anything else in `extra`. */
function environmentRow(envId: string, p: Record<string, unknown>): Row {
  const row: Row = { env_id: envId };
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) {
    if (ENVIRONMENT_FIELDS.includes(k)) row[k] = v as Row[string];
    else extra[k] = v;
  }
  row.extra = Object.keys(extra).length ? canonicalJson(extra) : null;
  return row;
}

function jsonPathKey(k: string): string {
  return JSON.stringify(k);
}

function withKey(t: TableDef): TableDef {
  return { name: t.name, columns: [["key", "VARCHAR"], ...t.columns] };
}

function typeOfValue(v: unknown): ColumnType {
  if (typeof v === "number") return "DOUBLE";
  if (typeof v === "boolean") return "BOOLEAN";
  if (typeof v === "string") return "VARCHAR";
  return "JSON";
}

type Appender = Awaited<ReturnType<DuckDBConnection["createAppender"]>>;

function appendValue(a: Appender, type: string, v: unknown): void {
  if (v === null || v === undefined) return a.appendNull();
  switch (type) {
    case "DOUBLE":
    case "FLOAT": {
      const n = typeof v === "number" ? v : typeof v === "boolean" ? Number(v) : Number(v);
      return Number.isNaN(n) && typeof v !== "number" ? a.appendNull() : a.appendDouble(n);
    }
    case "BIGINT":
    case "INTEGER": {
      const n = typeof v === "number" ? v : Number(v);
      if (!Number.isFinite(n)) return a.appendNull();
      return type === "BIGINT"
        ? a.appendBigInt(BigInt(Math.round(n)))
        : a.appendInteger(Math.round(n));
    }
    case "BOOLEAN":
      return a.appendBoolean(typeof v === "string" ? v === "true" : Boolean(v));
    case "TIMESTAMP": {
      const ms = typeof v === "number" ? v : Date.parse(String(v));
      if (!Number.isFinite(ms)) return a.appendNull();
      return a.appendTimestamp(timestampValue(BigInt(Math.round(ms)) * 1000n));
    }
    case "JSON":
      return a.appendVarchar(typeof v === "string" ? v : JSON.stringify(v));
    default:
      return a.appendVarchar(typeof v === "string" ? v : JSON.stringify(v));
  }
}

/**
 * Writes a run's progress: the manifest file first (the cache side is the source of truth),
 * then the database, one transaction per batch of finished stages. Batches are flushed at
 * most every `intervalMs` while the run goes on, and the database is only open while flushing,
 * so that `lab query` can read between flushes.
 */
export class ResultWriter {
  private stages: StageRow[] = [];
  private pendingStages: StageRow[] = [];
  private pendingKeys: string[] = [];
  private replaced = new Set<string>();
  private flushing: Promise<void> | undefined;
  private lastFlush = Date.now();
  private cache: CacheStore;
  private viewColumns = new Set<string>();
  rowsLoaded = 0;

  /** Earlier runs found dead when this one started: their rows are corrected on first flush. */
  private interrupted: RunRow[];

  /** The caller holds the results folder's lock (so any other "running" run is dead). */
  constructor(readonly resultsDir: string, public run: RunRow, readonly intervalMs = 2000) {
    this.cache = new CacheStore(resultsDir);
    this.interrupted = markInterruptedRuns(resultsDir, run.run_id);
    // The manifest exists from the start, so that a run killed before its first flush still
    // shows up (as interrupted) in runs.
    writeManifest(resultsDir, { run, stages: [] });
  }

  /**
   * Queues a finished stage; `load` when its cache entry may not be in the database yet,
   * `replace` when it was re-run over an existing entry (--force): its old rows go.
   */
  add(row: StageRow, load: boolean, replace = false): void {
    this.stages.push(row);
    this.pendingStages.push(row);
    if (load) this.pendingKeys.push(row.key);
    if (replace) this.replaced.add(row.key);
    if (!this.flushing && Date.now() - this.lastFlush > this.intervalMs) {
      // A failed batch stays queued; the final flush() retries it and reports the error.
      this.flush().catch(() => {});
    }
  }

  /** Writes everything queued (waits for a flush in progress first). */
  async flush(): Promise<void> {
    if (this.flushing) await this.flushing.catch(() => {});
    this.flushing = this.doFlush();
    try {
      await this.flushing;
    } finally {
      this.flushing = undefined;
      this.lastFlush = Date.now();
    }
  }

  private async doFlush(): Promise<void> {
    const stages = this.pendingStages;
    const keys = this.pendingKeys;
    this.pendingStages = [];
    this.pendingKeys = [];
    try {
      await this.write(stages, keys);
    } catch (e) {
      this.pendingStages = [...stages, ...this.pendingStages];
      this.pendingKeys = [...keys, ...this.pendingKeys];
      throw e;
    }
  }

  private async write(stages: StageRow[], keys: string[]): Promise<void> {
    writeManifest(this.resultsDir, { run: this.run, stages: this.stages });
    const db = await LabDatabase.open(databasePath(this.resultsDir));
    try {
      const loaded = keys.length ? await db.loadedKeys() : new Set<string>();
      const replace = keys.filter((k) => this.replaced.has(k));
      for (const k of replace) loaded.delete(k);
      const toLoad = [...new Set(keys)].filter((k) => !loaded.has(k) && this.cache.has(k));
      const interrupted = this.interrupted;
      await db.transaction(async () => {
        for (const r of interrupted) await db.writeRun(r);
        if (replace.length) await db.forgetEntries(replace);
        await db.writeRun(this.run);
        await db.appendStages(stages);
        if (toLoad.length) this.rowsLoaded += await db.loadEntries(this.cache, toLoad);
      });
      this.interrupted = [];
      // The generated views change only when new coordinates, params or metric names appear.
      const seen = this.viewColumns.size;
      for (const st of stages) {
        for (const [k, v] of Object.entries(st.coords ?? {})) {
          this.viewColumns.add(`c:${k}:${typeof v}`);
        }
        if (st.params && typeof st.params === "object") {
          for (const [k, v] of Object.entries(st.params)) {
            this.viewColumns.add(`p:${k}:${typeof v}`);
          }
        }
      }
      if (toLoad.length) this.viewColumns.add(`loaded:${this.rowsLoaded}:${toLoad.length}`);
      if (!seen || this.viewColumns.size > seen) await db.refreshViews();
    } finally {
      db.close();
    }
  }
}

/** Writes results/runs/<run_id>.json atomically. */
export function writeManifest(resultsDir: string, m: RunManifest): void {
  const dir = join(resultsDir, "runs");
  Deno.mkdirSync(dir, { recursive: true });
  const path = join(dir, `${m.run.run_id}.json`);
  Deno.writeTextFileSync(path + ".tmp", JSON.stringify(m));
  Deno.renameSync(path + ".tmp", path);
}

/** All run manifests, oldest first. */
export function readManifests(resultsDir: string): RunManifest[] {
  const dir = join(resultsDir, "runs");
  const out: RunManifest[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (!e.isFile || !e.name.endsWith(".json")) continue;
      try {
        out.push(JSON.parse(Deno.readTextFileSync(join(dir, e.name))));
      } catch { /* a half-written manifest cannot exist (atomic rename); skip foreign files */ }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) =>
    a.run.started_at.localeCompare(b.run.started_at) || a.run.run_id.localeCompare(b.run.run_id)
  );
}

/**
 * Marks runs whose manifest still says "running" as "interrupted": their coordinator was
 * killed before it could say how it ended. Only call while holding the results folder's lock:
 * then no other run can be alive. The finish time is the manifest's last write, the last sign
 * of life. Returns the corrected run rows.
 */
export function markInterruptedRuns(resultsDir: string, except?: string): RunRow[] {
  const out: RunRow[] = [];
  for (const m of readManifests(resultsDir)) {
    if (m.run.status !== "running" || m.run.run_id === except) continue;
    let last: string | null = null;
    try {
      last = Deno.statSync(join(resultsDir, "runs", `${m.run.run_id}.json`)).mtime
        ?.toISOString() ?? null;
    } catch { /* gone meanwhile */ }
    const run: RunRow = { ...m.run, status: "interrupted", finished_at: last };
    writeManifest(resultsDir, { run, stages: m.stages });
    out.push(run);
  }
  return out;
}

/**
 * Recreates lab.duckdb from run manifests and cache entries alone (the caller holds the results
 * folder's lock). Returns row counts.
 */
export async function rebuildDatabase(
  resultsDir: string,
): Promise<{ runs: number; stages: number; entries: number; rows: number }> {
  const path = databasePath(resultsDir);
  const tmp = `${path}.rebuild-${Deno.pid}`;
  for (const p of [tmp, tmp + ".wal"]) {
    try {
      Deno.removeSync(p);
    } catch { /* none */ }
  }
  const cache = new CacheStore(resultsDir);
  markInterruptedRuns(resultsDir);
  const manifests = readManifests(resultsDir);
  const keys = [...cache.keys()].sort();
  const db = await LabDatabase.open(tmp);
  let rows = 0;
  let stages = 0;
  try {
    await db.transaction(async () => {
      for (const m of manifests) {
        await db.writeRun(m.run);
        await db.appendStages(m.stages);
        stages += m.stages.length;
      }
      rows = await db.loadEntries(cache, keys);
    });
    await db.refreshViews();
  } finally {
    db.close();
  }
  for (const p of [path + ".wal"]) {
    try {
      Deno.removeSync(p);
    } catch { /* none */ }
  }
  Deno.renameSync(tmp, path);
  return { runs: manifests.length, stages, entries: keys.length, rows };
}
