/**
 * Content hashes of the files a stage names (checkpoints, data sets), for cache keys. Size and
 * mtime miss a file rewritten in place within the same second or copied with its times kept;
 * content does not. Hashing a 16 GB checkpoint takes a while, so each hash is remembered per
 * (path, device, inode, size, mtime) in a small file under the user's cache folder, shared by
 * the coordinator and its workers (which re-plan): an unchanged file is read once.
 */
import { createBLAKE3 } from "hash-wasm";
import { dirname, join } from "node:path";

const hasher = await createBLAKE3();
const CHUNK = 8 << 20;
const MAX_ENTRIES = 20_000;

interface Memo {
  dev: number;
  ino: number;
  size: number;
  mtime: number;
  hash: string;
}

let memo: Record<string, Memo> | undefined;
let dirty = false;

/** Where hashes are remembered: $LAB_HASH_CACHE, else ~/.cache/llm-lab/file_hashes.json. */
export function hashMemoPath(): string {
  const explicit = Deno.env.get("LAB_HASH_CACHE");
  if (explicit) return explicit;
  const base = Deno.env.get("XDG_CACHE_HOME") ?? join(Deno.env.get("HOME") ?? "/tmp", ".cache");
  return join(base, "llm-lab", "file_hashes.json");
}

function loadMemo(): Record<string, Memo> {
  if (memo) return memo;
  try {
    memo = JSON.parse(Deno.readTextFileSync(hashMemoPath()));
  } catch {
    memo = {};
  }
  return memo!;
}

function saveMemo(): void {
  if (!dirty || !memo) return;
  const path = hashMemoPath();
  const entries = Object.entries(memo);
  if (entries.length > MAX_ENTRIES) memo = Object.fromEntries(entries.slice(-MAX_ENTRIES));
  try {
    Deno.mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${Deno.pid}.tmp`;
    Deno.writeTextFileSync(tmp, JSON.stringify(memo));
    Deno.renameSync(tmp, path);
    dirty = false;
  } catch { /* a read-only home only costs re-hashing */ }
}

/** Counts of files actually read (not answered from the memo), for tests. */
export const hashStats = { read: 0 };

/**
 * BLAKE3 of a file's contents (hex, 32 characters), streamed; answered from the memo while the
 * file's identity, size and mtime are unchanged. Throws Deno.errors.NotFound for a missing file.
 */
export function hashFile(path: string): string {
  const st = Deno.statSync(path);
  const id = {
    dev: st.dev ?? 0,
    ino: st.ino ?? 0,
    size: st.size,
    mtime: st.mtime?.getTime() ?? 0,
  };
  const m = loadMemo();
  const hit = m[path];
  if (
    hit && hit.dev === id.dev && hit.ino === id.ino && hit.size === id.size &&
    hit.mtime === id.mtime
  ) return hit.hash;
  hasher.init();
  const buf = new Uint8Array(CHUNK);
  using f = Deno.openSync(path, { read: true });
  for (;;) {
    const n = f.readSync(buf);
    if (n === null || n === 0) break;
    hasher.update(buf.subarray(0, n));
  }
  const hash = hasher.digest("hex").slice(0, 32);
  hashStats.read++;
  delete m[path]; // re-insert last: the memo keeps the most recent entries
  m[path] = { ...id, hash };
  dirty = true;
  saveMemo();
  return hash;
}
