// `lab cache ls` and `lab cache gc`: listing cache entries and removing those no pipeline
// references.
import type { Command } from "commander";
import { join, resolve } from "node:path";
import { CacheStore } from "../../engine/cache.ts";
import { LabError } from "../../engine/errors.ts";
import { lockResults } from "../../engine/lock.ts";
import { loadPipelineFile, planPipeline } from "../../engine/plan.ts";
import { formatDuration } from "../../engine/progress.ts";
import { formatTable, resultsDir } from "./common.ts";

/** Parses an age like 30m, 12h, 7d, 2w into seconds. */
export function parseAge(s: string): number {
  const m = s.trim().match(/^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$/);
  if (!m) throw new LabError(`--older-than takes an age like 30m, 12h, 7d or 2w, got "${s}"`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2] as "s"];
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Keys every pipeline file in `dir` references (with the current sources and environment). */
export async function referencedKeys(
  dir: string,
  results: string,
): Promise<{ keys: Set<string>; files: string[] }> {
  const keys = new Set<string>();
  const files: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    throw new LabError(`pipelines folder not found: ${dir} (pass --pipelines DIR)`);
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!e.isFile || !/\.(ts|js|mts|mjs)$/.test(e.name)) continue;
    const file = join(dir, e.name);
    let loaded;
    try {
      loaded = await loadPipelineFile(file);
    } catch (err) {
      if (err instanceof LabError && /has no default export made by pipeline/.test(err.message)) {
        continue;
      }
      throw new LabError(
        `cannot tell which cache entries ${file} needs: ${(err as Error).message}`,
      );
    }
    const plan = await planPipeline(loaded, { resultsDir: results, checkCache: false });
    for (const n of [...plan.nodes, ...plan.aliases]) keys.add(n.key);
    files.push(file);
  }
  return { keys, files };
}

/** `lab cache ls`, `lab cache gc` */
export function register(program: Command): void {
  const cache = program.command("cache").description(
    "inspect and clean the stage cache (results/cache)",
  );
  cache.command("ls")
    .description("list cache entries")
    .option("--json", "print entries as JSON")
    .action((opts, cmd: Command) => {
      const store = new CacheStore(resultsDir(cmd));
      const list = store.list();
      if (opts.json) {
        console.log(
          JSON.stringify(
            list.map((e) => ({
              key: e.key,
              bytes: e.bytes,
              ...e.meta &&
                {
                  kind: e.meta.kind,
                  name: e.meta.name,
                  pipeline: e.meta.pipeline,
                  finishedAt: e.meta.finishedAt,
                  wallS: e.meta.wallS,
                  records: e.meta.records,
                },
            })),
            null,
            2,
          ),
        );
        return;
      }
      const rows = list.map((e) => ({
        key: e.key.slice(0, 12),
        kind: e.meta?.kind ?? "?",
        name: e.meta?.name ?? "?",
        pipeline: e.meta?.pipeline ?? "?",
        finished: e.meta?.finishedAt?.replace("T", " ").slice(0, 19) ?? "?",
        wall: e.meta ? formatDuration(e.meta.wallS) : "?",
        records: e.meta ? Object.values(e.meta.records).reduce((a, b) => a + b, 0) : 0,
        size: formatBytes(e.bytes),
      }));
      console.log(
        formatTable(
          ["key", "kind", "name", "pipeline", "finished", "wall", "records", "size"],
          rows,
        ),
      );
      const total = list.reduce((a, e) => a + e.bytes, 0);
      let failed = 0;
      try {
        failed = [...Deno.readDirSync(store.failedDir)].length;
      } catch { /* none */ }
      console.log(
        `${list.length} entries, ${formatBytes(total)}${
          failed ? `; ${failed} failed attempts in ${store.failedDir}` : ""
        }`,
      );
    });

  cache.command("gc")
    .description(
      "remove entries that no pipeline in pipelines/ references (and, with --older-than, entries older than that)",
    )
    .option("--pipelines <dir>", "folder of pipeline files whose stages to keep", "pipelines")
    .option(
      "--older-than <age>",
      "also remove entries finished longer ago than this (30m, 12h, 7d, 2w), referenced or not",
    )
    .option("--dry-run", "list what would be removed")
    .option("--wait", "wait for another lab process to release the results folder")
    .action(async (opts, cmd: Command) => {
      const dir = resultsDir(cmd);
      const maxAge = opts.olderThan ? parseAge(opts.olderThan) : undefined;
      const lock = await lockResults(dir, { purpose: "lab cache gc", wait: opts.wait });
      try {
        const store = new CacheStore(dir);
        // Counts below are of cache entries: a pipeline may reference keys no entry holds yet.
        const { keys: keep, files } = await referencedKeys(resolve(opts.pipelines), dir);
        const now = Date.now();
        const entries = store.list();
        const doomed = entries.filter((e) => {
          if (!keep.has(e.key)) return true;
          if (maxAge === undefined) return false;
          const t = Date.parse(e.meta?.finishedAt ?? "");
          return !Number.isFinite(t) || (now - t) / 1000 > maxAge;
        });
        const bytes = doomed.reduce((a, e) => a + e.bytes, 0);
        for (const e of doomed) {
          console.log(
            `${opts.dryRun ? "would remove" : "remove"} ${e.key.slice(0, 12)} ${
              e.meta?.name ?? ""
            } (${formatBytes(e.bytes)})`,
          );
        }
        if (!opts.dryRun) {
          for (const e of doomed) store.remove(e.key);
          const temps = store.cleanTemps();
          if (doomed.length) {
            try {
              Deno.statSync(join(dir, "lab.duckdb"));
              const { LabDatabase, databasePath } = await import("../../engine/store.ts");
              const db = await LabDatabase.open(databasePath(dir));
              try {
                await db.transaction(() => db.forgetEntries(doomed.map((e) => e.key)));
                await db.refreshViews();
              } finally {
                db.close();
              }
            } catch (err) {
              if (!(err instanceof Deno.errors.NotFound)) throw err;
            }
          }
          if (temps.length) console.log(`removed ${temps.length} leftover temporary folders`);
        }
        console.log(
          `${opts.dryRun ? "would remove" : "removed"} ${doomed.length} entries (${
            formatBytes(bytes)
          }); kept ${entries.length - doomed.length} referenced by ${files.length} pipeline files`,
        );
      } finally {
        lock.release();
      }
    });
}
