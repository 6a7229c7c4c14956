/**
 * The pipeline engine's public surface: the DSL (pipeline, defineStage, sweeps), planning with
 * cache keys, running plans through an executor, and the progress display. It knows nothing of
 * torch. The DuckDB store (./store.ts), the cache folder, locks and the tables' schema are the
 * engine's own plumbing: the CLI and tests import them from their modules.
 * @module
 */
export { type BuildHelpers, type Pipeline, pipeline, type StageHandle } from "./build.ts";
export {
  defineStage,
  type InputsOf,
  type StageBuilder,
  type StageDef,
  type StageDefinition,
} from "./stage.ts";
export { fromYaml } from "./yaml.ts";
export type { Device } from "./environment.ts";
export { LabError, PipelineError } from "./errors.ts";
export type { Coords, EntryMeta, InputInfo, Row, Scalar, StageContext } from "./types.ts";
export {
  type LoadedPipeline,
  loadPipelineFile,
  type NodeAction,
  type Plan,
  type PlanNode,
  type PlanOptions,
  planPipeline,
} from "./plan.ts";
export { type Executor, InlineExecutor, LocalExecutor } from "./executor.ts";
export { SlurmExecutor, type SlurmExecutorOptions } from "./executors/slurm.ts";
export type { SlurmSettings, StageResources } from "./executors/slurm_settings.ts";
export type { NodeHooks, NodeResult } from "./node_execution.ts";
export { type RunOptions, runPipeline } from "./runner.ts";
export type { NodeOutcome, NodeStatus, RunSummary } from "./run_types.ts";
export {
  defaultReporter,
  PlainReporter,
  type Reporter,
  silentReporter,
  TtyReporter,
} from "./progress.ts";
