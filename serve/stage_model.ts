// The model folder a finished stage left in the results cache, for `lab serve-model --stage KEY`.
import { join } from "node:path";
import { CacheStore } from "../engine/cache.ts";
import type { InputInfo } from "../engine/mod.ts";
import { LabError } from "../errors.ts";
import { modelSource } from "../stages/model_input.ts";

/** The checkpoint folder of the stage whose cache key is (or starts with) `key`. */
export function stageModelDir(resultsDir: string, key: string): string {
  const cache = new CacheStore(resultsDir);
  const keys = [...cache.keys()].filter((k) => k.startsWith(key));
  if (keys.length !== 1) {
    throw new LabError(
      keys.length === 0
        ? `--stage ${key}: no finished stage in ${resultsDir} has a key starting so (see lab plan)`
        : `--stage ${key}: ${keys.length} stages match; give more of the key`,
    );
  }
  const meta = cache.readMeta(keys[0]);
  const dir = cache.entryDir(keys[0]);
  const input = { ...meta, key: keys[0], dir, artifacts: join(dir, "artifacts") } as unknown;
  const { dir: model, adapter } = modelSource(input as InputInfo);
  if (adapter) {
    throw new LabError(`--stage ${key}: that stage left a LoRA adapter; serve a merged model`);
  }
  return model;
}
