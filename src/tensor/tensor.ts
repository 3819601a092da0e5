/**
 * A tensor: a shape, a dtype and a GPU buffer from the device's pool. Reading is the only
 * synchronisation point; dispose (or a device scope) returns the buffer to the pool.
 */
import type { Device } from './device.js';
import { ShapeError, shapeStr } from './errors.js';
import { f16BitsToF32Array, f32ArrayToF16Bits } from './half.js';

export type DType = 'f32' | 'f16' | 'i32' | 'u32';

export const BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4 };

export type HostArray = Float32Array | Int32Array | Uint32Array;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export class Tensor {
  private disposed = false;

  constructor(
    readonly device: Device,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly buffer: GPUBuffer,
    /** Whether the buffer belongs to the pool (and goes back there on dispose). */
    private readonly pooled = true,
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid shape ${shapeStr(shape)}`);
    }
    device.track(this);
  }

  /** Allocates an uninitialised tensor from the pool. */
  static empty(device: Device, shape: readonly number[], dtype: DType = 'f32', label?: string): Tensor {
    const bytes = numel(shape) * BYTES[dtype];
    return new Tensor(device, shape, dtype, device.pool.acquire(bytes, label));
  }

  /**
   * Uploads host data. f32 data with dtype 'f16' is converted to half precision, stored as such
   * whether or not the device has shader-f16 (kernels read it as packed words).
   */
  static from(device: Device, data: ArrayLike<number> | HostArray | Uint16Array, shape: readonly number[], dtype?: DType): Tensor {
    const n = numel(shape);
    if (data.length !== n) {
      throw new ShapeError(`Tensor.from: ${data.length} values do not fill shape ${shapeStr(shape)} (${n})`);
    }
    const dt: DType = dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint32Array ? 'u32' : 'f32');
    const t = Tensor.empty(device, shape, dt);
    device.upload(t.buffer, 0, toHost(data, dt));
    return t;
  }

  get size(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return this.size * BYTES[this.dtype];
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** A tensor sharing this buffer with another shape of the same size (no copy). */
  reshape(shape: readonly number[]): Tensor {
    this.assertLive('reshape');
    const n = numel(shape);
    if (n !== this.size) throw new ShapeError(`reshape: ${shapeStr(this.shape)} has ${this.size} elements, not ${n}`);
    return new TensorView(this, shape);
  }

  /** The whole tensor as a storage binding (sizes rounded up to whole 32-bit words). */
  get binding(): { buffer: GPUBuffer; size: number } {
    return { buffer: this.buffer, size: Math.max(4, Math.ceil(this.byteLength / 4) * 4) };
  }

  async read(): Promise<HostArray> {
    return (await readTensors([this]))[0];
  }

  /** Keeps this tensor alive past the scope it was created in. */
  keep(): this {
    this.device.untrack(this);
    return this;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.device.untrack(this);
    if (this.pooled) this.device.pool.release(this.buffer);
  }

  assertLive(op: string): void {
    if (this.disposed) throw new ShapeError(`${op}: tensor ${shapeStr(this.shape)} was disposed`);
  }
}

/** Reads several tensors with one submit and one wait. */
export async function readTensors(ts: Tensor[]): Promise<HostArray[]> {
  if (ts.length === 0) return [];
  for (const t of ts) t.assertLive('read');
  const bytes = await ts[0].device.readBuffers(ts.map((t) => ({ buffer: t.buffer, size: t.byteLength })));
  return bytes.map((b, i) => {
    const dtype = ts[i].dtype;
    if (dtype === 'f16') return f16BitsToF32Array(new Uint16Array(b));
    if (dtype === 'i32') return new Int32Array(b);
    if (dtype === 'u32') return new Uint32Array(b);
    return new Float32Array(b);
  });
}

/** A reshaped alias: disposing it does not free the underlying buffer. */
class TensorView extends Tensor {
  constructor(
    private readonly base: Tensor,
    shape: readonly number[],
  ) {
    super(base.device, shape, base.dtype, base.buffer, false);
  }

  override assertLive(op: string): void {
    super.assertLive(op);
    this.base.assertLive(op);
  }
}

function toHost(data: ArrayLike<number>, dtype: DType): ArrayBufferView {
  if (dtype === 'f16') return data instanceof Uint16Array ? data : f32ArrayToF16Bits(data);
  if (dtype === 'i32') return data instanceof Int32Array ? data : Int32Array.from(data);
  if (dtype === 'u32') return data instanceof Uint32Array ? data : Uint32Array.from(data);
  return data instanceof Float32Array ? data : Float32Array.from(data);
}
