// Loads the documents of a task split from its local files: JSON Lines or a JSON array, CSV, Parquet.
import { LabError } from "../../../errors.ts";
import type { TaskConfig } from "./task_config.ts";

/** One document: a record of the task's data. */
export type Doc = Record<string, unknown>;

/** The documents of `split`, in file order. */
export async function loadSplit(task: TaskConfig, split: string): Promise<Doc[]> {
  const docs: Doc[] = [];
  for (const f of task.splits[split] ?? []) {
    const where = `lm-eval task ${task.file}: key 'dataset_kwargs.data_files' (split ${split})`;
    try {
      Deno.statSync(f);
    } catch {
      throw new LabError(
        `${where}: data file ${f} does not exist; fix the path (relative paths ` +
          "are read from the YAML file's folder)",
      );
    }
    const part = task.dataset_path === "json"
      ? readJsonDocs(f, where)
      : await readTableDocs(f, task.dataset_path as "csv" | "parquet", where);
    docs.push(...part);
  }
  if (docs.length === 0) {
    throw new LabError(`lm-eval task ${task.file}: split ${split} holds no documents`);
  }
  return docs;
}

/** JSON Lines, or one JSON array of objects (both are what `dataset_path: json` reads). */
function readJsonDocs(file: string, where: string): Doc[] {
  const text = Deno.readTextFileSync(file);
  const trimmed = text.trimStart();
  const check = (x: unknown, at: string): Doc => {
    if (x === null || typeof x !== "object" || Array.isArray(x)) {
      throw new LabError(`${where}: ${file}${at}: each document must be a JSON object`);
    }
    return x as Doc;
  };
  if (trimmed.startsWith("[")) {
    let arr: unknown;
    try {
      arr = JSON.parse(text);
    } catch (e) {
      throw new LabError(`${where}: ${file}: not valid JSON (${(e as Error).message})`);
    }
    return (arr as unknown[]).map((x, i) => check(x, ` item ${i}`));
  }
  const out: Doc[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(check(JSON.parse(line), `:${i + 1}`));
    } catch (e) {
      if (e instanceof LabError) throw e;
      throw new LabError(`${where}: ${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
  });
  return out;
}

/** CSV or Parquet through DuckDB (imported here only, so runs without such files never load it). */
async function readTableDocs(file: string, kind: "csv" | "parquet", where: string): Promise<Doc[]> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const conn = await db.connect();
  try {
    const fn = kind === "csv" ? "read_csv_auto" : "read_parquet";
    const r = await conn.runAndReadAll(`SELECT * FROM ${fn}('${file.replaceAll("'", "''")}')`);
    return r.getRowObjectsJson() as Doc[];
  } catch (e) {
    throw new LabError(`${where}: cannot read ${kind} file ${file}: ${(e as Error).message}`);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
