// defineStage: a stage kind's schema, inputs and run function, and the builder pipelines call.
import { z } from "zod";
import type { Device } from "./environment.ts";
import { currentBuild, HANDLE, isHandle, type NodeSpec, type StageHandle } from "./build.ts";
import { asFileUrl, callerLocation } from "./source_hash.ts";
import type { InputInfo, StageContext, StageDef } from "./types.ts";

export type { StageDef } from "./types.ts";

type InputName<S extends string> = S extends `${infer R}[]` ? R
  : S extends `${infer R}?` ? R
  : S;
type InputValue<S extends string> = S extends `${string}[]` ? InputInfo[]
  : S extends `${string}?` ? InputInfo | undefined
  : InputInfo;
/** `ctx.inputs` for declared input names ("model", "adapter?" optional, "runs[]" a list). */
export type InputsOf<I extends readonly string[]> = {
  [S in I[number] as InputName<S>]: InputValue<S>;
};
type ArgFor<S extends string> = S extends `${string}[]` ? readonly StageHandle[]
  : S extends `${string}?` ? StageHandle | undefined
  : StageHandle;
type InputArgs<I extends readonly string[]> = { [K in keyof I]: ArgFor<I[K]> };
// deno-lint-ignore ban-types
type BuilderArgs<I extends readonly string[], PIn> = {} extends PIn
  ? [...InputArgs<I>, params?: PIn]
  : [...InputArgs<I>, params: PIn];

/** Input names without their trailing optional ones. */
type DropOptionalTail<I extends readonly string[]> = I extends
  readonly [...infer Head extends string[], infer Last extends string]
  ? Last extends `${string}?` ? DropOptionalTail<Head> : I
  : I;

/** What defineStage takes. */
export interface StageDefinition<
  K extends string,
  S extends z.ZodType,
  I extends readonly string[],
> {
  /** The stage kind, e.g. "quantize"; default node names and --force use it. */
  kind: K;
  /** Zod schema of the params; defaults it fills in are part of the cache key. */
  params?: S;
  /** Names of the input handles the builder takes first, in order: "model", "adapter?", "runs[]". */
  inputs?: I;
  /** Which slot the stage needs: "gpu" stages run one per GPU, others by CPU cores. */
  device?: Device;
  /** Run alone, with no other stage at the same time (timing measurements need the machine). */
  exclusive?: boolean;
  /** The module whose source keys this stage (default: the file that called defineStage). */
  module?: string | URL;
  /** Extra JSON that goes into the cache key, e.g. a hash of a data file that params name. */
  keyExtra?: (params: z.output<S>, cwd: string) => unknown | Promise<unknown>;
  /** Does the work. May return JSON, kept as meta.output and shown to descendants as input.output. */
  run: (ctx: StageContext<z.output<S>, InputsOf<I>>) => unknown | Promise<unknown>;
}

/** A stage builder: call it inside a pipeline to add a node; it returns the node's handle. */
export type StageBuilder<K extends string, S extends z.ZodType, I extends readonly string[]> =
  & ((...args: BuilderArgs<I, z.input<S>>) => StageHandle<K>)
  // Trailing optional inputs may be left out: quantize(model, { scheme }).
  & ((...args: BuilderArgs<DropOptionalTail<I>, z.input<S>>) => StageHandle<K>)
  & { readonly stage: StageDef; readonly kind: K };

const STAGE_URL = new URL(import.meta.url).href;

/** Defines a stage kind; returns its builder. Built-in and user stages use the same mechanism. */
export function defineStage<
  K extends string,
  S extends z.ZodType = z.ZodObject<Record<never, never>>,
  const I extends readonly string[] = [],
>(def: StageDefinition<K, S, I>): StageBuilder<K, S, I> {
  if (!def.kind || !/^[A-Za-z_][\w-]*$/.test(def.kind)) {
    throw new TypeError(
      `defineStage: kind must be a plain identifier, got ${JSON.stringify(def.kind)}`,
    );
  }
  let moduleUrl: string;
  let definedAt: { line: number; col: number } | undefined;
  if (def.module) moduleUrl = asFileUrl(def.module).split(/[?#]/)[0];
  else {
    const loc = callerLocation([STAGE_URL]);
    if (!loc) {
      throw new TypeError(
        `defineStage(${def.kind}): cannot tell which file defines it; pass module: import.meta.url`,
      );
    }
    moduleUrl = loc.url;
    definedAt = { line: loc.line, col: loc.col };
  }
  const inputs = (def.inputs ?? []).map((raw) => {
    const list = raw.endsWith("[]");
    const optional = !list && raw.endsWith("?");
    const name = list ? raw.slice(0, -2) : optional ? raw.slice(0, -1) : raw;
    return { name, optional, list };
  });
  const stage: StageDef = {
    kind: def.kind,
    schema: def.params ?? z.object({}),
    inputs,
    device: def.device ?? "cpu",
    exclusive: def.exclusive ?? false,
    moduleUrl,
    definedAt,
    keyExtra: def.keyExtra as StageDef["keyExtra"],
    run: def.run as StageDef["run"],
  };
  const builder = (...args: unknown[]): StageHandle<K> => {
    const build = currentBuild();
    if (!build) {
      throw new TypeError(
        `stage builder ${def.kind}() called outside a pipeline: call it inside pipeline(name, build)`,
      );
    }
    // Inputs are positional; an optional one may be left out (the params follow directly).
    const inputArgs: unknown[] = [];
    let i = 0;
    for (const inp of inputs) {
      const a = args[i];
      const fits = inp.list
        ? Array.isArray(a)
        : isHandle(a) || (a === undefined && i < args.length - 1);
      if (inp.optional && !fits) inputArgs.push(undefined);
      else {
        inputArgs.push(a);
        i++;
      }
    }
    const node: NodeSpec = build.addNode(stage, inputArgs, args[i]);
    if (args.length > i + 1) {
      node.problems.push(
        `takes ${inputs.length} input(s) (${
          inputs.map((i) => i.name).join(", ") || "none"
        }) and then params, got ${args.length} arguments`,
      );
    }
    return node.handle as StageHandle<K>;
  };
  Object.defineProperty(builder, "stage", { value: stage });
  Object.defineProperty(builder, "kind", { value: def.kind });
  return builder as unknown as StageBuilder<K, S, I>;
}

export { HANDLE };
