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
  version: 1;
  key: string;
  kind: string;
  name: string;
  pipeline: string;
  pipelineFile: string;
  params: unknown;
  inputs: Record<string, string | string[] | null>;
  coords: Coords;
  env: Record<string, unknown>;
  source: string;
  device: Device;
  host: string;
  status: "ok" | "failed";
  startedAt: string;
  finishedAt: string;
  wallS: number;
  records: Record<string, number>;
  output?: unknown;
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
  kind: string;
  name: string;
  /** The finished cache folder: results/cache/<key>. */
  dir: string;
  /** Its artifacts folder: results/cache/<key>/artifacts. */
  artifacts: string;
  params: unknown;
  coords: Coords;
  /** What the input stage's run() returned (JSON). */
  output: unknown;
  meta: EntryMeta;
  /** Its result rows, optionally only those of one table. */
  records(table?: string): Promise<Row[]>;
}

/** What a stage's run() receives. */
export interface StageContext<
  P = unknown,
  I = Record<string, InputInfo | InputInfo[] | undefined>,
> {
  key: string;
  kind: string;
  name: string;
  pipeline: string;
  /** Validated params with defaults filled in. */
  params: P;
  /** Finished inputs by the names the stage declared. */
  inputs: I;
  coords: Coords;
  /** The result-changing environment that went into the cache key. */
  env: Record<string, unknown>;
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
  kind: string;
  schema: z.ZodType;
  inputs: { name: string; optional: boolean; list: boolean }[];
  device: Device;
  exclusive: boolean;
  moduleUrl: string;
  definedAt?: { line: number; col: number };
  keyExtra?: (params: never, cwd: string) => unknown | Promise<unknown>;
  run: (ctx: StageContext<never, never>) => unknown | Promise<unknown>;
}
