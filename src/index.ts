// The published types use WebGPU's (GPUDevice …): this dependency brings them to consumers with no setup.
/// <reference types="@webgpu/types" preserve="true" />
/**
 * specdiff-webgpu: a WebGPU tensor runtime for GPT-2 family language models with speculative
 * decoding and Speculative Diffusion Decoding (SpecDiff). Browser-safe: no Node imports, no
 * dependencies. In Node, import from 'specdiff-webgpu/node' for a Dawn device and file loaders.
 */
export { Device, type DeviceInfo, type DeviceLimits, type CreateDeviceOptions, type CompileProgress, type GPUWait, type KernelSpec } from './tensor/device.js';
export { DEFAULT_TUNING, type GemvBand, type KernelTuning, type MatmulChoice } from './tensor/tuning.js';
export { Tensor, readTensors, type DType } from './tensor/tensor.js';
export * from './tensor/errors.js';
export * as ops from './tensor/ops/index.js';
export { autotuneMatmul, applyTuning, type MatmulSignature, type TuningTable } from './tensor/tune.js';

export { Tokenizer, TokenizerError, type StreamDecoder } from './models/tokenizer.js';
export { GPT2, type GPT2Cache, type ModelLoadOptions, type TokenTreeLayout } from './models/gpt2.js';
export { MDLM, type MDLMCache, type MDLMLoadOptions } from './models/mdlm.js';
export { ConfigError, parseGPT2Config, parseMDLMConfig, type GPT2Config, type MDLMConfig } from './models/config.js';
export { ContextError, NumericalError } from './models/errors.js';
export { WeightError, type WeightDType } from './models/weights.js';
export { defaultWeightDType, loadGPT2, loadMDLM, loadTokenizer, urlFolder } from './models/load.js';
export {
  SafetensorsError,
  FetchError,
  openCheckpoint,
  openCheckpointUrl,
  openSafetensors,
  memorySource,
  blobSource,
  fetchSource,
  writeSafetensors,
  type ByteSource,
  type Checkpoint,
  type CheckpointFolder,
  type FetchOptions,
  type ProgressCallback,
} from './models/safetensors.js';

export {
  generate,
  Generation,
  VocabularyMismatchError,
  type GenerateOptions,
  type GenerationChunk,
  type StepTrace,
  type GenerationResult,
} from './decode/generate.js';
export type { GenerationStats, StopReason } from './decode/stats.js';
export type { DraftAttention, Method, SamplingOptions, SpeculationOptions, UnmaskSchedule, Verification } from './decode/options.js';
export { VERIFICATIONS } from './decode/options.js';
export type { Drafter, Draft, DraftDefaults, DraftTree } from './decode/drafter.js';
export { ARDrafter } from './decode/ar-drafter.js';
export { DiffusionDrafter, type DiffusionDrafterOptions } from './decode/diffusion-drafter.js';
export { Pipeline, loadPipeline, type PipelineSources, type PipelineGenerateOptions, type WarmupOptions, type WarmupResult, type StagedWarmup, type PipelineLoadOptions } from './pipeline.js';
