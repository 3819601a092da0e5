/**
 * The GPU device: adapter limits and features, lost-device handling, and the recording
 * machinery every op goes through. Ops record dispatches into one command encoder (one open
 * compute pass); nothing is submitted until a read or an explicit flush.
 */
import { BufferPool, type PoolStats } from './pool.js';
import {
  DeviceLostError,
  GPULimitError,
  GPUOutOfMemoryError,
  GPUValidationError,
  WebGPUUnavailableError,
} from './errors.js';
import { COPY_DST, COPY_SRC, MAP_MODE_READ, MAP_READ, STORAGE, UNIFORM } from './usage.js';
import { KernelProfiler, type KernelTime } from './profiler.js';

export interface DeviceLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupSizeX: number;
  maxComputeWorkgroupSizeY: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
  minStorageBufferOffsetAlignment: number;
  minUniformBufferOffsetAlignment: number;
  maxUniformBufferBindingSize: number;
}

export interface DeviceInfo {
  /** Adapter description as the driver reports it (vendor, architecture, device, description). */
  adapter: string;
  features: { shaderF16: boolean; subgroups: boolean; timestampQuery: boolean };
  /** Largest subgroup size the adapter may use (0 if unknown). */
  subgroupMaxSize: number;
  limits: DeviceLimits;
}

export interface CreateDeviceOptions {
  /** The WebGPU entry point; defaults to `navigator.gpu`. The Node entry passes Dawn's. */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /** Turn off optional features (for testing fallbacks). */
  disableFeatures?: Array<'shader-f16' | 'subgroups' | 'timestamp-query'>;
  /**
   * Nap between event-loop turns while waiting for the GPU (default false; the Node entry turns
   * it on). Dawn's Node binding settles a pending map or onSubmittedWorkDone from setImmediate
   * ticks that it re-queues until the GPU is done, which keeps one CPU core busy all along: an
   * adapter that executes on the same cores (a software Vulkan driver) then runs slower. Needs
   * Node (setImmediate, and Atomics.wait on the main thread).
   */
  sleepWhileWaiting?: boolean;
  /**
   * 'adapter' (default) asks for the adapter's own limits; 'default' keeps the WebGPU
   * specification's defaults (what a page gets without asking), to test that every kernel
   * choice respects them.
   */
  limits?: 'adapter' | 'default';
}

/** Compiles ahead of use; `onProgress` is called with pipelines compiled so far and in all. */
export type CompileProgress = (done: number, total: number) => void;

/**
 * A nap is this fraction of the time waited so far, at most MAX_NAP_MS, and none until it would
 * reach MIN_NAP_MS (the first millisecond spins as before): a short wait (a real GPU's decode step,
 * a tiny model) is not delayed, a long one is noticed at most about 5 % late, and Dawn ticks a few
 * dozen times per wait instead of spinning a core. On lavapipe (2 cores, greedy, alternating in one
 * process) tokens/s went AR 27.6 -> 38.6 and SpecDiff 43.6 -> 66-74 against the earlier scheme of
 * sleeping 80 % of the same readback's last wait and spinning through the rest (measured with naps
 * from the first tick; sparing the first millisecond was added for the tiny test models' waits).
 */
const NAP_FRACTION = 0.05;
const MIN_NAP_MS = 0.05;
const MAX_NAP_MS = 2;

const LIMIT_NAMES: Array<keyof DeviceLimits> = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
  'maxUniformBufferBindingSize',
];

/** Access of one binding of a kernel: read-only storage, read-write storage, or uniform. */
export type Access = 'r' | 'w' | 'u';

/** A compiled-once kernel variant: its WGSL and the shape of its bind group. */
export interface KernelSpec {
  /** Unique per variant: names everything that specialises the WGSL. */
  key: string;
  /** Generates the WGSL; called once, when the pipeline is first needed. */
  wgsl: () => string;
  /** Storage bindings 0..n-1 in order; the params uniform, if any, comes at binding n. */
  bindings: Access[];
  /** Param struct layout, one char per 32-bit field: u32, i32 or f32. */
  params: string;
}

export interface BufferBinding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

/** Uniform params and small uploads of one batch go through this arena, written once at submit. */
const ARENA_BYTES = 1 << 20;
/** Each binding of a launch (see launch): the largest uniform array a kernel declares fits. */
const SCRATCH_BYTES = 1 << 16;

export class Device {
  readonly info: DeviceInfo;
  readonly pool: BufferPool;
  private lostMessage: string | null = null;
  private lostPromise: Promise<never>;
  private firstError: Error | null = null;
  private pendingScopes: Promise<GPUError | null>[] = [];

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  private layouts = new Map<string, GPUBindGroupLayout>();
  private bindGroups = new Map<string, GPUBindGroup>();
  private arenaCpu = new Uint8Array(ARENA_BYTES);
  private arenaView = new DataView(this.arenaCpu.buffer);
  private arenaGpu: GPUBuffer;
  private arenaUsed = 0;
  private readPool = new Map<number, GPUBuffer[]>();
  private scopes: Array<Set<{ dispose(): void }>> = [];
  /** The cell that naps wait on (see waitFor). */
  private napCell: Int32Array | null = null;
  /** Dispatches recorded since the device was made (for tests of batching). */
  dispatchCount = 0;
  submitCount = 0;
  /** Pipelines compiled since the device was made: ahead of use (compile) or at a first dispatch. */
  pipelineCount = 0;
  /** Wall time spent compiling pipelines, ahead of use or at first dispatches. */
  compileMs = 0;
  /** While collectKernels runs: the kernels dispatches would have used, by key. */
  private collected: Map<string, KernelSpec> | null = null;
  /** Kernels dispatched at least once (their driver-side compilation is done). */
  private launched = new Set<string>();

  private constructor(
    readonly gpu: GPUDevice,
    info: DeviceInfo,
    private readonly sleepWhileWaiting = false,
  ) {
    this.info = info;
    this.pool = new BufferPool((size, usage, label) => this.createBuffer(size, usage, label));
    this.arenaGpu = this.createBuffer(ARENA_BYTES, UNIFORM | COPY_SRC | COPY_DST, 'arena');
    this.lostPromise = gpu.lost.then((l) => {
      this.lostMessage = `${l.reason}: ${l.message}`;
      throw new DeviceLostError(`GPU device lost (${this.lostMessage})`);
    });
    this.lostPromise.catch(() => undefined);
    gpu.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.firstError ??= toError(ev.error);
    };
  }

  static async create(opts: CreateDeviceOptions = {}): Promise<Device> {
    const gpu = opts.gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
    if (!gpu) {
      throw new WebGPUUnavailableError(
        'WebGPU is not available: this browser has no navigator.gpu (use a recent Chrome/Edge, or ' +
          'Firefox/Safari with WebGPU enabled). In Node, import from the package\'s "/node" entry, which uses ' +
          'the `webgpu` package (Dawn).',
      );
    }
    const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) {
      throw new WebGPUUnavailableError(
        'No WebGPU adapter found. In Node on Linux, Dawn needs a Vulkan driver: install Mesa >= 25 ' +
          '(Debian bookworm: `apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`) or a GPU driver.',
      );
    }
    const requiredLimits: Record<string, number> = {};
    for (const name of LIMIT_NAMES) {
      if (name.startsWith('min') || opts.limits === 'default') continue;
      requiredLimits[name] = adapter.limits[name];
    }
    const disabled = new Set(opts.disableFeatures ?? []);
    const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
    const requiredFeatures = wanted.filter((f) => adapter.features.has(f) && !disabled.has(f as never));
    const gpuDevice = await adapter.requestDevice({ requiredLimits, requiredFeatures });
    const limits = {} as DeviceLimits;
    for (const name of LIMIT_NAMES) limits[name] = gpuDevice.limits[name];
    const ai = adapter.info;
    const desc = [ai?.vendor, ai?.architecture, ai?.device, ai?.description].filter((s) => s).join(' ');
    return new Device(gpuDevice, {
      adapter: desc || 'unknown adapter',
      features: {
        shaderF16: gpuDevice.features.has('shader-f16'),
        subgroups: gpuDevice.features.has('subgroups'),
        timestampQuery: gpuDevice.features.has('timestamp-query'),
      },
      subgroupMaxSize: (ai as { subgroupMaxSize?: number } | undefined)?.subgroupMaxSize ?? 0,
      limits,
    }, opts.sleepWhileWaiting);
  }

  get limits(): DeviceLimits {
    return this.info.limits;
  }

  get isLost(): boolean {
    return this.lostMessage !== null;
  }

  /** Throws if the device is lost or an earlier asynchronous GPU error was reported. */
  checkAlive(): void {
    if (this.lostMessage !== null) throw new DeviceLostError(`GPU device lost (${this.lostMessage})`);
    if (this.firstError) {
      const e = this.firstError;
      this.firstError = null;
      throw e;
    }
  }

  createBuffer(size: number, usage: number, label: string): GPUBuffer {
    this.checkAlive();
    if (size > this.limits.maxBufferSize) {
      throw new GPULimitError(
        `${label}: buffer of ${size} bytes exceeds the adapter's maxBufferSize (${this.limits.maxBufferSize})`,
      );
    }
    this.gpu.pushErrorScope('out-of-memory');
    const buf = this.gpu.createBuffer({ size: align(size, 4), usage, label });
    this.pendingScopes.push(this.gpu.popErrorScope());
    return buf;
  }

  // ---- scopes: free intermediates -------------------------------------------------------

  /** Registers a disposable in the innermost open scope (tensors call this when created). */
  track(t: { dispose(): void }): void {
    this.scopes[this.scopes.length - 1]?.add(t);
  }

  /** Takes a disposable out of the scope it was created in, so it outlives the scope. */
  untrack(t: { dispose(): void }): void {
    for (const s of this.scopes) s.delete(t);
  }

  /**
   * Runs fn; every tensor created inside and not returned (directly, or in an array/object
   * of tensors) is disposed when it ends.
   */
  scope<T>(fn: () => T): T {
    const set = new Set<{ dispose(): void }>();
    this.scopes.push(set);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      // Nothing of a failed scope is returned: free it all.
      this.scopes.pop();
      for (const t of set) t.dispose();
      throw e;
    }
    this.scopes.pop();
    const keep = new Set<unknown>();
    collect(result, keep);
    for (const t of set) {
      if (keep.has(t)) this.track(t);
      else t.dispose();
    }
    return result;
  }

  // ---- recording ---------------------------------------------------------------------------

  private layoutFor(spec: KernelSpec): GPUBindGroupLayout {
    const layoutKey = spec.bindings.join('') + (spec.params ? '+params' : '');
    let layout = this.layouts.get(layoutKey);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = spec.bindings.map((a, i) => ({
        binding: i,
        visibility: 4 /* COMPUTE */,
        buffer: { type: a === 'r' ? 'read-only-storage' : a === 'u' ? 'uniform' : 'storage' },
      }));
      if (spec.params) entries.push({ binding: spec.bindings.length, visibility: 4, buffer: { type: 'uniform' } });
      layout = this.gpu.createBindGroupLayout({ entries, label: layoutKey });
      this.layouts.set(layoutKey, layout);
    }
    return layout;
  }

  private pipelineDescriptor(spec: KernelSpec, layout: GPUBindGroupLayout): GPUComputePipelineDescriptor {
    return {
      layout: this.gpu.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module: this.gpu.createShaderModule({ code: spec.wgsl(), label: spec.key }), entryPoint: 'main' },
      label: spec.key,
    };
  }

  private kernel(spec: KernelSpec) {
    let k = this.pipelines.get(spec.key);
    if (k) return k;
    const t0 = performance.now();
    const layout = this.layoutFor(spec);
    this.gpu.pushErrorScope('validation');
    const pipeline = this.gpu.createComputePipeline(this.pipelineDescriptor(spec, layout));
    const key = spec.key;
    this.pendingScopes.push(
      this.gpu.popErrorScope().then((e) => {
        // Takes precedence over the "invalid pipeline" errors it causes at dispatch, which can arrive first.
        if (e) this.firstError = new GPUValidationError(`kernel ${key}: ${e.message}`);
        return null;
      }),
    );
    k = { pipeline, layout };
    this.pipelines.set(spec.key, k);
    this.pipelineCount++;
    this.compileMs += performance.now() - t0;
    return k;
  }

  /** Whether the pipeline of this kernel is compiled. */
  hasPipeline(key: string): boolean {
    return this.pipelines.has(key);
  }

  /**
   * Compiles the pipelines of these kernels that are not compiled yet, all requested at once
   * (createComputePipelineAsync: the driver may compile them in parallel, off this thread).
   * Resolves with how many it compiled.
   */
  async compile(specs: Iterable<KernelSpec>, onProgress?: CompileProgress): Promise<number> {
    this.checkAlive();
    const todo = new Map<string, KernelSpec>();
    for (const s of specs) if (!this.pipelines.has(s.key)) todo.set(s.key, s);
    const total = todo.size;
    let done = 0;
    onProgress?.(0, total);
    if (total === 0) return 0;
    const t0 = performance.now();
    try {
      await Promise.all(
        [...todo.values()].map(async (spec) => {
          const layout = this.layoutFor(spec);
          let pipeline: GPUComputePipeline;
          try {
            pipeline = await Promise.race([this.gpu.createComputePipelineAsync(this.pipelineDescriptor(spec, layout)), this.lostPromise]);
          } catch (e) {
            this.checkAlive();
            throw new GPUValidationError(`kernel ${spec.key}: ${(e as Error).message}`);
          }
          if (!this.pipelines.has(spec.key)) {
            this.pipelines.set(spec.key, { pipeline, layout });
            this.pipelineCount++;
          }
          onProgress?.(++done, total);
        }),
      );
    } finally {
      this.compileMs += performance.now() - t0;
    }
    return total;
  }

  /**
   * Runs each kernel once over one workgroup with zero parameters and zeroed scratch bindings
   * (every kernel returns early then): drivers that finish compiling at the first dispatch (Mesa's
   * llvmpipe compiles a pipeline's machine code when it first runs) do it here. One submission
   * per kernel, waited for, so that progress is real.
   */
  async launch(specs: Iterable<KernelSpec>, onProgress?: CompileProgress): Promise<number> {
    const list = [...new Map([...specs].filter((s) => !this.launched.has(s.key)).map((s) => [s.key, s])).values()];
    const scratch: GPUBuffer[] = [];
    const t0 = performance.now();
    onProgress?.(0, list.length);
    try {
      for (const [i, spec] of list.entries()) {
        const { pipeline, layout } = this.kernel(spec);
        const entries: GPUBindGroupEntry[] = [];
        for (let b = 0; b < spec.bindings.length + (spec.params ? 1 : 0); b++) {
          scratch[b] ??= this.createBuffer(SCRATCH_BYTES, STORAGE | UNIFORM | COPY_DST, 'launch scratch');
          entries.push({ binding: b, resource: { buffer: scratch[b], size: Math.min(SCRATCH_BYTES, this.limits.maxUniformBufferBindingSize) } });
        }
        const enc = this.gpu.createCommandEncoder();
        const pass = enc.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, this.gpu.createBindGroup({ layout, entries }));
        pass.dispatchWorkgroups(1);
        pass.end();
        this.gpu.queue.submit([enc.finish()]);
        await this.waitFor(this.gpu.queue.onSubmittedWorkDone());
        this.launched.add(spec.key);
        onProgress?.(i + 1, list.length);
      }
      await this.checkScopes();
    } finally {
      for (const b of scratch) b.destroy();
      this.compileMs += performance.now() - t0;
    }
    return list.length;
  }

  /**
   * Makes these kernels ready to run at full speed: compiles their pipelines (compile), then
   * runs each once (launch). Progress counts both steps of every kernel not yet ready.
   */
  async warmup(specs: Iterable<KernelSpec>, onProgress?: CompileProgress): Promise<{ compiled: number; launched: number }> {
    const list = [...specs];
    const keys = (pending: (s: KernelSpec) => boolean) => new Set(list.filter(pending).map((s) => s.key)).size;
    const total = keys((s) => !this.pipelines.has(s.key)) + keys((s) => !this.launched.has(s.key));
    let compiled = 0;
    const compiledCount = await this.compile(list, (d) => onProgress?.((compiled = d), total));
    const launched = await this.launch(list, (d) => onProgress?.(compiled + d, total));
    return { compiled: compiledCount, launched };
  }

  /**
   * Runs fn with nothing recorded or run: every dispatch only notes its kernel. Returns the
   * kernels fn would have dispatched (to compile them ahead, with compile). fn must not read back.
   */
  collectKernels(fn: () => void): KernelSpec[] {
    if (this.collected) throw new Error('collectKernels does not nest');
    this.flush();
    const found = new Map<string, KernelSpec>();
    this.collected = found;
    try {
      this.scope(fn);
    } finally {
      this.collected = null;
    }
    return [...found.values()];
  }

  private computePass(): GPUComputePassEncoder {
    this.encoder ??= this.gpu.createCommandEncoder();
    this.pass ??= this.encoder.beginComputePass();
    return this.pass;
  }

  private endPass(): GPUCommandEncoder {
    this.pass?.end();
    this.pass = null;
    return (this.encoder ??= this.gpu.createCommandEncoder());
  }

  /** Reserves `bytes` in this batch's arena, flushing first if it is full; returns the offset. */
  private arenaAlloc(bytes: number): number {
    const alignTo = this.limits.minUniformBufferOffsetAlignment;
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
    this.checkAlive();
    if (buffers.length !== spec.bindings.length) {
      throw new Error(`kernel ${spec.key}: expects ${spec.bindings.length} buffers, got ${buffers.length}`);
    }
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    const [gx, gy = 1, gz = 1] = grid;
    if (gx > maxWg || gy > maxWg || gz > maxWg) {
      throw new GPULimitError(`kernel ${spec.key}: grid ${gx}x${gy}x${gz} exceeds ${maxWg} workgroups per dimension`);
    }
    if (this.collected) return void this.collected.set(spec.key, spec);
    if (gx === 0 || gy === 0 || gz === 0) return;
    const maxBind = this.limits.maxStorageBufferBindingSize;
    for (const b of buffers) {
      const size = b.size ?? b.buffer.size - (b.offset ?? 0);
      if (size > maxBind) {
        throw new GPULimitError(
          `kernel ${spec.key}: binding of ${size} bytes exceeds maxStorageBufferBindingSize (${maxBind})`,
        );
      }
    }
    const { pipeline, layout } = this.kernel(spec);
    this.launched.add(spec.key);
    let paramOffset = -1;
    if (spec.params) {
      paramOffset = this.arenaAlloc(spec.params.length * 4);
      for (let i = 0; i < spec.params.length; i++) {
        const c = spec.params[i];
        const v = params[i];
        const at = paramOffset + 4 * i;
        if (c === 'f') this.arenaView.setFloat32(at, v, true);
        else if (c === 'i') this.arenaView.setInt32(at, v, true);
        else this.arenaView.setUint32(at, v, true);
      }
    }
    const bg = this.bindGroup(spec, layout, buffers, paramOffset);
    if (this.profiler?.full) this.flush();
    const pass = this.profiler ? this.profiler.beginPass(this.endPass(), spec.key) : this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(gx, gy, gz);
    if (this.profiler) pass.end();
    this.dispatchCount++;
  }

  private profiler: KernelProfiler | null = null;

  /** Times every dispatch from now on (needs timestamp-query); stopProfiling() returns the totals. */
  startProfiling(): void {
    if (!this.info.features.timestampQuery) throw new GPULimitError('profiling needs the timestamp-query feature, which this adapter lacks');
    this.flush();
    this.profiler ??= new KernelProfiler(this.gpu);
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

  private bindGroup(spec: KernelSpec, layout: GPUBindGroupLayout, buffers: BufferBinding[], paramOffset: number) {
    let key = spec.key;
    for (const b of buffers) key += `|${this.pool.id(b.buffer)}:${b.offset ?? 0}:${b.size ?? -1}`;
    key += `|p${paramOffset}`;
    let bg = this.bindGroups.get(key);
    if (bg) return bg;
    const entries: GPUBindGroupEntry[] = buffers.map((b, i) => ({
      binding: i,
      resource: { buffer: b.buffer, offset: b.offset ?? 0, size: b.size },
    }));
    if (paramOffset >= 0) {
      entries.push({
        binding: buffers.length,
        resource: { buffer: this.arenaGpu, offset: paramOffset, size: align(spec.params.length * 4, 16) },
      });
    }
    bg = this.gpu.createBindGroup({ layout, entries });
    if (this.bindGroups.size > 8192) this.bindGroups.clear();
    this.bindGroups.set(key, bg);
    return bg;
  }

  /** Records a buffer-to-buffer copy, ordered with the dispatches around it. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.checkAlive();
    if (bytes === 0 || this.collected) return;
    this.endPass().copyBufferToBuffer(src, srcOffset, dst, dstOffset, align(bytes, 4));
  }

  /**
   * Uploads bytes into a buffer, ordered with the recorded work: small uploads go through the
   * arena and a recorded copy, large ones are written directly once the recorded work is submitted.
   */
  upload(dst: GPUBuffer, dstOffset: number, data: ArrayBufferView): void {
    this.checkAlive();
    if (this.collected) return;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const size = align(bytes.byteLength, 4);
    if (size <= 64 * 1024) {
      const off = this.arenaAlloc(size);
      this.arenaCpu.set(bytes, off);
      this.copy(this.arenaGpu, off, dst, dstOffset, size);
      return;
    }
    if (this.encoder) this.flush();
    if (bytes.byteLength % 4 === 0) {
      this.gpu.queue.writeBuffer(dst, dstOffset, bytes as Uint8Array<ArrayBuffer>);
    } else {
      const padded = new Uint8Array(size);
      padded.set(bytes);
      this.gpu.queue.writeBuffer(dst, dstOffset, padded);
    }
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.checkAlive();
    if (!this.encoder) return;
    const enc = this.endPass();
    this.profiler?.resolve(enc);
    if (this.arenaUsed > 0) {
      this.gpu.queue.writeBuffer(this.arenaGpu, 0, this.arenaCpu, 0, align(this.arenaUsed, 4));
      this.arenaUsed = 0;
    }
    this.gpu.queue.submit([enc.finish()]);
    this.encoder = null;
    this.submitCount++;
    this.profiler?.afterSubmit();
  }

  /** Copies `bytes` from a buffer to the CPU. The only point where the CPU waits for the GPU. */
  async readBuffer(src: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    return (await this.readBuffers([{ buffer: src, offset, size: bytes }]))[0];
  }

  /** Several ranges read back through one staging buffer, one submit and one wait. */
  async readBuffers(ranges: Array<{ buffer: GPUBuffer; offset?: number; size: number }>): Promise<ArrayBuffer[]> {
    if (this.collected) throw new Error('collectKernels: nothing runs, so nothing can be read back');
    const offsets: number[] = [];
    let total = 0;
    for (const r of ranges) {
      offsets.push(total);
      total += align(r.size, 4);
    }
    const staging = this.acquireReadBuffer(Math.max(total, 4));
    ranges.forEach((r, i) => this.copy(r.buffer, r.offset ?? 0, staging, offsets[i], r.size));
    this.flush();
    try {
      await this.waitFor(staging.mapAsync(MAP_MODE_READ, 0, Math.max(total, 4)));
      await this.checkScopes();
      const mapped = staging.getMappedRange(0, Math.max(total, 4));
      const out = ranges.map((r, i) => mapped.slice(offsets[i], offsets[i] + r.size));
      staging.unmap();
      this.releaseReadBuffer(staging);
      return out;
    } catch (e) {
      this.checkAlive();
      throw e;
    }
  }

  /** Waits for all submitted work; reports asynchronous errors (out of memory, validation). */
  async sync(): Promise<void> {
    this.flush();
    await this.waitFor(this.gpu.queue.onSubmittedWorkDone());
    await this.checkScopes();
  }

  /** Settles with `work`, or rejects when the device is lost first; naps meanwhile if asked to. */
  private async waitFor(work: Promise<unknown>): Promise<void> {
    const settled = Promise.race([work, this.lostPromise]);
    if (!this.sleepWhileWaiting) return void (await settled);
    let done = false;
    settled.then(() => (done = true), () => (done = true));
    // Atomics.wait on a cell nobody notifies: a sleep that blocks the thread without spinning.
    this.napCell ??= new Int32Array(new SharedArrayBuffer(4));
    const t0 = performance.now();
    while (!done) {
      const nap = Math.min(MAX_NAP_MS, NAP_FRACTION * (performance.now() - t0));
      if (nap >= MIN_NAP_MS) Atomics.wait(this.napCell, 0, 0, nap);
      await new Promise((r) => setImmediate(r));
    }
    await settled;
  }

  private async checkScopes(): Promise<void> {
    const pending = this.pendingScopes;
    this.pendingScopes = [];
    for (const e of await Promise.all(pending)) {
      if (e) this.firstError ??= toError(e);
    }
    this.checkAlive();
  }

  private acquireReadBuffer(size: number): GPUBuffer {
    const b = Math.max(256, 2 ** Math.ceil(Math.log2(size)));
    return this.readPool.get(b)?.pop() ?? this.createBuffer(b, MAP_READ | COPY_DST, 'readback');
  }

  private releaseReadBuffer(buf: GPUBuffer): void {
    let list = this.readPool.get(buf.size);
    if (!list) this.readPool.set(buf.size, (list = []));
    list.push(buf);
  }

  memoryStats(): PoolStats {
    return this.pool.getStats();
  }

  /** Releases every GPU resource; the device cannot be used afterwards. */
  destroy(): void {
    this.pool.trim();
    for (const list of this.readPool.values()) for (const b of list) b.destroy();
    this.arenaGpu.destroy();
    this.gpu.destroy();
  }
}

function toError(e: GPUError): Error {
  const name = e.constructor?.name ?? '';
  if (name.includes('OutOfMemory')) return new GPUOutOfMemoryError(`GPU out of memory: ${e.message}`);
  return new GPUValidationError(e.message);
}

export function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function collect(v: unknown, out: Set<unknown>): void {
  if (!v || typeof v !== 'object') return;
  out.add(v);
  if (Array.isArray(v)) for (const x of v) collect(x, out);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out);
}
