/**
 * The pipeline engine: the DSL (pipeline, defineStage, sweeps), planning with cache keys, the
 * cached DAG runner, and the progress display. It knows nothing of torch. The DuckDB store
 * lives in ./store.ts and is not re-exported here, so that code which runs stages never loads
 * DuckDB's native binding.
 */
export {
  type BuildHelpers,
  isHandle,
  isPipeline,
  type Pipeline,
  pipeline,
  type StageHandle,
} from "./build.ts";
export {
  defineStage,
  type InputsOf,
  type StageBuilder,
  type StageDef,
  type StageDefinition,
} from "./stage.ts";
export { fromYaml } from "./yaml.ts";
export {
  type Device,
  environmentFor,
  type EnvironmentProvider,
  setEnvironmentProvider,
} from "./environment.ts";
export { describeError, LabError, PipelineError } from "./errors.ts";
export { labVersion, type ProvenanceProvider, setProvenanceProvider } from "./provenance.ts";
export type { Coords, EntryMeta, InputInfo, Row, Scalar, StageContext } from "./types.ts";
export {
  globMatcher,
  KEY_VERSION,
  type LoadedPipeline,
  loadPipelineFile,
  type NodeAction,
  nodeStatus,
  type Plan,
  type PlanNode,
  type PlanOptions,
  planPipeline,
} from "./plan.ts";
export { CacheStore, type EntryInfo } from "./cache.ts";
export { type Executor, InlineExecutor, LocalExecutor } from "./executor.ts";
export { SlurmExecutor, type SlurmExecutorOptions } from "./executors/slurm.ts";
export type { SlurmSettings, StageResources } from "./executors/slurm_settings.ts";
export { executeNode, type NodeHooks, type NodeResult } from "./execute.ts";
export {
  executePlan,
  type NodeOutcome,
  type NodeStatus,
  resultsDirFrom,
  type RunOptions,
  runPipeline,
  type RunSummary,
} from "./runner.ts";
export {
  defaultReporter,
  formatDuration,
  PlainReporter,
  type Reporter,
  silentReporter,
  TtyReporter,
} from "./progress.ts";
export { lockResults, type ResultsLock } from "./lock.ts";
export { clearSourceCache, stageSourceHash } from "./source_hash.ts";
export { RECORD_TABLES, SYSTEM_TABLES, type TableDef, VIEWS } from "./tables.ts";
