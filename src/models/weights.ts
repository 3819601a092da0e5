/** Moves checkpoint tensors to the GPU with shape checks that name the tensor and the file. */
import type { Device } from '../tensor/device.js';
import { Tensor, type DType } from '../tensor/tensor.js';
import type { Checkpoint, ProgressCallback } from './safetensors.js';

export class WeightError extends Error {
  override name = 'WeightError';
}

export type WeightDType = 'f32' | 'f16';

/** Maps HF key names to the names in the file (e.g. with or without `transformer.`), and reports progress. */
export class WeightReader {
  private loaded = 0;
  private readonly total: number;

  constructor(
    readonly ckpt: Checkpoint,
    private readonly prefix: string,
    private readonly onProgress?: ProgressCallback,
  ) {
    this.total = ckpt.names().reduce((s, n) => s + ckpt.info(n).byteLength, 0);
  }

  private progress(key: string): void {
    this.loaded += this.ckpt.info(key).byteLength;
    this.onProgress?.(this.loaded, this.total, key);
  }

  key(name: string): string {
    return this.prefix + name;
  }

  has(name: string): boolean {
    return this.ckpt.has(this.key(name));
  }

  /** The key of `name` in the file, after checking that it exists with the shape the config implies. */
  check(name: string, shape: number[]): string {
    const key = this.key(name);
    if (!this.ckpt.has(key)) throw new WeightError(`${this.ckpt.name}: tensor "${key}" is missing`);
    const info = this.ckpt.info(key);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new WeightError(`${this.ckpt.name}: tensor "${key}" has shape [${info.shape.join(', ')}], the config implies [${shape.join(', ')}]`);
    }
    return key;
  }

  /** Host f32 copy, shape-checked. */
  async host(name: string, shape: number[]): Promise<Float32Array> {
    const key = this.check(name, shape);
    const data = await this.ckpt.loadFloat(key, 'f32', shape);
    this.progress(key);
    return data;
  }

  /** Uploads a tensor (after an optional host-side transform) in the given dtype. */
  /** `transform` may change the layout; `outShape` is then the shape it produces. */
  async gpu(device: Device, name: string, shape: number[], requested: WeightDType = 'f32', transform?: (x: Float32Array) => Float32Array, outShape = shape): Promise<Tensor> {
    // Without shader-f16, half-precision checkpoints are widened to f32.
    const dtype = requested === 'f16' && !device.info.features.shaderF16 ? 'f32' : requested;
    if (dtype === 'f16' && !transform) {
      const key = this.check(name, shape);
      const t = Tensor.from(device, await this.ckpt.loadFloat(key, 'f16', shape), shape, 'f16').keep();
      this.progress(key);
      return t;
    }
    const host = await this.host(name, shape);
    return Tensor.from(device, transform ? transform(host) : host, outShape, dtype as DType).keep();
  }
}
