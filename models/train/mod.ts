// Fine-tuning: data, methods (full / LoRA / QLoRA), the training loop and checkpoint writing.
export {
  type BadReason,
  type BadRecords,
  DataError,
  type Dataset,
  DEFAULT_TEMPLATE,
  describeBad,
  type Example,
  IGNORE_INDEX,
  type InstructionOptions,
  type InstructionRecord,
  loadInstructionData,
  type PromptTemplate,
  type RawRecord,
  readRecords,
  renderInstruction,
  seededRng,
  shuffled,
  splitDataset,
  textBlocks,
  type TextOptions,
  tokenizeInstructions,
} from "./data.ts";
export {
  type Batch,
  DEFAULT_TRAIN,
  type EvalRow,
  evaluateLoss,
  lrAt,
  makeBatch,
  type MemoryBreakdown,
  type MemorySource,
  type Schedule,
  type StepRow,
  train,
  type TrainConfig,
  type TrainHooks,
  type TrainResult,
} from "./loop.ts";
export {
  denseParameters,
  type Method,
  type Prepared,
  prepareMethod,
  quantizeForQlora,
} from "./methods.ts";
export { saveCheckpoint, type SaveCheckpointOptions } from "./checkpoint.ts";
export { checkpointedBackward } from "./checkpointing.ts";
