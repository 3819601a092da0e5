/**
 * Size-bucketed GPU buffer pool. Creating (and first binding) a GPU buffer is expensive,
 * so released buffers are kept by size class and handed out again: a decode loop that
 * frees what it allocates creates no buffer after its first iteration.
 */

import { COPY_DST, COPY_SRC, STORAGE, UNIFORM } from './usage.js';

// UNIFORM too: few-row matmuls bind activations as a uniform buffer (see 'gemv-uniform').
const STORAGE_USAGE = STORAGE | UNIFORM | COPY_SRC | COPY_DST;

/** Size classes: powers of two below 1 MiB, then steps of 1/8 of the power of two. */
export function bucketSize(bytes: number): number {
  const b = Math.max(256, bytes);
  if (b <= 1 << 20) return 2 ** Math.ceil(Math.log2(b));
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 8;
  return Math.ceil(b / step) * step;
}

export interface PoolStats {
  /** Buffers created since the pool was made. */
  created: number;
  /** Bytes held by live (handed-out) buffers. */
  liveBytes: number;
  /** Bytes held in the free lists. */
  freeBytes: number;
}

export class BufferPool {
  /** Free buffers by size, each list in descending id order (see release). */
  private free = new Map<number, Array<{ buf: GPUBuffer; id: number }>>();
  private stats: PoolStats = { created: 0, liveBytes: 0, freeBytes: 0 };
  private nextId = 1;
  private ids = new WeakMap<GPUBuffer, number>();

  /**
   * @param minBytes smallest buffer handed out: the matmul's uniform window
   *   (tuning.uniformWindowBytes), so that any buffer's first bytes can be bound as one.
   */
  constructor(private create: (size: number, usage: number, label: string) => GPUBuffer, private minBytes = 0) {}

  acquire(bytes: number, label = 'tensor'): GPUBuffer {
    const size = bucketSize(Math.max(bytes, this.minBytes));
    const list = this.free.get(size);
    let buf = list?.pop()?.buf;
    if (buf) {
      this.stats.freeBytes -= size;
    } else {
      buf = this.create(size, STORAGE_USAGE, label);
      this.ids.set(buf, this.nextId++);
      this.stats.created++;
    }
    this.stats.liveBytes += size;
    return buf;
  }

  release(buf: GPUBuffer): void {
    const size = buf.size;
    this.stats.liveBytes -= size;
    this.stats.freeBytes += size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    // Kept in descending id order, so acquire hands out the lowest id: a loop that allocates the same
    // sequence each iteration gets the same buffers whatever order they were freed in, and finds its
    // bind groups cached.
    const id = this.id(buf);
    let at = list.length;
    while (at > 0 && list[at - 1].id < id) at--;
    list.splice(at, 0, { buf, id });
  }

  /** Stable small id of a buffer, for cache keys. */
  id(buf: GPUBuffer): number {
    let id = this.ids.get(buf);
    if (id === undefined) this.ids.set(buf, (id = this.nextId++));
    return id;
  }

  /** Destroys every free buffer (live ones stay with their owners). */
  trim(): void {
    for (const list of this.free.values()) for (const { buf } of list) buf.destroy();
    this.free.clear();
    this.stats.freeBytes = 0;
  }

  getStats(): PoolStats {
    return { ...this.stats };
  }
}
