// Fine-tuning: data, methods (full / LoRA / QLoRA), the training loop and checkpoint writing.
export { seededRandom } from "../../seeded_random.ts";
export {
  type BadReason,
  type BadRecords,
  type Batch,
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
  shuffled,
  splitDataset,
  textBlocks,
  type TextOptions,
  tokenizeInstructions,
} from "./data.ts";
export {
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
export { saveCheckpoint, type SaveCheckpointOptions } from "../save_checkpoint.ts";
export { checkpointedBackward } from "./activation_recompute.ts";
