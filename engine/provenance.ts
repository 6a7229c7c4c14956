/**
 * Where a result came from: the lab's own version (git commit, dirty or not), Deno, the OS —
 * plus what the torch side adds through a provider (libtorch version and build, the kernels'
 * instruction set, threads, the device). Stored in each cache entry's meta.json and loaded into
 * the `environments` table; unlike the key's environment it changes no cache key, so a new
 * commit re-runs nothing but every row still says what produced it.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

/** Adds fields to the provenance of a stage that just ran on `device`. */
export type ProvenanceProvider = (info: { device: string }) => Record<string, unknown>;

let provider: ProvenanceProvider = () => ({});
let base: Record<string, unknown> | undefined;

/** Registers the torch side's provider (the engine never imports torch). */
export function setProvenanceProvider(fn: ProvenanceProvider | undefined): void {
  provider = fn ?? (() => ({}));
}

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

function git(args: string[]): string | null {
  try {
    const out = new Deno.Command("git", {
      args: ["-C", ROOT, ...args],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch {
    return null;
  }
}

/** The lab's git commit and whether tracked files differ from it; nulls outside a checkout. */
export function labVersion(): { commit: string | null; dirty: boolean | null } {
  const commit = git(["rev-parse", "HEAD"])?.trim() || null;
  if (!commit) return { commit: null, dirty: null };
  const status = git(["status", "--porcelain", "--untracked-files=no"]);
  return { commit, dirty: status === null ? null : status.trim().length > 0 };
}

/** The provenance of a stage that just ran on `device` (the process-wide part is memoised). */
export function provenance(device: string): Record<string, unknown> {
  if (!base) {
    const v = labVersion();
    base = {
      lab_commit: v.commit,
      lab_dirty: v.dirty,
      deno: Deno.version.deno,
      os: `${Deno.build.os}-${Deno.build.arch}`,
    };
  }
  let extra: Record<string, unknown> = {};
  try {
    extra = provider({ device });
  } catch (e) {
    extra = { provenance_error: (e as Error).message };
  }
  return { ...base, ...extra };
}
