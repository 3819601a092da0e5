// A user's TypeScript file, type-checked under --strict against the installed package: both entry points, the
// WebGPU types the API names (GPUBuffer), the typed errors, options and statistics.
import { Device, FetchError, Tensor, ops, type GenerationStats, type PipelineGenerateOptions } from 'specdiff-webgpu';
import {
  BundledModelsError,
  bundledModelPath,
  createNodeDevice,
  defaultWeightDType,
  dirFolder,
  loadPipeline,
  urlFolder,
  type CachedUrlOptions,
} from 'specdiff-webgpu/node';

export async function generate(prompt: string, modelsUrl?: string): Promise<GenerationStats> {
  const device: Device = await createNodeDevice();
  const cache: CachedUrlOptions = { cacheDir: false, onProgress: (loaded: number, total: number, url: string) => void [loaded, total, url] };
  const target = modelsUrl === undefined ? dirFolder(bundledModelPath('target')) : urlFolder(`${modelsUrl}/target`, cache);
  const pipe = await loadPipeline(device, { target }, { dtype: defaultWeightDType(device) });
  const options: PipelineGenerateOptions = { method: 'ar', temperature: 0.8, topK: 50, seed: 1, maxNewTokens: 8 };
  const run = pipe.generate(prompt, options);
  let text = '';
  for await (const chunk of run) text += chunk.text;
  const { stats } = await run.result();
  pipe.dispose();
  device.destroy();
  return stats;
}

export function describeFailure(e: unknown): string {
  if (e instanceof FetchError) return `${e.status ?? e.code}: ${e.message}`;
  if (e instanceof BundledModelsError) return e.message;
  return String(e);
}

export async function matmul(device: Device): Promise<ArrayLike<number>> {
  const y = device.scope(() => ops.matmul(Tensor.from(device, new Float32Array(8), [2, 4]), Tensor.from(device, new Float32Array(12), [4, 3])));
  const buffer: GPUBuffer = device.createBuffer(16, GPUBufferUsage.STORAGE, 'user');
  buffer.destroy();
  return y.read();
}
