// The models folder's public surface: loading HF checkpoints, running and generating.
export { loadIntoScheme, loadModel, type LoadModelOptions, type SchemeLoad } from "./load.ts";
export { type QuantizeSpec } from "./quant/stream_quantizer.ts";
export { type ForwardOptions, type ForwardOutput, LlamaModel, type TokenIds } from "./llama.ts";
export { generate, type GenerateOptions, type GenerateResult } from "./generate.ts";
export { type SamplingOptions, samplingProbabilities, seededRandom } from "./sampling.ts";
export { KVCache, type KVCacheOptions } from "./kv_cache.ts";
export {
  type Architecture,
  ConfigError,
  configParameterCount,
  type Json,
  type ModelConfig,
  parseConfig,
  readConfig,
  type RopeScaling,
  SUPPORTED_ARCHITECTURES,
} from "./config.ts";
export {
  CheckpointError,
  loadSafetensors,
  type LoadTensorOptions,
  parseHeader,
  readHeader,
  SafetensorsFile,
  type SafetensorsHeader,
  saveSafetensors,
  ShardedCheckpoint,
  type TensorInfo,
} from "./safetensors.ts";
export { Linear, type LinearLayer } from "./linear.ts";
export { type ChatMessage, loadTokenizer, TextTokenizer } from "./tokenizer.ts";
export {
  createTinyModel,
  TINY_ARCHS,
  TINY_PRESETS,
  type TinyArch,
  tinyConfig,
  type TinyModelInfo,
  type TinyModelOptions,
  type TinyPreset,
} from "./tiny.ts";
export { byteLevelTokenizerJson } from "./byte_tokenizer.ts";
export {
  createSyntheticModel,
  readSyntheticInfo,
  SYNTHETIC_SHAPE_NAMES,
  SYNTHETIC_SHAPES,
  type SyntheticModelInfo,
  type SyntheticModelOptions,
  type SyntheticModelSummary,
  type SyntheticShape,
  type SyntheticShapeName,
} from "./synthetic.ts";
export { ResourceError } from "./host_resources.ts";
