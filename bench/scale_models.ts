// The real-size benchmark models: generated once into a reusable folder (default
// results/bench-models/, ignored by git), reused while complete, and easy to delete.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  createSyntheticModel,
  readSyntheticInfo,
  type SyntheticModelSummary,
  type SyntheticShapeName,
} from "../models/synthetic.ts";

/** Where benchmark models live unless --models-dir says otherwise. */
export const DEFAULT_MODELS_DIR = fileURLToPath(
  new URL("../results/bench-models", import.meta.url),
);

/** What the bench needs: a shape, stored dtype and shard count. */
export interface ModelSpec {
  shape: SyntheticShapeName;
  dtype: "float32" | "bfloat16";
  shards: number;
  seed: number;
}

/** The folder name of a spec, e.g. `llama-3.2-1b-float32` or `llama-3.1-8b-bfloat16-4shards`. */
export function specFolder(s: ModelSpec): string {
  const shards = s.shards > 1 ? `-${s.shards}shards` : "";
  const seed = s.seed ? `-seed${s.seed}` : "";
  return `${s.shape}-${s.dtype}${shards}${seed}`;
}

function matches(info: SyntheticModelSummary | null, s: ModelSpec): boolean {
  return !!info && info.shape === s.shape && info.dtype === s.dtype && info.shards === s.shards &&
    info.seed === s.seed;
}

/**
 * The folder holding `spec` under `root`, generated first when absent. A complete folder (its
 * marker written last) is reused; a folder without a matching marker is refused, never deleted.
 */
export function ensureModel(root: string, spec: ModelSpec, log: (s: string) => void): string {
  const dir = join(root, specFolder(spec));
  const info = readSyntheticInfo(dir);
  if (matches(info, spec)) {
    log(`  reusing ${dir} (${(info!.bytes / 1e9).toFixed(2)} GB)`);
    return dir;
  }
  let exists = false;
  try {
    Deno.statSync(dir);
    exists = true;
  } catch {
    // absent: generate it
  }
  if (exists) {
    throw new Error(
      `${dir} exists but is not a complete ${specFolder(spec)} benchmark model. ` +
        `Delete it (rm -rf ${dir}) and run again.`,
    );
  }
  Deno.mkdirSync(root, { recursive: true });
  // Stale temporary folders of interrupted runs would only take disk: remove them.
  for (const e of Deno.readDirSync(root)) {
    if (e.name.startsWith(`${specFolder(spec)}.tmp-`)) {
      Deno.removeSync(join(root, e.name), { recursive: true });
    }
  }
  log(`  generating ${dir} (random weights, written once, reused by later runs)…`);
  const t0 = performance.now();
  let lastPct = -10;
  const made = createSyntheticModel({
    out: dir,
    shape: spec.shape,
    dtype: spec.dtype,
    shards: spec.shards,
    seed: spec.seed,
    onProgress: (done, total) => {
      const pct = Math.floor((100 * done) / total);
      if (pct >= lastPct + 10) {
        lastPct = pct - (pct % 10);
        const s = (performance.now() - t0) / 1000;
        log(
          `    ${String(lastPct).padStart(3)}% of ${(total / 1e9).toFixed(2)} GB, ${
            s.toFixed(0)
          } s`,
        );
      }
    },
  });
  log(
    `  wrote ${(made.parameters / 1e9).toFixed(2)}B parameters, ${
      (made.bytes / 1e9).toFixed(2)
    } GB ` +
      `in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
  return dir;
}
