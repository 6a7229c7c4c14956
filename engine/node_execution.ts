// Running one planned node: its stage in a fresh cache entry, records checked against their tables,
// the entry committed.
import { hostname } from "node:os";
import { join } from "node:path";
import { CacheStore } from "./cache.ts";
import { describeError } from "./errors.ts";
import { provenance } from "./provenance.ts";
import type { Plan, PlanNode } from "./plan.ts";
import { RECORD_TABLE_BY_NAME, RESERVED_TABLES } from "./tables.ts";
import type { EntryMeta, InputInfo, Row, StageContext } from "./types.ts";

/** How one attempt at a node ended. */
export interface NodeResult {
  /** How the attempt ended. */
  status: "ok" | "failed" | "interrupted";
  /** Seconds the stage ran. */
  wallS: number;
  /** What went wrong, when it failed or was interrupted. */
  error?: { message: string; stack?: string };
  /** The cache entry's meta.json, when it finished. */
  meta?: EntryMeta;
}

/** Callbacks a running stage reports through. */
export interface NodeHooks {
  /** The stage reported progress: `done` of `total` steps, with an optional message. */
  onProgress?(done: number, total: number | undefined, message: string | undefined): void;
  /** The stage logged a line. */
  onLog?(message: string): void;
}

/** Checks a row against the table it goes to; throws a message naming stage, table and column. */
export function checkRecord(stageName: string, table: string, row: Row): void {
  if (typeof table !== "string" || !/^[A-Za-z_]\w*$/.test(table)) {
    throw new TypeError(
      `stage "${stageName}": record table name must be an identifier, got ${JSON.stringify(table)}`,
    );
  }
  if (RESERVED_TABLES.has(table)) {
    throw new TypeError(
      `stage "${stageName}": table "${table}" is filled by the runner; pick another name`,
    );
  }
  if (typeof row !== "object" || row === null || Array.isArray(row)) {
    throw new TypeError(`stage "${stageName}": record(${table}, row): row must be an object`);
  }
  if ("key" in row) {
    throw new TypeError(
      `stage "${stageName}": record(${table}): column "key" is added by the runner`,
    );
  }
  const def = RECORD_TABLE_BY_NAME.get(table);
  if (def) {
    for (const [col, v] of Object.entries(row)) {
      const type = def.columns.find(([c]) => c === col)?.[1];
      if (!type) {
        throw new TypeError(
          `stage "${stageName}": table ${table} has no column "${col}" (columns: ${
            def.columns.map(([c]) => c).join(", ")
          })`,
        );
      }
      if (v === null || v === undefined || type === "JSON") continue;
      const ok = type === "DOUBLE"
        ? typeof v === "number"
        : type === "BIGINT"
        ? Number.isInteger(v)
        : type === "BOOLEAN"
        ? typeof v === "boolean"
        : type === "TIMESTAMP"
        ? typeof v === "string" || typeof v === "number"
        : typeof v === "string" || typeof v === "number" || typeof v === "boolean";
      if (!ok) {
        throw new TypeError(
          `stage "${stageName}": ${table}.${col} is ${type}, got ${JSON.stringify(v)}`,
        );
      }
    }
  } else {
    for (const col of Object.keys(row)) {
      if (!/^[A-Za-z_]\w*$/.test(col)) {
        throw new TypeError(
          `stage "${stageName}": column name ${
            JSON.stringify(col)
          } in ${table} must be an identifier`,
        );
      }
    }
  }
}

/** Builds what ctx.inputs shows for a finished entry. */
export function inputInfo(cache: CacheStore, key: string): InputInfo {
  const meta = cache.readMeta(key);
  const dir = cache.entryDir(key);
  return {
    key,
    kind: meta.kind,
    name: meta.name,
    dir,
    artifacts: join(dir, "artifacts"),
    params: meta.params,
    coords: meta.coords,
    output: meta.output,
    meta,
    records: (table?: string) => {
      const all = cache.readRecords(key);
      return Promise.resolve(table ? all.get(table) ?? [] : [...all.values()].flat());
    },
  };
}

/**
 * Runs one node in this process: a temporary entry folder, the stage's run(), records and
 * meta, then the atomic rename. A failure leaves results/failed/<key>.json and no entry.
 */
export async function executeNode(
  node: PlanNode,
  plan: Plan,
  hooks: NodeHooks,
  signal: AbortSignal,
): Promise<NodeResult> {
  const cache = new CacheStore(plan.resultsDir);
  const started = new Date();
  const t0 = performance.now();
  const tmp = cache.makeTemp(node.key);
  const recordsFile = Deno.openSync(join(tmp, "records.jsonl"), {
    write: true,
    create: true,
    append: true,
  });
  const enc = new TextEncoder();
  let pending: string[] = [];
  let pendingBytes = 0;
  const counts: Record<string, number> = {};
  const flush = () => {
    if (!pending.length) return;
    const data = enc.encode(pending.join(""));
    let off = 0;
    while (off < data.length) off += recordsFile.writeSync(data.subarray(off));
    pending = [];
    pendingBytes = 0;
  };
  const logLines: string[] = [];
  let lastProgress = 0;

  const inputs: Record<string, InputInfo | InputInfo[] | undefined> = {};
  const base = {
    key: node.key,
    kind: node.kind,
    name: node.name,
    pipeline: plan.pipeline,
    params: node.params,
    inputs,
    coords: node.coords,
    env: node.env,
    device: node.stage.device,
    outDir: join(tmp, "artifacts"),
    cwd: Deno.cwd(),
    signal,
  };
  const ctx: StageContext = {
    ...base,
    record(table, row) {
      checkRecord(node.name, table, row);
      const line = JSON.stringify({ table, row }) + "\n";
      pending.push(line);
      pendingBytes += line.length;
      counts[table] = (counts[table] ?? 0) + 1;
      if (pendingBytes > 1 << 22) flush();
    },
    metric(name, value, unit) {
      ctx.record("metrics", unit === undefined ? { name, value } : { name, value, unit });
    },
    progress(done, total, message) {
      const now = performance.now();
      // Cheap for stages that report every step: forward at most ~20 updates a second.
      if (now - lastProgress < 50 && (total === undefined || done < total)) return;
      lastProgress = now;
      hooks.onProgress?.(done, total, message);
    },
    log(message) {
      logLines.push(`${new Date().toISOString()} ${message}`);
      hooks.onLog?.(String(message));
    },
  };

  const metaBase = (): Omit<EntryMeta, "status" | "finishedAt" | "wallS" | "records"> => ({
    version: 1,
    key: node.key,
    kind: node.kind,
    name: node.name,
    pipeline: plan.pipeline,
    pipelineFile: plan.displayFile,
    params: node.params,
    inputs: node.inputKeys,
    coords: node.coords,
    env: node.env,
    source: node.source,
    keyParts: node.keyParts,
    device: node.stage.device,
    host: hostname(),
    startedAt: started.toISOString(),
  });

  try {
    for (const inp of node.inputs) {
      const infos = inp.nodes.map((d) => inputInfo(cache, (d.aliasOf ?? d).key));
      inputs[inp.name] = inp.list ? infos : infos[0];
    }
    const output = await node.stage.run(ctx as StageContext<never, never>);
    if (signal.aborted) throw signal.reason ?? new Error("interrupted");
    flush();
    recordsFile.close();
    const wallS = (performance.now() - t0) / 1000;
    const meta: EntryMeta = {
      ...metaBase(),
      status: "ok",
      finishedAt: new Date().toISOString(),
      wallS,
      records: counts,
      provenance: provenance(node.stage.device),
      ...(output === undefined ? {} : { output: JSON.parse(JSON.stringify(output)) }),
    };
    if (logLines.length) Deno.writeTextFileSync(join(tmp, "log.txt"), logLines.join("\n") + "\n");
    Deno.writeTextFileSync(join(tmp, "meta.json"), JSON.stringify(meta, null, 2));
    cache.commit(tmp, node.key, node.forced);
    return { status: "ok", wallS, meta };
  } catch (e) {
    try {
      recordsFile.close();
    } catch { /* already closed */ }
    Deno.removeSync(tmp, { recursive: true });
    const wallS = (performance.now() - t0) / 1000;
    if (signal.aborted) return { status: "interrupted", wallS, error: { message: "interrupted" } };
    const error = describeError(e);
    const meta: EntryMeta = {
      ...metaBase(),
      status: "failed",
      finishedAt: new Date().toISOString(),
      wallS,
      records: counts,
      error,
    };
    cache.writeFailure(meta);
    return { status: "failed", wallS, error, meta };
  }
}
