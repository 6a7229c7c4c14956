// Building a pipeline: pipeline(), the sweep helpers, and the nodes and handles stage builders
// record.
import type { SlurmSettings } from "./executors/slurm_settings.ts";
import type { Coords, Scalar, StageDef } from "./types.ts";
import { fromYaml } from "./yaml.ts";
import { seededRandom } from "../seeded_random.ts";

export const HANDLE: unique symbol = Symbol.for("lab.handle");
export const PIPELINE: unique symbol = Symbol.for("lab.pipeline");

/** What a stage builder returns; later stages take it as an input. */
export interface StageHandle<K extends string = string> {
  /** The stage kind of the node this handle stands for. */
  readonly kind: K;
  /** The node recorded when the stage builder was called (or a reference by name). */
  readonly [HANDLE]: NodeSpec | { ref: string };
  /** Gives the node an explicit name (used by --only, --force, plan and the stages table). */
  named(name: string): this;
}

/** A node as recorded while building: nothing validated yet. */
export interface NodeSpec {
  id: number;
  stage: StageDef;
  inputArgs: unknown[];
  rawParams: unknown;
  /** Coordinates of the sweeps around the builder call. */
  loopCoords: Coords;
  explicitName?: string;
  problems: string[];
  handle: StageHandle;
}

/** The helpers a pipeline's build function receives. */
export interface BuildHelpers {
  /** Iterates `values`, tagging every node created in the loop body with coordinate name=value. */
  sweep<T>(name: string, values: readonly T[]): Iterable<T>;
  /** Iterates axes in lockstep: zip({ lr: [1e-4, 3e-4], rank: [8, 16] }) gives 2 points. */
  zip<A extends Record<string, readonly unknown[]>>(
    axes: A,
  ): Iterable<{ [K in keyof A]: A[K][number] }>;
  /** Iterates the full grid (cartesian product) of the axes. */
  grid<A extends Record<string, readonly unknown[]>>(
    axes: A,
  ): Iterable<{ [K in keyof A]: A[K][number] }>;
  /** Iterates `n` points of the grid drawn without replacement with a seeded generator. */
  sample<A extends Record<string, readonly unknown[]>>(
    axes: A,
    opts: { n: number; seed?: number },
  ): Iterable<{ [K in keyof A]: A[K][number] }>;
  /** A handle to the node named `name`, which may be defined later in the build. */
  ref(name: string): StageHandle;
  /** Reads a YAML config (a section of it with `path`), resolved against the working directory. */
  fromYaml: typeof fromYaml;
}

/** A pipeline definition; the default export of a pipeline file. */
export interface Pipeline {
  /** Marks a value as a pipeline. */
  readonly [PIPELINE]: true;
  /** The pipeline's name, as the runs table shows it. */
  readonly name: string;
  /** The function that records the pipeline's stages. */
  readonly build: (helpers: BuildHelpers) => void | Promise<void>;
  /** Options given to pipeline() (Slurm settings and per-stage overrides). */
  readonly options: PipelineOptions;
}

/** Optional behaviour of a pipeline. */
export interface PipelineOptions {
  /** A table `lab run` prints from DuckDB when the run ends, with the SQL that made it. */
  summary?: { title?: string; sql: string };
  /** How `lab run --executor slurm` submits this pipeline's stages (flags and LAB_SLURM_* win). */
  slurm?: SlurmSettings;
}

/** Declares a pipeline. `build` calls stage builders; nothing runs while building. */
export function pipeline(
  name: string,
  build: (helpers: BuildHelpers) => void | Promise<void>,
  options: PipelineOptions = {},
): Pipeline {
  if (typeof name !== "string" || !name) {
    throw new TypeError("pipeline(name, build): name must be a non-empty string");
  }
  if (typeof build !== "function") {
    throw new TypeError(`pipeline(${name}): build must be a function`);
  }
  return { [PIPELINE]: true, name, build, options };
}

/** Whether `v` is a pipeline made by pipeline(). */
export function isPipeline(v: unknown): v is Pipeline {
  return typeof v === "object" && v !== null && (v as Pipeline)[PIPELINE] === true;
}

/** Whether `v` is a stage handle. */
export function isHandle(v: unknown): v is StageHandle {
  return typeof v === "object" && v !== null && HANDLE in v;
}

/** Records nodes while a build function runs. */
export class BuildContext {
  readonly nodes: NodeSpec[] = [];
  private coordStack: [string, Scalar][] = [];

  addNode(stage: StageDef, inputArgs: unknown[], rawParams: unknown): NodeSpec {
    const node = {
      id: this.nodes.length,
      stage,
      inputArgs,
      rawParams,
      loopCoords: Object.fromEntries(this.coordStack),
      problems: [],
    } as unknown as NodeSpec;
    node.handle = makeHandle(stage.kind, node);
    this.nodes.push(node);
    return node;
  }

  private *iterate<T>(items: readonly T[], coordsOf: (t: T) => [string, unknown][]): Generator<T> {
    for (const item of items) {
      const pairs = coordsOf(item);
      for (const [name] of pairs) {
        if (this.coordStack.some(([n]) => n === name)) {
          throw new TypeError(`sweep "${name}" is nested inside a sweep of the same name`);
        }
      }
      const depth = this.coordStack.length;
      for (const [name, v] of pairs) this.coordStack.push([name, toScalar(v)]);
      try {
        yield item;
      } finally {
        this.coordStack.length = depth;
      }
    }
  }

  helpers(): BuildHelpers {
    return {
      sweep: <T>(name: string, values: readonly T[]) => {
        checkAxis(name, values);
        return this.iterate(values, (v) => [[name, v]]);
      },
      zip: (axes) => {
        const names = Object.keys(axes);
        for (const n of names) checkAxis(n, axes[n]);
        const lens = new Set(names.map((n) => axes[n].length));
        if (lens.size > 1) {
          throw new TypeError(
            `zip: all axes need the same length, got ${
              names.map((n) => `${n}=${axes[n].length}`).join(", ")
            }`,
          );
        }
        const n = names.length ? axes[names[0]].length : 0;
        const points = Array.from(
          { length: n },
          (_, i) => Object.fromEntries(names.map((k) => [k, axes[k][i]])),
        );
        // deno-lint-ignore no-explicit-any
        return this.iterate(points as any[], (p) => Object.entries(p));
      },
      grid: (axes) => {
        const points = gridPoints(axes);
        // deno-lint-ignore no-explicit-any
        return this.iterate(points as any[], (p) => Object.entries(p));
      },
      sample: (axes, opts) => {
        const points = gridPoints(axes);
        const n = Math.min(opts.n, points.length);
        if (!Number.isInteger(opts.n) || opts.n < 0) {
          throw new TypeError(`sample: n must be a non-negative integer, got ${opts.n}`);
        }
        const rand = seededRandom(opts.seed ?? 0);
        // Partial Fisher-Yates on indices, then restore grid order so output is stable and readable.
        const idx = points.map((_, i) => i);
        for (let i = 0; i < n; i++) {
          const j = i + Math.floor(rand() * (idx.length - i));
          [idx[i], idx[j]] = [idx[j], idx[i]];
        }
        const chosen = idx.slice(0, n).sort((a, b) => a - b).map((i) => points[i]);
        // deno-lint-ignore no-explicit-any
        return this.iterate(chosen as any[], (p) => Object.entries(p));
      },
      ref: (name: string) => makeHandle("ref", { ref: name }),
      fromYaml,
    };
  }
}

function checkAxis(name: string, values: unknown): void {
  if (typeof name !== "string" || !/^[A-Za-z_]\w*$/.test(name)) {
    throw new TypeError(
      `sweep name must be an identifier (letters, digits, _), got ${JSON.stringify(name)}`,
    );
  }
  if (!Array.isArray(values)) throw new TypeError(`sweep "${name}": values must be an array`);
}

function gridPoints(axes: Record<string, readonly unknown[]>): Record<string, unknown>[] {
  let points: Record<string, unknown>[] = [{}];
  for (const [name, values] of Object.entries(axes)) {
    checkAxis(name, values);
    points = points.flatMap((p) => values.map((v) => ({ ...p, [name]: v })));
  }
  return points;
}

function toScalar(v: unknown): Scalar {
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") {
    return v;
  }
  if (v === undefined) return null;
  return JSON.stringify(v);
}

function makeHandle(kind: string, target: NodeSpec | { ref: string }): StageHandle {
  const handle = {
    kind,
    [HANDLE]: target,
    named(name: string) {
      if ("ref" in target) throw new TypeError("named(): a ref() handle cannot be renamed");
      if (typeof name !== "string" || !name) {
        throw new TypeError("named(name): name must be a non-empty string");
      }
      target.explicitName = name;
      return handle;
    },
  };
  return handle as StageHandle;
}

let active: BuildContext | undefined;

/** The build in progress, if any (stage builders record into it). */
export function currentBuild(): BuildContext | undefined {
  return active;
}

/** Runs a pipeline's build function and returns the nodes it recorded. */
export async function buildPipeline(p: Pipeline): Promise<NodeSpec[]> {
  if (active) throw new Error("a pipeline build is already running in this process");
  const ctx = new BuildContext();
  active = ctx;
  try {
    await p.build(ctx.helpers());
  } finally {
    active = undefined;
  }
  return ctx.nodes;
}
