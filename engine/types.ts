// The engine's shared shapes: sweep coordinates, result rows, cache entry metadata and a stage's
// context.
import type { z } from "zod";
import type { Device } from "./environment.ts";

/** A sweep coordinate value. */
export type Scalar = string | number | boolean | null;
/** Sweep coordinates of a node: sweep name -> value. */
export type Coords = Record<string, Scalar>;
/** One result row as a stage records it. */
export type Row = Record<string, unknown>;

/** What meta.json of a cache entry holds. */
export interface EntryMeta {
  /** The meta.json format's version. */
  version: 1;
  /** The entry's cache key. */
  key: string;
  /** The stage kind. */
  kind: string;
  /** The stage name. */
  name: string;
  /** The pipeline's name. */
  pipeline: string;
  /** The pipeline file the stage was planned from. */
  pipelineFile: string;
  /** Validated params with defaults filled in. */
  params: unknown;
  /** The cache keys of its inputs by name. */
  inputs: Record<string, string | string[] | null>;
  /** Its sweep coordinates. */
  coords: Coords;
  /** The result-changing environment that went into the key. */
  env: Record<string, unknown>;
  /** The hash of the stage's source. */
  source: string;
  /** Where the stage asked to run. */
  device: Device;
  /** The machine it ran on. */
  host: string;
  /** How the stage ended. */
  status: "ok" | "failed";
  /** When it started (ISO time). */
  startedAt: string;
  /** When it finished (ISO time). */
  finishedAt: string;
  /** Seconds it ran. */
  wallS: number;
  /** Rows recorded, by table. */
  records: Record<string, number>;
  /** What run() returned (JSON). */
  output?: unknown;
  /** What went wrong, when it failed. */
  error?: { message: string; stack?: string };
  /** The key's parts beyond params, inputs and env (source files, npm packages, keyExtra). */
  keyParts?: { files: Record<string, string>; npm: Record<string, string>; extra: unknown };
  /** What produced it (lab commit, Deno, libtorch, kernels, device); not part of the key. */
  provenance?: Record<string, unknown>;
}

/** A finished input of a stage, as the stage's `ctx.inputs` shows it. */
export interface InputInfo {
  /** Cache key of the input stage. */
  key: string;
  /** The input stage's kind. */
  kind: string;
  /** The input stage's name. */
  name: string;
  /** The finished cache folder: results/cache/<key>. */
  dir: string;
  /** Its artifacts folder: results/cache/<key>/artifacts. */
  artifacts: string;
  /** The input stage's params. */
  params: unknown;
  /** The input stage's sweep coordinates. */
  coords: Coords;
  /** What the input stage's run() returned (JSON). */
  output: unknown;
  /** The input's meta.json. */
  meta: EntryMeta;
  /** Its result rows, optionally only those of one table. */
  records(table?: string): Promise<Row[]>;
}

/** What a stage's run() receives. */
export interface StageContext<
  P = unknown,
  I = Record<string, InputInfo | InputInfo[] | undefined>,
> {
  /** The stage's cache key. */
  key: string;
  /** The stage kind. */
  kind: string;
  /** The stage name. */
  name: string;
  /** The pipeline's name. */
  pipeline: string;
  /** Validated params with defaults filled in. */
  params: P;
  /** Finished inputs by the names the stage declared. */
  inputs: I;
  /** The stage's sweep coordinates. */
  coords: Coords;
  /** The result-changing environment that went into the cache key. */
  env: Record<string, unknown>;
  /** Where the stage runs. */
  device: Device;
  /** The folder to write artifacts into (a temporary folder, renamed into the cache on success). */
  outDir: string;
  /** Directory that relative paths in params refer to (the coordinator's working directory). */
  cwd: string;
  /** Aborted when the run is interrupted; long stages should check it. */
  signal: AbortSignal;
  /** Appends a result row to `table` (metrics, profiles, evals, train_steps, layer_sensitivity or any custom name). */
  record(table: string, row: Row): void;
  /** Shortcut for record("metrics", { name, value, unit }). */
  metric(name: string, value: number, unit?: string): void;
  /** Reports progress, e.g. progress(120, 500, "train step"). */
  progress(done: number, total?: number, message?: string): void;
  /** A log line, kept in the entry's log.txt and shown by the progress display. */
  log(message: string): void;
}

/** Runtime description of a stage kind. */
export interface StageDef {
  /** The stage kind. */
  kind: string;
  /** The params schema. */
  schema: z.ZodType;
  /** The declared inputs. */
  inputs: { name: string; optional: boolean; list: boolean }[];
  /** Where the stage runs. */
  device: Device;
  /** Whether it runs alone (timing measurements). */
  exclusive: boolean;
  /** The module that defines the stage (its source goes into the key). */
  moduleUrl: string;
  /** Where defineStage was called, for messages. */
  definedAt?: { line: number; col: number };
  /** Extra key material from the params (e.g. hashes of the files they name). */
  keyExtra?: (params: never, cwd: string) => unknown | Promise<unknown>;
  /** The stage's work. */
  run: (ctx: StageContext<never, never>) => unknown | Promise<unknown>;
}
