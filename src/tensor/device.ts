/**
 * The GPU device: created from an adapter with its limits and features, and the one object ops
 * talk to. Its jobs live in their own modules: the GPUDevice's health (context.ts), compiled
 * kernels (kernels.ts), recording and submitting (recorder.ts), reading back (readback.ts),
 * tensor lifetime (lifetime.ts, pool.ts), and the kernel tuning table (tuning.ts).
 */
import { BufferPool, type PoolStats } from './pool.js';
import { WebGPUUnavailableError } from './errors.js';
import { GPUContext, type GPUWait } from './context.js';
import { KernelCache, type BufferBinding, type CompileProgress, type KernelSpec, type WarmupReport } from './kernels.js';
import { CommandRecorder } from './recorder.js';
import { Readback } from './readback.js';
import { Scopes, type Disposable } from './lifetime.js';
import { deviceInfo, deviceRequest, type DeviceInfo, type DeviceLimits, type OptionalFeature } from './limits.js';
import { DEFAULT_TUNING, resolveTuning, uniformWindowBytes, type KernelTuning } from './tuning.js';
import type { HelperLauncher, LaunchHelpers } from './launch-across.js';
import type { KernelTime } from './profiler.js';

export type { Access, BufferBinding, CompileProgress, KernelSpec, WarmupReport } from './kernels.js';
export type { DeviceInfo, DeviceLimits } from './limits.js';
export type { GPUWait } from './context.js';

export interface CreateDeviceOptions {
  /** The WebGPU entry point; defaults to `navigator.gpu`. The Node entry passes Dawn's. */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /** Turn off optional features (for testing fallbacks). */
  disableFeatures?: OptionalFeature[];
  /**
   * 'adapter' (default) asks for the adapter's own limits; 'default' keeps the WebGPU
   * specification's defaults (what a page gets without asking), to test that every kernel
   * choice respects them.
   */
  limits?: 'adapter' | 'default';
  /** Kernel tuning values in place of DEFAULT_TUNING's (checked: a bad one throws TuningError). */
  tuning?: Partial<KernelTuning>;
  /** How to wait for GPU work (default: await it). createNodeDevice passes a napping one. */
  waitForGPU?: GPUWait;
  /**
   * Devices of this adapter a warm-up (warmup, launch) may run kernels' first runs on at once (default 1: this one
   * alone). Helpers start only where a first run is seen to compile the kernel (Mesa's llvmpipe) and stop unless
   * the driver's shader cache then serves this device (launch-across.ts). createNodeDevice sets one per core, up to MAX_WARMUP_DEVICES.
   */
  warmupDevices?: number;
}

export class Device {
  readonly info: DeviceInfo;
  readonly pool: BufferPool;
  private currentTuning: KernelTuning;
  private readonly ctx: GPUContext;
  private readonly kernels: KernelCache;
  private readonly recorder: CommandRecorder;
  private readonly readback: Readback;
  private readonly scopes = new Scopes();

  private constructor(
    readonly gpu: GPUDevice,
    info: DeviceInfo,
    tuning: KernelTuning,
    /** Where helper devices for warm-ups come from, and how many at most. */
    private readonly helperSource: { entry: GPU; opts: CreateDeviceOptions; helpers: number },
    waitForGPU?: GPUWait,
  ) {
    this.info = info;
    this.currentTuning = tuning;
    this.ctx = new GPUContext(gpu, info.limits, () => this.currentTuning, waitForGPU);
    this.pool = new BufferPool((size, usage, label) => this.ctx.createBuffer(size, usage, label), uniformWindowBytes(info.limits));
    this.kernels = new KernelCache(this.ctx, (b) => this.pool.id(b));
    this.recorder = new CommandRecorder(this.ctx, this.kernels, info.features.timestampQuery);
    this.readback = new Readback(this.ctx, this.recorder);
  }

  static async create(opts: CreateDeviceOptions = {}): Promise<Device> {
    const tuning = resolveTuning(opts.tuning);
    const gpu = opts.gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
    if (!gpu) {
      throw new WebGPUUnavailableError(
        'WebGPU is not available: this browser has no navigator.gpu (use a recent Chrome/Edge, or ' +
          'Firefox/Safari with WebGPU enabled). In Node, import from the package\'s "/node" entry, which uses ' +
          'the `webgpu` package (Dawn).',
      );
    }
    const warmupDevices = opts.warmupDevices ?? 1;
    if (!Number.isInteger(warmupDevices) || warmupDevices < 1) throw new RangeError(`warmupDevices must be a positive integer, got ${warmupDevices}`);
    const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) {
      throw new WebGPUUnavailableError(
        'No WebGPU adapter found. In Node on Linux, Dawn needs a Vulkan driver: install Mesa >= 25 ' +
          '(Debian bookworm: `apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`) or a GPU driver.',
      );
    }
    const gpuDevice = await adapter.requestDevice(deviceRequest(adapter, opts.limits ?? 'adapter', opts.disableFeatures ?? []));
    const info = deviceInfo(adapter, gpuDevice);
    try {
      return new Device(gpuDevice, info, resolveTuning(tuning, DEFAULT_TUNING, info.limits), { entry: gpu, opts, helpers: warmupDevices - 1 }, opts.waitForGPU);
    } catch (e) {
      gpuDevice.destroy();
      throw e;
    }
  }

  get limits(): DeviceLimits {
    return this.info.limits;
  }

  /** The kernel tuning values this device's kernels are generated with. */
  get tuning(): Readonly<KernelTuning> {
    return this.currentTuning;
  }

  /**
   * Replaces some tuning values (autotuning does); throws TuningError, changing nothing, if one
   * is out of range. Kernels already made keep their values: their keys name them.
   */
  tune(overrides: Partial<KernelTuning>): void {
    this.currentTuning = resolveTuning(overrides, this.currentTuning, this.limits);
  }

  get isLost(): boolean {
    return this.ctx.isLost;
  }

  /** Throws if the device is lost or an earlier asynchronous GPU error was reported. */
  checkAlive(): void {
    this.ctx.checkAlive();
  }

  createBuffer(size: number, usage: number, label: string): GPUBuffer {
    return this.ctx.createBuffer(size, usage, label);
  }

  // ---- lifetime (lifetime.ts) ----

  track(t: Disposable): void {
    this.scopes.track(t);
  }

  untrack(t: Disposable): void {
    this.scopes.untrack(t);
  }

  /** Runs fn; every tensor created inside and not returned (directly, or in an array/object of tensors) is disposed when it ends. */
  scope<T>(fn: () => T): T {
    return this.scopes.scope(fn);
  }

  memoryStats(): PoolStats {
    return this.pool.getStats();
  }

  // ---- kernels (kernels.ts) ----

  /** Whether the pipeline of this kernel is compiled. */
  hasPipeline(key: string): boolean {
    return this.kernels.has(key);
  }

  get pipelineCount(): number {
    return this.kernels.pipelineCount;
  }

  get compileMs(): number {
    return this.kernels.compileMs;
  }

  /** Bind groups made since the device was made: a decode loop in its steady state makes none. */
  get bindGroupCount(): number {
    return this.kernels.bindGroupCount;
  }

  /**
   * Kernels that have had their first run on this adapter, in this process or as restored: what a later process
   * restores (restoreFirstRuns) to know which of its kernels the driver's shader cache holds.
   */
  firstRuns(): string[] {
    return this.kernels.firstRuns();
  }

  /**
   * Kernels an earlier process ran on this adapter (saveTuning keeps them, loadTuning restores them). A background
   * warm-up (warmupInBackground) with a kernel outside them starts its helper devices at once, instead of timing a
   * first run on this device, which would compile that kernel on the queue the decoding waits on; a prompt whose
   * one-pass prefill would run a kernel outside them is read a token per pass (decode/prefill.ts).
   */
  restoreFirstRuns(keys: Iterable<string>): void {
    this.kernels.restoreFirstRuns(keys);
  }

  /**
   * Whether this kernel has had its first run on this adapter (here, on a helper device, or in an earlier process
   * as restoreFirstRuns tells); false when the restored record lacks it, undefined with no record restored.
   */
  hasRun(key: string): boolean | undefined {
    return this.kernels.hasRun(key);
  }

  /** Whether a record of first runs was restored (restoreFirstRuns): hasRun then answers for every kernel. */
  get keepsFirstRuns(): boolean {
    return this.kernels.keepsFirstRuns;
  }

  /** Compiles these kernels' pipelines ahead of use (kernels.ts); resolves with how many were new. */
  compile(specs: Iterable<KernelSpec>, onProgress?: CompileProgress): Promise<number> {
    return this.kernels.compile(specs, onProgress);
  }

  /** Runs each kernel not yet run once, where drivers that compile at a first run do so (with helper devices: warmupDevices). */
  async launch(specs: Iterable<KernelSpec>, onProgress?: CompileProgress): Promise<number> {
    return (await this.kernels.launch(specs, onProgress, { across: this.launchHelpers() })).launched;
  }

  /** compile, then launch: these kernels run at full speed from their first dispatch. */
  warmup(specs: Iterable<KernelSpec>, onProgress?: CompileProgress): Promise<WarmupReport> {
    return this.kernels.warmup(specs, onProgress, { across: this.launchHelpers() });
  }

  /**
   * warmup beside other work on this device (decoding while the rest compiles): helper devices run the first
   * runs, and this device runs each kernel after them, from the driver's cache, so its queue is not held up by a
   * compilation (without helpers or a shared cache it compiles them itself). Not counted in compileMs.
   * Aborting `signal` starts no more kernels (the rest compile at their first dispatch); the promise resolves once
   * the runs under way have ended. Await it before the process exits: llvmpipe can crash when a process ends while it
   * compiles.
   */
  warmupInBackground(specs: Iterable<KernelSpec>, onProgress?: CompileProgress, signal?: AbortSignal): Promise<WarmupReport> {
    return this.kernels.warmup(specs, onProgress, { across: this.launchHelpers(true), background: true, signal });
  }

  /**
   * How first runs may use helper devices (undefined: this device alone). In the background this device decodes
   * instead of compiling, so one more helper takes its share.
   */
  private launchHelpers(background = false): LaunchHelpers<KernelSpec> | undefined {
    const configured = this.helperSource.helpers;
    if (configured < 1) return undefined;
    const helpers = background ? configured + 1 : configured;
    const { warmupCompileMs: compileMs, warmupCachedFraction: cachedFraction } = this.currentTuning;
    return { helpers, compileMs, cachedFraction, makeHelper: () => this.helperDevice() };
  }

  /** A device like this one, of the same adapter (null if the entry point hands out another), that runs kernels once. */
  private async helperDevice(): Promise<HelperLauncher<KernelSpec> | null> {
    const { entry, opts } = this.helperSource;
    const d = await Device.create({ ...opts, gpu: entry, tuning: this.currentTuning, warmupDevices: 1 });
    const same = d.info.adapter === this.info.adapter && JSON.stringify(d.info.features) === JSON.stringify(this.info.features);
    if (!same) {
      d.destroy();
      return null;
    }
    return { launch: async (spec) => void (await d.launch([spec])), destroy: () => d.destroy() };
  }

  /**
   * Runs fn with nothing recorded or run: every dispatch only notes its kernel. Returns the
   * kernels fn would have dispatched (to compile them ahead, with compile). fn must not read back.
   */
  collectKernels(fn: () => void): KernelSpec[] {
    return this.recorder.collect(() => this.scope(fn));
  }

  // ---- recording (recorder.ts) ----

  get dispatchCount(): number {
    return this.recorder.dispatchCount;
  }

  /** Compute passes recorded since the device was made (a copy or upload between dispatches starts a new one). */
  get passCount(): number {
    return this.recorder.passCount;
  }

  get submitCount(): number {
    return this.recorder.submitCount;
  }

  /** Records one dispatch of a kernel over `grid` workgroups. */
  dispatch(spec: KernelSpec, buffers: BufferBinding[], params: number[], grid: [number, number?, number?]): void {
    this.recorder.dispatch(spec, buffers, params, grid);
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.recorder.copy(src, srcOffset, dst, dstOffset, bytes);
  }

  upload(dst: GPUBuffer, dstOffset: number, data: ArrayBufferView): void {
    this.recorder.upload(dst, dstOffset, data);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.recorder.flush();
  }

  startProfiling(): void {
    this.recorder.startProfiling();
  }

  stopProfiling(): Promise<KernelTime[]> {
    return this.recorder.stopProfiling();
  }

  // ---- reading back (readback.ts) ----

  /** Copies `bytes` from a buffer to the CPU. */
  async readBuffer(src: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    return (await this.readback.readBuffers([{ buffer: src, offset, size: bytes }]))[0];
  }

  readBuffers(ranges: Array<{ buffer: GPUBuffer; offset?: number; size: number }>): Promise<ArrayBuffer[]> {
    return this.readback.readBuffers(ranges);
  }

  /** Waits for all submitted work; reports asynchronous errors (out of memory, validation). */
  sync(): Promise<void> {
    return this.readback.sync();
  }

  /** Releases every GPU resource; the device cannot be used afterwards. */
  destroy(): void {
    this.pool.trim();
    this.readback.destroy();
    this.recorder.destroy();
    this.gpu.destroy();
  }
}
