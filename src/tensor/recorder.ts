/**
 * The command recorder: ops record dispatches and copies into one command encoder (one open
 * compute pass); nothing is submitted until a read or an explicit flush. Uniform params and
 * small uploads of one batch go through an arena, written once at submit.
 */
import { align, type GPUContext } from './context.js';
import { GPULimitError } from './errors.js';
import { paramsBinding, type BufferBinding, type KernelCache, type KernelSpec } from './kernels.js';
import { KernelProfiler, type KernelTime } from './profiler.js';
import { COPY_DST, COPY_SRC, UNIFORM } from './usage.js';

/** The arena's size: a batch whose params and small uploads outgrow it is submitted early. */
const ARENA_BYTES = 1 << 20;
/** Uploads up to this size go through the arena; larger ones are written directly. */
const ARENA_UPLOAD_MAX = 64 * 1024;

export class CommandRecorder {
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private arenaCpu = new Uint8Array(ARENA_BYTES);
  private arenaView = new DataView(this.arenaCpu.buffer);
  private arenaGpu: GPUBuffer;
  private arenaUsed = 0;
  private profiler: KernelProfiler | null = null;
  /** While collecting (see collect): the kernels dispatches would have used, by key. */
  private collected: Map<string, KernelSpec> | null = null;
  /** Dispatches recorded since the device was made (for tests of batching). */
  dispatchCount = 0;
  /** Compute passes begun: a copy or an upload between dispatches ends the open one. */
  passCount = 0;
  submitCount = 0;

  constructor(
    private readonly ctx: GPUContext,
    private readonly kernels: KernelCache,
    private readonly timestampQuery: boolean,
  ) {
    this.arenaGpu = ctx.createBuffer(ARENA_BYTES, UNIFORM | COPY_SRC | COPY_DST, 'arena');
  }

  get collecting(): boolean {
    return this.collected !== null;
  }

  /** Runs fn with dispatches only noting their kernels, and returns those kernels. */
  collect(fn: () => void): KernelSpec[] {
    if (this.collected) throw new Error('collectKernels does not nest');
    this.flush();
    const found = new Map<string, KernelSpec>();
    this.collected = found;
    try {
      fn();
    } finally {
      this.collected = null;
    }
    return [...found.values()];
  }

  private computePass(): GPUComputePassEncoder {
    this.encoder ??= this.ctx.gpu.createCommandEncoder();
    if (!this.pass) {
      this.pass = this.encoder.beginComputePass();
      this.passCount++;
    }
    return this.pass;
  }

  private endPass(): GPUCommandEncoder {
    this.pass?.end();
    this.pass = null;
    return (this.encoder ??= this.ctx.gpu.createCommandEncoder());
  }

  /** Reserves `bytes` in this batch's arena, flushing first if it is full; returns the offset. */
  private arenaAlloc(bytes: number): number {
    const alignTo = this.ctx.limits.minUniformBufferOffsetAlignment;
    let off = align(this.arenaUsed, alignTo);
    if (off + bytes > ARENA_BYTES) {
      this.flush();
      off = 0;
    }
    this.arenaUsed = off + bytes;
    return off;
  }

  /** Records one dispatch of a kernel over `grid` workgroups. */
  dispatch(spec: KernelSpec, buffers: BufferBinding[], params: number[], grid: [number, number?, number?]): void {
    this.ctx.checkAlive();
    if (buffers.length !== spec.bindings.length) {
      throw new Error(`kernel ${spec.key}: expects ${spec.bindings.length} buffers, got ${buffers.length}`);
    }
    const limits = this.ctx.limits;
    const maxWg = limits.maxComputeWorkgroupsPerDimension;
    const [gx, gy = 1, gz = 1] = grid;
    if (gx > maxWg || gy > maxWg || gz > maxWg) {
      throw new GPULimitError(`kernel ${spec.key}: grid ${gx}x${gy}x${gz} exceeds ${maxWg} workgroups per dimension`);
    }
    if (this.collected) return void this.collected.set(spec.key, spec);
    if (gx === 0 || gy === 0 || gz === 0) return;
    const maxBind = limits.maxStorageBufferBindingSize;
    for (const b of buffers) {
      const size = b.size ?? b.buffer.size - (b.offset ?? 0);
      if (size > maxBind) {
        throw new GPULimitError(`kernel ${spec.key}: binding of ${size} bytes exceeds maxStorageBufferBindingSize (${maxBind})`);
      }
    }
    const { pipeline, layout } = this.kernels.kernel(spec);
    this.kernels.markLaunched(spec.key);
    // A full profiler submits first: params written before a flush would be overwritten after it.
    if (this.profiler?.full) this.flush();
    let paramSlot: BufferBinding | null = null;
    if (spec.params) {
      const offset = this.arenaAlloc(align(spec.params.length * 4, 16));
      for (let i = 0; i < spec.params.length; i++) {
        const c = spec.params[i];
        const v = params[i];
        const at = offset + 4 * i;
        if (c === 'f') this.arenaView.setFloat32(at, v, true);
        else if (c === 'i') this.arenaView.setInt32(at, v, true);
        else this.arenaView.setUint32(at, v, true);
      }
      paramSlot = paramsBinding(this.arenaGpu, offset, spec.params);
    }
    const bg = this.kernels.bindGroup(spec, layout, buffers, paramSlot);
    const pass = this.profiler ? this.profiler.beginPass(this.endPass(), spec.key) : this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(gx, gy, gz);
    if (this.profiler) pass.end();
    this.dispatchCount++;
  }

  /** Times every dispatch from now on (needs timestamp-query); stopProfiling() returns the totals. */
  startProfiling(): void {
    if (!this.timestampQuery) throw new GPULimitError('profiling needs the timestamp-query feature, which this adapter lacks');
    this.flush();
    this.profiler ??= new KernelProfiler(this.ctx.gpu);
  }

  async stopProfiling(): Promise<KernelTime[]> {
    const p = this.profiler;
    if (!p) return [];
    this.flush();
    this.profiler = null;
    const report = await p.report();
    p.destroy();
    return report;
  }

  /** Records a buffer-to-buffer copy, ordered with the dispatches around it. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.ctx.checkAlive();
    if (bytes === 0 || this.collected) return;
    this.endPass().copyBufferToBuffer(src, srcOffset, dst, dstOffset, align(bytes, 4));
  }

  /**
   * Uploads bytes into a buffer, ordered with the recorded work: small uploads go through the
   * arena and a recorded copy, large ones are written directly once the recorded work is submitted.
   */
  upload(dst: GPUBuffer, dstOffset: number, data: ArrayBufferView): void {
    this.ctx.checkAlive();
    if (this.collected) return;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const size = align(bytes.byteLength, 4);
    if (size <= ARENA_UPLOAD_MAX) {
      const off = this.arenaAlloc(size);
      this.arenaCpu.set(bytes, off);
      this.copy(this.arenaGpu, off, dst, dstOffset, size);
      return;
    }
    if (this.encoder) this.flush();
    const queue = this.ctx.gpu.queue;
    if (bytes.byteLength % 4 === 0) {
      queue.writeBuffer(dst, dstOffset, bytes as Uint8Array<ArrayBuffer>);
    } else {
      const padded = new Uint8Array(size);
      padded.set(bytes);
      queue.writeBuffer(dst, dstOffset, padded);
    }
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.ctx.checkAlive();
    if (!this.encoder) return;
    const enc = this.endPass();
    this.profiler?.resolve(enc);
    const queue = this.ctx.gpu.queue;
    if (this.arenaUsed > 0) {
      queue.writeBuffer(this.arenaGpu, 0, this.arenaCpu, 0, align(this.arenaUsed, 4));
      this.arenaUsed = 0;
    }
    queue.submit([enc.finish()]);
    this.encoder = null;
    this.submitCount++;
    this.profiler?.afterSubmit();
  }

  destroy(): void {
    this.arenaGpu.destroy();
  }
}
