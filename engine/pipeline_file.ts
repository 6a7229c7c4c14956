// Loading a pipeline file: import it and check that its default export is a pipeline().
import { relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isPipeline, type Pipeline } from "./build.ts";
import { LabError } from "./errors.ts";

/** A pipeline loaded from its file. */
export interface LoadedPipeline {
  /** The pipeline the file's default export defines. */
  pipeline: Pipeline;
  /** Absolute path of the pipeline file. */
  file: string;
  /** The path as messages show it (relative to the working directory). */
  displayFile: string;
}

/** Imports a pipeline file and checks that its default export is a pipeline(). */
export async function loadPipelineFile(file: string): Promise<LoadedPipeline> {
  const abs = resolve(file);
  const displayFile = relative(Deno.cwd(), abs) || abs;
  try {
    if (!Deno.statSync(abs).isFile) throw new Error();
  } catch {
    throw new LabError(`pipeline file not found: ${file}`);
  }
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(abs).href);
  } catch (e) {
    if (e instanceof LabError) throw new LabError(`${displayFile}: ${e.message}`);
    throw new LabError(
      `pipeline file ${displayFile} failed to load: ${(e as Error)?.message ?? e}`,
    );
  }
  if (!isPipeline(mod.default)) {
    throw new LabError(
      `${displayFile} has no default export made by pipeline(name, build); add \`export default pipeline("name", (h) => { ... })\``,
    );
  }
  return { pipeline: mod.default, file: abs, displayFile };
}
