// The stage cache on disk: results/cache/<key>/ entries, written through a temporary folder and
// renamed into place.
import { join } from "node:path";
import type { EntryMeta, Row } from "./types.ts";

/** One cache entry as `lab cache ls` shows it. */
export interface EntryInfo {
  key: string;
  dir: string;
  meta?: EntryMeta;
  bytes: number;
}

function isAlive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * The stage cache: results/cache/<key>/ (meta.json, records.jsonl, log.txt, artifacts/),
 * written through results/cache/.tmp-<key>-<pid>-<n>/ and renamed into place when complete,
 * so that an entry either is whole or does not exist. Failed attempts are kept apart in
 * results/failed/<key>.json and never count as cached.
 */
export class CacheStore {
  readonly resultsDir: string;
  readonly cacheDir: string;
  readonly failedDir: string;
  readonly runsDir: string;

  constructor(resultsDir: string) {
    this.resultsDir = resultsDir;
    this.cacheDir = join(resultsDir, "cache");
    this.failedDir = join(resultsDir, "failed");
    this.runsDir = join(resultsDir, "runs");
  }

  entryDir(key: string): string {
    return join(this.cacheDir, key);
  }

  /** Keys of all finished entries. */
  keys(): Set<string> {
    const out = new Set<string>();
    try {
      for (const e of Deno.readDirSync(this.cacheDir)) {
        if (e.isDirectory && !e.name.startsWith(".")) out.add(e.name);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out;
  }

  has(key: string): boolean {
    try {
      return Deno.statSync(this.entryDir(key)).isDirectory;
    } catch {
      return false;
    }
  }

  readMeta(key: string): EntryMeta {
    return JSON.parse(Deno.readTextFileSync(join(this.entryDir(key), "meta.json")));
  }

  /** Result rows of an entry, grouped by table. */
  readRecords(key: string): Map<string, Row[]> {
    const out = new Map<string, Row[]>();
    let text: string;
    try {
      text = Deno.readTextFileSync(join(this.entryDir(key), "records.jsonl"));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return out;
      throw e;
    }
    for (const line of text.split("\n")) {
      if (!line) continue;
      const { table, row } = JSON.parse(line) as { table: string; row: Row };
      let list = out.get(table);
      if (!list) out.set(table, list = []);
      list.push(row);
    }
    return out;
  }

  /** A fresh temporary entry folder (with artifacts/) for `key`. */
  makeTemp(key: string): string {
    Deno.mkdirSync(this.cacheDir, { recursive: true });
    const dir = join(this.cacheDir, `.tmp-${key}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
    Deno.mkdirSync(join(dir, "artifacts"), { recursive: true });
    return dir;
  }

  /** Renames a complete temporary folder into place. With replace, an existing entry gives way. */
  commit(tmp: string, key: string, replace: boolean): void {
    const final = this.entryDir(key);
    try {
      Deno.renameSync(tmp, final);
    } catch (e) {
      if (!this.has(key)) throw e;
      if (!replace) {
        // Another worker finished the same key first: same inputs, same result.
        Deno.removeSync(tmp, { recursive: true });
        return;
      }
      const trash = join(
        this.cacheDir,
        `.trash-${key}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`,
      );
      Deno.renameSync(final, trash);
      Deno.renameSync(tmp, final);
      Deno.removeSync(trash, { recursive: true });
    }
    this.clearFailure(key);
  }

  writeFailure(meta: EntryMeta): void {
    Deno.mkdirSync(this.failedDir, { recursive: true });
    const path = join(this.failedDir, `${meta.key}.json`);
    Deno.writeTextFileSync(path + ".tmp", JSON.stringify(meta, null, 2));
    Deno.renameSync(path + ".tmp", path);
  }

  readFailure(key: string): EntryMeta | undefined {
    try {
      return JSON.parse(Deno.readTextFileSync(join(this.failedDir, `${key}.json`)));
    } catch {
      return undefined;
    }
  }

  clearFailure(key: string): void {
    try {
      Deno.removeSync(join(this.failedDir, `${key}.json`));
    } catch { /* none */ }
  }

  /** Removes temporary and trash folders left by processes that no longer run. */
  cleanTemps(): string[] {
    const removed: string[] = [];
    try {
      for (const e of Deno.readDirSync(this.cacheDir)) {
        const m = e.name.match(/^\.(?:tmp|trash)-[0-9a-f]+-(\d+)-/);
        if (!m || isAlive(Number(m[1]))) continue;
        Deno.removeSync(join(this.cacheDir, e.name), { recursive: true });
        removed.push(e.name);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return removed;
  }

  /** Every entry with its meta and size. */
  list(): EntryInfo[] {
    const out: EntryInfo[] = [];
    for (const key of this.keys()) {
      const dir = this.entryDir(key);
      let meta: EntryMeta | undefined;
      try {
        meta = this.readMeta(key);
      } catch { /* unreadable: listed without meta */ }
      out.push({ key, dir, meta, bytes: dirSize(dir) });
    }
    return out.sort((a, b) => (a.meta?.finishedAt ?? "").localeCompare(b.meta?.finishedAt ?? ""));
  }

  remove(key: string): void {
    const trash = join(
      this.cacheDir,
      `.trash-${key}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`,
    );
    Deno.renameSync(this.entryDir(key), trash);
    Deno.removeSync(trash, { recursive: true });
  }
}

function dirSize(dir: string): number {
  let total = 0;
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) total += dirSize(p);
    else if (e.isFile) total += Deno.statSync(p).size;
  }
  return total;
}
