/**
 * GPU time per kernel, from timestamp queries (feature 'timestamp-query'). While profiling, each
 * dispatch gets its own compute pass with begin/end timestamps; after each submit the query
 * results are read back asynchronously and summed per kernel key.
 */
import { COPY_DST, COPY_SRC, MAP_MODE_READ, MAP_READ } from './usage.js';

const QUERY_RESOLVE = 0x0200;
/** Dispatches per batch that can be timed; the device flushes when they run out. */
export const PROFILE_CAPACITY = 1024;

export interface KernelTime {
  key: string;
  ms: number;
  count: number;
}

export class KernelProfiler {
  private querySet: GPUQuerySet;
  private resolveBuf: GPUBuffer;
  private keys: string[] = [];
  private pending: Promise<void>[] = [];
  private totals = new Map<string, { ns: number; count: number }>();
  private inFlight: { keys: string[]; read: GPUBuffer } | null = null;

  constructor(private gpu: GPUDevice) {
    this.querySet = gpu.createQuerySet({ type: 'timestamp', count: 2 * PROFILE_CAPACITY });
    this.resolveBuf = gpu.createBuffer({ size: 16 * PROFILE_CAPACITY, usage: QUERY_RESOLVE | COPY_SRC });
  }

  get full(): boolean {
    return this.keys.length >= PROFILE_CAPACITY;
  }

  /** A compute pass that times exactly one dispatch of kernel `key`. */
  beginPass(encoder: GPUCommandEncoder, key: string): GPUComputePassEncoder {
    const i = this.keys.length;
    this.keys.push(key);
    return encoder.beginComputePass({ timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
  }

  /** Records the resolve of this batch's queries; call before finishing the encoder. */
  resolve(encoder: GPUCommandEncoder): void {
    const n = this.keys.length;
    if (n === 0) return;
    encoder.resolveQuerySet(this.querySet, 0, 2 * n, this.resolveBuf, 0);
    const read = this.gpu.createBuffer({ size: 16 * n, usage: MAP_READ | COPY_DST });
    encoder.copyBufferToBuffer(this.resolveBuf, 0, read, 0, 16 * n);
    this.inFlight = { keys: this.keys, read };
    this.keys = [];
  }

  /** Starts reading back the batch just submitted. */
  afterSubmit(): void {
    const batch = this.inFlight;
    if (!batch) return;
    this.inFlight = null;
    this.pending.push(
      batch.read.mapAsync(MAP_MODE_READ).then(() => {
        const t = new BigUint64Array(batch.read.getMappedRange());
        batch.keys.forEach((key, i) => {
          const ns = Number(t[2 * i + 1] - t[2 * i]);
          const e = this.totals.get(key) ?? { ns: 0, count: 0 };
          e.ns += Math.max(ns, 0);
          e.count++;
          this.totals.set(key, e);
        });
        batch.read.unmap();
        batch.read.destroy();
      }),
    );
  }

  /** Totals per kernel, largest first. */
  async report(): Promise<KernelTime[]> {
    await Promise.all(this.pending);
    this.pending = [];
    return [...this.totals].map(([key, e]) => ({ key, ms: e.ns / 1e6, count: e.count })).sort((a, b) => b.ms - a.ms);
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolveBuf.destroy();
  }
}
