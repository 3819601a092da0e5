/**
 * Compiled kernels: bind-group layouts, pipelines and bind groups, each made once and cached,
 * and the ahead-of-use steps (compile, launch, warmup) that take compilation off a generation's
 * first steps.
 */
import { align, type GPUContext } from './context.js';
import { GPUValidationError } from './errors.js';
import { launchAcross, type LaunchHelpers } from './launch-across.js';
import { COPY_DST, STORAGE, UNIFORM } from './usage.js';

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

/** What a warm-up did: pipelines compiled, kernels run once, and helper devices that ran some of them first. */
/**
 * How a warm-up runs: `across`, the helper devices first runs may use (launch-across.ts); `background`, work goes on
 * on this device meanwhile (decoding), so helpers run the first runs and this device runs each after them, from the
 * driver's cache (LaunchAcrossOptions.mainLast), and the time is not counted in compileMs; once `signal` is aborted,
 * no more kernels start (those not run then compile at their first dispatch).
 */
export interface WarmupMode {
  across?: LaunchHelpers<KernelSpec>;
  background?: boolean;
  signal?: AbortSignal;
}

export interface WarmupReport {
  compiled: number;
  launched: number;
  helperDevices: number;
}

/** Compiles ahead of use; `onProgress` is called with pipelines compiled so far and in all. */
export type CompileProgress = (done: number, total: number) => void;

export interface Kernel {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** Each binding of a launch (see launch): the largest uniform array a kernel declares fits. */
const SCRATCH_BYTES = 1 << 16;
/** Bind groups kept before the cache starts over (a decode loop reuses a few hundred). */
const MAX_BIND_GROUPS = 8192;

export class KernelCache {
  private pipelines = new Map<string, Kernel>();
  private layouts = new Map<string, GPUBindGroupLayout>();
  private bindGroups = new Map<string, GPUBindGroup>();
  /** Kernels dispatched at least once (their driver-side compilation is done). */
  private launched = new Set<string>();
  /** Whether the last launch's first runs compiled (a helper device was needed, or a run took warmupCompileMs). */
  private firstRunsCompiled = false;
  /** Kernels an earlier process ran on this adapter (restoreFirstRuns); null when nothing was restored. */
  private ranBefore: Set<string> | null = null;
  /** Kernels helper devices ran first for this device. */
  private helpersRan = new Set<string>();
  /** Pipelines compiled since the device was made: ahead of use (compile) or at a first dispatch; not those of a background warm-up. */
  pipelineCount = 0;
  /** Wall time spent compiling pipelines, ahead of use or at first dispatches; not a background warm-up's, which work went on beside. */
  compileMs = 0;
  /** Bind groups made (cache misses of bindGroup). */
  bindGroupCount = 0;

  constructor(
    private readonly ctx: GPUContext,
    /** A buffer's id, stable while it lives (the pool's): part of a bind group's key. */
    private readonly bufferId: (b: GPUBuffer) => number,
  ) {}

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
      layout = this.ctx.gpu.createBindGroupLayout({ entries, label: layoutKey });
      this.layouts.set(layoutKey, layout);
    }
    return layout;
  }

  private pipelineDescriptor(spec: KernelSpec, layout: GPUBindGroupLayout): GPUComputePipelineDescriptor {
    const gpu = this.ctx.gpu;
    return {
      layout: gpu.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module: gpu.createShaderModule({ code: spec.wgsl(), label: spec.key }), entryPoint: 'main' },
      label: spec.key,
    };
  }

  /** The kernel's pipeline, compiled now if it is not yet. */
  kernel(spec: KernelSpec): Kernel {
    let k = this.pipelines.get(spec.key);
    if (k) return k;
    const t0 = performance.now();
    const layout = this.layoutFor(spec);
    const gpu = this.ctx.gpu;
    gpu.pushErrorScope('validation');
    const pipeline = gpu.createComputePipeline(this.pipelineDescriptor(spec, layout));
    const key = spec.key;
    this.ctx.watch(
      gpu.popErrorScope().then((e) => {
        // Takes precedence over the "invalid pipeline" errors it causes at dispatch, which can arrive first.
        if (e) this.ctx.fail(new GPUValidationError(`kernel ${key}: ${e.message}`));
        return null;
      }),
    );
    k = { pipeline, layout };
    this.pipelines.set(spec.key, k);
    this.pipelineCount++;
    this.compileMs += performance.now() - t0;
    return k;
  }

  /** Notes that a kernel has run (a dispatch of it was recorded). */
  markLaunched(key: string): void {
    this.launched.add(key);
  }

  has(key: string): boolean {
    return this.pipelines.has(key);
  }

  /** Notes kernels that had their first run on this adapter in an earlier process (the driver's cache holds them). */
  restoreFirstRuns(keys: Iterable<string>): void {
    this.ranBefore ??= new Set();
    for (const k of keys) this.ranBefore.add(k);
  }

  /**
   * Whether this kernel has had its first run on this adapter: here, on a helper device, or as restored; false when it
   * has not as far as the restored record tells, undefined without a record.
   */
  hasRun(key: string): boolean | undefined {
    if (this.launched.has(key) || this.helpersRan.has(key) || this.ranBefore?.has(key)) return true;
    return this.ranBefore ? false : undefined;
  }

  /** Whether a record of first runs was restored: hasRun then answers for every kernel. */
  get keepsFirstRuns(): boolean {
    return this.ranBefore !== null;
  }

  /** Kernels that have had their first run on this adapter: here, on a helper device, or as restored. Sorted. */
  firstRuns(): string[] {
    return [...new Set([...(this.ranBefore ?? []), ...this.launched, ...this.helpersRan])].sort();
  }

  /** The bind group of these buffers (and this params slot of the arena, if any), made once. */
  bindGroup(spec: KernelSpec, layout: GPUBindGroupLayout, buffers: BufferBinding[], params: BufferBinding | null): GPUBindGroup {
    let key = spec.key;
    for (const b of buffers) key += `|${this.bufferId(b.buffer)}:${b.offset ?? 0}:${b.size ?? -1}`;
    key += `|p${params ? params.offset : -1}`;
    let bg = this.bindGroups.get(key);
    if (bg) return bg;
    const entries: GPUBindGroupEntry[] = buffers.map((b, i) => ({
      binding: i,
      resource: { buffer: b.buffer, offset: b.offset ?? 0, size: b.size },
    }));
    if (params) entries.push({ binding: buffers.length, resource: params });
    bg = this.ctx.gpu.createBindGroup({ layout, entries });
    this.bindGroupCount++;
    if (this.bindGroups.size > MAX_BIND_GROUPS) this.bindGroups.clear();
    this.bindGroups.set(key, bg);
    return bg;
  }

  /**
   * Compiles the pipelines of these kernels that are not compiled yet, all requested at once
   * (createComputePipelineAsync: the driver may compile them in parallel, off this thread).
   * Resolves with how many it compiled.
   */
  async compile(specs: Iterable<KernelSpec>, onProgress?: CompileProgress, { background = false }: WarmupMode = {}): Promise<number> {
    this.ctx.checkAlive();
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
            pipeline = await this.ctx.unlessLost(this.ctx.gpu.createComputePipelineAsync(this.pipelineDescriptor(spec, layout)));
          } catch (e) {
            this.ctx.checkAlive();
            throw new GPUValidationError(`kernel ${spec.key}: ${(e as Error).message}`);
          }
          if (!this.pipelines.has(spec.key)) {
            this.pipelines.set(spec.key, { pipeline, layout });
            if (!background) this.pipelineCount++;
          }
          onProgress?.(++done, total);
        }),
      );
    } finally {
      if (!background) this.compileMs += performance.now() - t0;
    }
    return total;
  }

  /**
   * Runs each kernel once over one workgroup with zero parameters and zeroed scratch bindings
   * (every kernel returns early then): drivers that finish compiling at the first dispatch (Mesa's
   * llvmpipe compiles a pipeline's machine code when it first runs) do it here. One submission
   * per kernel, waited for, so that progress is real; `mode` (WarmupMode): helper devices, in the background, until a signal.
   */
  async launch(specs: Iterable<KernelSpec>, onProgress?: CompileProgress, { across, background = false, signal }: WarmupMode = {}): Promise<{ launched: number; helperDevices: number }> {
    const list = [...new Map([...specs].filter((s) => !this.launched.has(s.key)).map((s) => [s.key, s])).values()];
    const scratch: GPUBuffer[] = [];
    const t0 = performance.now();
    let helperDevices = 0;
    let slowest = 0;
    onProgress?.(0, list.length);
    try {
      const main = {
        launch: async (spec: KernelSpec) => {
          const t = performance.now();
          await this.launchOne(spec, scratch);
          slowest = Math.max(slowest, performance.now() - t);
        },
      };
      if (across) {
        // In the background a first run on this device would compile on the queue the decoding waits on, so helpers
        // start at once for kernels the driver's cache lacks: after first runs that compiled, or those missing from
        // the restored record. The rest run here while their runs stay quick (launch-across.ts).
        const ran = background ? this.ranBefore : null;
        const groups: Array<[KernelSpec[], boolean]> = ran
          ? [[list.filter((s) => !ran.has(s.key)), true], [list.filter((s) => ran.has(s.key)), false]]
          : [[list, background && this.firstRunsCompiled]];
        let before = 0;
        for (const [group, helpersAtOnce] of groups) {
          if (!group.length) continue;
          let done = 0;
          const r = await launchAcross(main, group, { ...this.recordingHelpers(across), mainLast: background, helpersAtOnce, signal, onLaunched: (d) => onProgress?.(before + (done = d), list.length) });
          helperDevices = Math.max(helperDevices, r.helpers);
          before += done;
        }
      } else {
        for (const [i, spec] of list.entries()) {
          if (signal?.aborted) break;
          await main.launch(spec);
          onProgress?.(i + 1, list.length);
        }
      }
      await this.ctx.checkScopes();
      if (list.length && across) this.firstRunsCompiled = helperDevices > 0 || slowest >= across.compileMs;
    } finally {
      for (const b of scratch) b.destroy();
      if (!background) this.compileMs += performance.now() - t0;
    }
    return { launched: list.filter((s) => this.launched.has(s.key)).length, helperDevices };
  }

  /** Helpers whose first runs count among this adapter's (firstRuns): the driver's shared cache then holds them. */
  private recordingHelpers(across: LaunchHelpers<KernelSpec>): LaunchHelpers<KernelSpec> {
    const makeHelper = async () => {
      const h = await across.makeHelper();
      return h && {
        launch: async (spec: KernelSpec) => {
          await h.launch(spec);
          this.helpersRan.add(spec.key);
        },
        destroy: () => h.destroy(),
      };
    };
    return { ...across, makeHelper };
  }

  /** One kernel's run over one workgroup, waited for; `scratch` holds the zeroed bindings, made as needed. */
  private async launchOne(spec: KernelSpec, scratch: GPUBuffer[]): Promise<void> {
    const gpu = this.ctx.gpu;
    const { pipeline, layout } = this.kernel(spec);
    const entries: GPUBindGroupEntry[] = [];
    for (let b = 0; b < spec.bindings.length + (spec.params ? 1 : 0); b++) {
      scratch[b] ??= this.ctx.createBuffer(SCRATCH_BYTES, STORAGE | UNIFORM | COPY_DST, 'launch scratch');
      entries.push({ binding: b, resource: { buffer: scratch[b], size: Math.min(SCRATCH_BYTES, this.ctx.limits.maxUniformBufferBindingSize) } });
    }
    const enc = gpu.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, gpu.createBindGroup({ layout, entries }));
    pass.dispatchWorkgroups(1);
    pass.end();
    gpu.queue.submit([enc.finish()]);
    await this.ctx.waitFor(gpu.queue.onSubmittedWorkDone());
    this.launched.add(spec.key);
  }

  /**
   * Makes these kernels ready to run at full speed: compiles their pipelines (compile), then
   * runs each once (launch). Progress counts both steps of every kernel not yet ready.
   */
  async warmup(specs: Iterable<KernelSpec>, onProgress?: CompileProgress, mode: WarmupMode = {}): Promise<WarmupReport> {
    const list = [...specs];
    const keys = (pending: (s: KernelSpec) => boolean) => new Set(list.filter(pending).map((s) => s.key)).size;
    const total = keys((s) => !this.pipelines.has(s.key)) + keys((s) => !this.launched.has(s.key));
    let compiled = 0;
    const compiledCount = await this.compile(list, (d) => onProgress?.((compiled = d), total), mode);
    const { launched, helperDevices } = await this.launch(list, (d) => onProgress?.(compiled + d, total), mode);
    return { compiled: compiledCount, launched, helperDevices };
  }
}

/** The arena slot of a kernel's params: 16-byte aligned, as a uniform binding must be sized. */
export function paramsBinding(arena: GPUBuffer, offset: number, params: string): BufferBinding {
  return { buffer: arena, offset, size: align(params.length * 4, 16) };
}
