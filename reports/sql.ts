/**
 * The dashboard's SQL box: one read-only statement at a time. A statement that writes is
 * refused before it reaches DuckDB, DuckDB's own statement type is checked next, and the
 * connection is read-only with file access disabled anyway.
 */
import type { LabDatabase } from "../engine/store.ts";

/** What the SQL box answers. */
export type SqlAnswer =
  | {
    ok: true;
    columns: string[];
    types: string[];
    rows: Record<string, unknown>[];
    truncated: boolean;
    ms: number;
  }
  | { ok: false; refused: boolean; error: string };

export const MAX_ROWS = 1000;
const TIMEOUT_MS = 10_000;

const WRITE_VERBS = new Set([
  "INSERT",
  "UPDATE",
  "DELETE",
  "CREATE",
  "DROP",
  "ALTER",
  "COPY",
  "ATTACH",
  "DETACH",
  "INSTALL",
  "LOAD",
  "SET",
  "RESET",
  "PRAGMA",
  "TRUNCATE",
  "MERGE",
  "UPSERT",
  "REPLACE",
  "VACUUM",
  "CHECKPOINT",
  "FORCE",
  "EXPORT",
  "IMPORT",
  "USE",
  "BEGIN",
  "COMMIT",
  "ROLLBACK",
  "ABORT",
  "START",
  "END",
  "GRANT",
  "REVOKE",
  "CALL",
  "PREPARE",
  "EXECUTE",
  "DEALLOCATE",
  "COMMENT",
]);
const READ_VERBS = new Set([
  "SELECT",
  "WITH",
  "FROM",
  "VALUES",
  "TABLE",
  "DESCRIBE",
  "DESC",
  "SHOW",
  "SUMMARIZE",
  "EXPLAIN",
  "PIVOT",
  "UNPIVOT",
  "(",
]);

// DuckDB's StatementType values for statements that only read (store.ts alone imports DuckDB).
const SELECT_STATEMENT = 1;
const EXPLAIN_STATEMENT = 4;

/** SQL with comments and string literals blanked, so keywords inside them do not count. */
function code(sql: string): string {
  return sql.replace(
    /--[^\n]*|\/\*[\s\S]*?\*\/|'(?:[^']|'')*'|"(?:[^"]|"")*"/g,
    (m) => m.startsWith("--") || m.startsWith("/*") ? " " : "''",
  );
}

/**
 * Why `sql` may not run in the SQL box (or `where`, e.g. "lab query"), or null when it reads
 * only (as far as the text shows; DuckDB's statement type is checked too, in prepareReadOnly).
 */
export function refusal(sql: string, where = "the SQL box"): string | null {
  const c = code(sql).trim();
  if (!c) return "empty statement: type a query, e.g. SELECT * FROM quant_tradeoff";
  const parts = c.split(";").map((s) => s.trim()).filter(Boolean);
  if (parts.length > 1) return "one statement at a time, please (remove the extra ';')";
  const verb = (/^\(|^[A-Za-z_]+/.exec(parts[0])?.[0] ?? "").toUpperCase();
  if (verb === "COPY" || verb === "EXPORT") {
    return `refused: ${verb} changes the database or writes files, and ${where} is read-only. ` +
      `To save rows, use ` +
      `lab query --csv "SELECT …" > file.csv, or lab export --parquet DIR.`;
  }
  if (WRITE_VERBS.has(verb)) {
    return `refused: ${verb} changes the database or the session, and ${where} is read-only ` +
      `(SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN). Results are written only by ` +
      `lab run.`;
  }
  if (!READ_VERBS.has(verb)) {
    return `refused: only queries run here (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, ` +
      `EXPLAIN); "${verb || parts[0].slice(0, 20)}" is not one`;
  }
  return null;
}

type Prepared = Awaited<
  ReturnType<Awaited<ReturnType<LabDatabase["conn"]["extractStatements"]>>["prepare"]>
>;

/**
 * Prepares `sql` when it is one statement that only reads, by its text and by DuckDB's own
 * statement type; otherwise says why not. Nothing runs.
 */
export async function prepareReadOnly(
  db: LabDatabase,
  sql: string,
  where = "the SQL box",
): Promise<{ prepared: Prepared } | { refused: string }> {
  const why = refusal(sql, where);
  if (why) return { refused: why };
  const extracted = await db.conn.extractStatements(sql);
  if (extracted.count !== 1) return { refused: "one statement at a time, please" };
  const prepared = await extracted.prepare(0);
  const type = prepared.statementType as number;
  if (type !== SELECT_STATEMENT && type !== EXPLAIN_STATEMENT) {
    return {
      refused: `refused: this statement would change the database; ${where} is read-only`,
    };
  }
  return { prepared };
}

/** Runs one read-only statement on an open read-only database, at most MAX_ROWS rows back. */
export async function runReadOnly(db: LabDatabase, sql: string): Promise<SqlAnswer> {
  const why = refusal(sql);
  if (why) return { ok: false, refused: true, error: why };
  const conn = db.conn;
  // No file reads or ATTACH from the SQL box: only the results database itself.
  await conn.run("SET enable_external_access = false");
  const t0 = performance.now();
  const timer = setTimeout(() => conn.interrupt(), TIMEOUT_MS);
  try {
    const checked = await prepareReadOnly(db, sql);
    if ("refused" in checked) return { ok: false, refused: true, error: checked.refused };
    const prepared = checked.prepared;
    const reader = await prepared.runAndReadUntil(MAX_ROWS + 1);
    const columns = reader.columnNames();
    const types = reader.columnTypes().map((t) => t.toString());
    const all = reader.getRowObjectsJson() as Record<string, unknown>[];
    const truncated = all.length > MAX_ROWS || !reader.done;
    const rows = all.slice(0, MAX_ROWS);
    for (const row of rows) {
      for (const [k, v] of Object.entries(row)) {
        if (typeof v === "string" && /^-?\d+$/.test(v) && Number.isSafeInteger(Number(v))) {
          const i = columns.indexOf(k);
          if (/INT/.test(types[i] ?? "")) row[k] = Number(v);
        }
      }
    }
    return { ok: true, columns, types, rows, truncated, ms: performance.now() - t0 };
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    return {
      ok: false,
      refused: /read-only mode|Permission Error/i.test(msg),
      error: /INTERRUPT/i.test(msg)
        ? `query stopped after ${TIMEOUT_MS / 1000} s: narrow it (WHERE, LIMIT)`
        : msg,
    };
  } finally {
    clearTimeout(timer);
  }
}
