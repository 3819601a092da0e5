/** Moves checkpoint tensors to the GPU with shape checks that name the tensor and the file. */
import type { Device } from '../tensor/device.js';
import { Tensor, type DType } from '../tensor/tensor.js';
import type { Checkpoint, ProgressCallback } from './safetensors.js';

export class WeightError extends Error {
  override name = 'WeightError';
}

export type WeightDType = 'f32' | 'f16';

/**
 * The weight format when none is asked for: f16, half the memory and bandwidth of f32, on every adapter (kernels read
 * half-precision storage as packed words, without shader-f16). Public API, given the device so that the choice can
 * depend on the adapter again without a change of signature.
 */
export function defaultWeightDType(_device: Device): WeightDType {
  return 'f16';
}

/** Every tensor in a model's nested weights (objects and arrays of them). */
export function tensorsIn(weights: unknown): Tensor[] {
  if (weights instanceof Tensor) return [weights];
  if (weights === null || typeof weights !== 'object') return [];
  return Object.values(weights).flatMap(tensorsIn);
}

/** Largest finite f16. */
/** The largest finite f16 value. */
export const F16_MAX = 65504;
const F32_MAX = 3.4028234663852886e38;

/**
 * Maps HF key names to the names in the file (e.g. with or without `transformer.`), reports progress, refuses
 * non-finite values (they would decode as token 0 forever), and keeps what it uploaded so a failed load can free it.
 */
export class WeightReader {
  private loaded = 0;
  private readonly total: number;
  private readonly uploaded: Tensor[] = [];

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

  /** Host f32 copy, shape-checked and finite. */
  async host(name: string, shape: number[]): Promise<Float32Array> {
    const key = this.check(name, shape);
    const data = await this.ckpt.loadFloat(key, 'f32', shape);
    this.checkFinite(key, data, F32_MAX);
    this.progress(key);
    return data;
  }

  /** Keeps `t` to be freed by disposeAll (for tensors a model builds itself from host values). */
  track(t: Tensor): Tensor {
    this.uploaded.push(t.keep());
    return t;
  }

  /** Frees every tensor this reader uploaded or tracked: the cleanup of a load that failed part-way. */
  disposeAll(): void {
    for (const t of this.uploaded.splice(0)) t.dispose();
  }

  /** Throws a WeightError naming the tensor and the element if a value is NaN, ±Inf or past `max`. */
  checkFinite(key: string, data: Float32Array, max = F32_MAX): void {
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (!(v <= max && v >= -max)) this.nonFinite(key, i, v, max);
    }
  }

  private checkFiniteF16(key: string, bits: Uint16Array): void {
    for (let i = 0; i < bits.length; i++) {
      if ((bits[i] & 0x7c00) === 0x7c00) this.nonFinite(key, i, bits[i] & 0x3ff ? NaN : bits[i] & 0x8000 ? -Infinity : Infinity, F16_MAX);
    }
  }

  private nonFinite(key: string, index: number, v: number, max: number): never {
    const what = Number.isFinite(v) ? `${v}, past the largest ${max === F16_MAX ? 'f16' : 'f32'} value ${max}` : String(v);
    throw new WeightError(`${this.ckpt.name}: tensor "${key}" has ${what} at element ${index}; the weights must be finite`);
  }

  /** Uploads a tensor (after an optional host-side transform of its values) in the given dtype. */
  async gpu(device: Device, name: string, shape: number[], dtype: WeightDType = 'f32', transform?: (x: Float32Array) => Float32Array): Promise<Tensor> {
    if (dtype === 'f16' && !transform) {
      const key = this.check(name, shape);
      const bits = await this.ckpt.loadFloat(key, 'f16', shape);
      this.checkFiniteF16(key, bits);
      const t = this.track(Tensor.from(device, bits, shape, 'f16'));
      this.progress(key);
      return t;
    }
    const host = await this.host(name, shape);
    const data = transform ? transform(host) : host;
    // A transform can overflow, and values past 65504 become Inf in f16.
    if (transform || dtype === 'f16') this.checkFinite(this.key(name), data, dtype === 'f16' ? F16_MAX : F32_MAX);
    return this.track(Tensor.from(device, data, shape, dtype as DType));
  }

  /**
   * Uploads a [rows, cols] matrix as [cols, rows], in the given dtype. Only the layout changes, so f16 weights are
   * checked and moved as their bits, never through f32 (the largest share of a GPT-2 load's time otherwise).
   */
  async gpuTransposed(device: Device, name: string, [rows, cols]: [number, number], dtype: WeightDType = 'f32'): Promise<Tensor> {
    const key = this.check(name, [rows, cols]);
    let data: Uint16Array | Float32Array;
    if (dtype === 'f16') {
      const bits = await this.ckpt.loadFloat(key, 'f16', [rows, cols]);
      this.checkFiniteF16(key, bits);
      data = transposed(bits, rows, cols, Uint16Array);
    } else {
      const values = await this.ckpt.loadFloat(key, 'f32', [rows, cols]);
      this.checkFinite(key, values, F32_MAX);
      data = transposed(values, rows, cols, Float32Array);
    }
    const t = this.track(Tensor.from(device, data, [cols, rows], dtype));
    this.progress(key);
    return t;
  }
}

/** Square tiles of a transpose: a tile's reads and writes stay in cache whatever the matrix's width. */
const TRANSPOSE_TILE = 32;

/** A [rows, cols] row-major matrix as [cols, rows]. */
function transposed<T extends Uint16Array | Float32Array>(a: T, rows: number, cols: number, Type: { new (length: number): T }): T {
  const out = new Type(a.length);
  for (let r0 = 0; r0 < rows; r0 += TRANSPOSE_TILE) {
    const r1 = Math.min(rows, r0 + TRANSPOSE_TILE);
    for (let c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE) {
      const c1 = Math.min(cols, c0 + TRANSPOSE_TILE);
      for (let c = c0; c < c1; c++) {
        for (let r = r0, o = c * rows + r0, i = r0 * cols + c; r < r1; r++, o++, i += cols) out[o] = a[i];
      }
    }
  }
  return out;
}
