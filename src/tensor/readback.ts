/** Reading results back to the CPU: the only points where the CPU waits for the GPU. */
import { align, type GPUContext } from './context.js';
import type { CommandRecorder } from './recorder.js';
import { COPY_DST, MAP_MODE_READ, MAP_READ } from './usage.js';

export class Readback {
  /** Staging buffers by size (powers of two), reused from read to read. */
  private staging = new Map<number, GPUBuffer[]>();

  constructor(
    private readonly ctx: GPUContext,
    private readonly recorder: CommandRecorder,
  ) {}

  /** Several ranges read back through one staging buffer, one submit and one wait. */
  async readBuffers(ranges: Array<{ buffer: GPUBuffer; offset?: number; size: number }>): Promise<ArrayBuffer[]> {
    if (this.recorder.collecting) throw new Error('collectKernels: nothing runs, so nothing can be read back');
    const offsets: number[] = [];
    let total = 0;
    for (const r of ranges) {
      offsets.push(total);
      total += align(r.size, 4);
    }
    const staging = this.acquire(Math.max(total, 4));
    ranges.forEach((r, i) => this.recorder.copy(r.buffer, r.offset ?? 0, staging, offsets[i], r.size));
    this.recorder.flush();
    try {
      await this.ctx.waitFor(staging.mapAsync(MAP_MODE_READ, 0, Math.max(total, 4)));
      await this.ctx.checkScopes();
      const mapped = staging.getMappedRange(0, Math.max(total, 4));
      const out = ranges.map((r, i) => mapped.slice(offsets[i], offsets[i] + r.size));
      staging.unmap();
      this.release(staging);
      return out;
    } catch (e) {
      this.ctx.checkAlive();
      throw e;
    }
  }

  /** Waits for all submitted work; reports asynchronous errors (out of memory, validation). */
  async sync(): Promise<void> {
    this.recorder.flush();
    await this.ctx.waitFor(this.ctx.gpu.queue.onSubmittedWorkDone());
    await this.ctx.checkScopes();
  }

  private acquire(size: number): GPUBuffer {
    const b = Math.max(256, 2 ** Math.ceil(Math.log2(size)));
    return this.staging.get(b)?.pop() ?? this.ctx.createBuffer(b, MAP_READ | COPY_DST, 'readback');
  }

  private release(buf: GPUBuffer): void {
    let list = this.staging.get(buf.size);
    if (!list) this.staging.set(buf.size, (list = []));
    list.push(buf);
  }

  destroy(): void {
    for (const list of this.staging.values()) for (const b of list) b.destroy();
  }
}
