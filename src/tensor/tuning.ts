/**
 * The kernel tuning table: every constant chosen by measurement (most on Mesa's lavapipe, 2 CPU
 * cores; the figures: docs/performance.md, "Kernel tuning table") in one place. A device starts
 * from DEFAULT_TUNING, overridden where created (`Device.create({ tuning })`) and later by
 * autotuning (tune.ts). Kernels read it when their WGSL is generated, and every value that
 * changes the WGSL is part of the kernel's cache key.
 */
import { TuningError } from './errors.js';
import type { DeviceLimits } from './limits.js';
import type { MatmulFamily } from '../shaders/matmul.js';
import { thresholdSearchBytes, type ThresholdSearch } from '../shaders/sample.js';

/** Which kernel runs a matmul of this kind; set by autotuning, otherwise from `gemvDefaults`. */
export interface MatmulChoice {
  family: MatmulFamily;
  split: number;
  /** Output rows per invocation of the 'nk' gemv: 4 (default), 8 or 16. */
  group?: number;
  /** f16 'nk' gemv: 8 weights per load where K % 8 == 0 (ignored elsewhere). */
  wide?: boolean;
  /** 'nk' gemv: invocations per workgroup, 16, 32 or 64 (default: defaultThreads). */
  threads?: number;
}

/** The untuned 'gemv-uniform' kernel for row counts from `fromRows` up to the next band's. */
export interface GemvBand {
  fromRows: number;
  /** Output rows per invocation: 4, 8 or 16. */
  group: number;
  /** f16 weights loaded 8 at a time. */
  wide: boolean;
}

export interface KernelTuning {
  /** Most rows one gemv dispatch handles (its accumulators live in registers); 1..16. */
  gemvMaxRows: number;
  /**
   * Row counts the 'nk' gemv kernels are compiled for: a dispatch of M rows runs the smallest
   * bucket of at least M, its extra rows repeating the last (at most a third more arithmetic on
   * the activations, which are not what these weight-streaming kernels wait on). Seven variants
   * per matmul shape then serve every row count instead of sixteen, and each variant costs
   * llvmpipe's JIT about a second in a cold process (docs/performance.md, "Compiling kernels").
   * Ascending, within 1..gemvMaxRows.
   */
  gemvRowBuckets: readonly number[];
  /**
   * Up to this many rows the gemv families are candidates too, run in chunks of gemvMaxRows rows
   * that each stream the weights once: a drafter's 20-40 positions or a γ = 24 verify are still
   * weight-bound, and on adapters with little compute per byte that beats the tiled kernel.
   * Beyond it the tiled kernel runs every matmul.
   */
  streamedMaxRows: number;
  /**
   * Without a tuned choice, up to streamedMaxRows rows run 'gemv-uniform' (activations as a
   * uniform buffer where they fit one), reusing each activation load over more weight rows as
   * activation rows grow; wide f16 loads only below 8 rows, where they save more than their
   * registers cost; 16 weight rows per invocation only from 16 activation rows, since 8-12 rows
   * run as fast at 8 and compile in half the time (docs/performance.md, "Kernel tuning table").
   * Ascending `fromRows`, the first 1.
   */
  gemvDefaults: readonly GemvBand[];
  /**
   * Invocations per workgroup of the 'nk' gemv without tuning (16, 32 or 64): this, halved
   * (down to 16) while it would leave fewer than gemvMinWorkgroups workgroups (N = 512 at 8
   * rows per invocation is one of 64), so that a narrow matmul still spreads over several
   * compute units (docs/performance.md, "Kernel tuning table").
   */
  gemvThreads: number;
  gemvMinWorkgroups: number;
  /** Autotuned matmul choices by tuneKey (ops/matmul.ts); a kind without one uses the defaults above. */
  matmulChoices: Readonly<Record<string, MatmulChoice>>;
  /**
   * Query rows per attention workgroup (1..16): four share each key and value load of a verify
   * or a draft four ways. The kernel's loops over a workgroup's rows have a constant trip count,
   * so the per-row arrays stay in registers.
   */
  attentionRows: number;
  /**
   * Query rows per workgroup of the subgroup attention kernel, which runs two or more query rows where the
   * adapter's subgroups are exactly SUBGROUP_LANES wide (0: the tiled kernel everywhere). On lavapipe it
   * takes a verify's 6 rows in 0.33-0.43 ms against the tiled kernel's 0.76-1.2 (8 heads of 64, 100 keys); 16 rows
   * spill its per-row registers (docs/performance.md, "Attention on lavapipe").
   */
  subgroupAttentionRows: number;
  /**
   * A prompt's prefill of up to this many tokens runs attention one query row per workgroup, the kernel decoding's
   * one-token steps run: as fast as the multi-row kernels there, whose JIT takes llvmpipe 1.1-2 s, which a cold
   * start would wait for before its first token (docs/performance.md, "Compiling kernels").
   */
  prefillOneRowAttention: number;
  /**
   * A prompt of up to this many tokens whose one-pass prefill would run a kernel never run on this adapter (as the
   * restored first runs tell) is read a token per pass, with the one-token steps' kernels (decode/prefill.ts): on
   * lavapipe a cold start's first token came 0.4-0.7 s sooner for 4 and 20 tokens, and each token costs about 14 ms.
   */
  coldPrefillMaxTokens: number;
  /**
   * How filteredProbs searches its top-k / top-p thresholds: 2 bits per pass over top-k's few gathered tokens
   * decode as fast as 4 and compile in half the time; small workgroups, since llvmpipe pays for every barrier;
   * 64, not 32, to leave a GPU's row enough lanes (docs/performance.md, "Kernel tuning table").
   */
  thresholdSearch: ThresholdSearch;
  /**
   * Invocations per row of softmax, log-softmax and argmax (64, 128 or 256) over vocabulary rows: 64, since
   * llvmpipe pays for each of the reduction's barriers (argmax's JIT and its six-row runs take a third less than
   * at 256; docs/performance.md, "Kernel tuning table"), and 64 is a full wavefront on GPUs.
   */
  rowWorkgroup: number;
  /**
   * Invocations per LayerNorm row up to layerNormMaxWidth elements (wider rows use
   * rowWorkgroup): a hidden row (≤ 2048) is too little work for 256 invocations and the two
   * reductions' barriers dominate (docs/performance.md, "Kernel tuning table"); 64 is still a
   * full wavefront on GPUs.
   */
  layerNormWorkgroup: number;
  layerNormMaxWidth: number;
  /**
   * Node's napping wait (node-wait.ts): a nap is napFraction of the time waited so far, at most
   * maxNapMs, and none until it would reach minNapMs (the first millisecond spins): a short wait
   * (a real GPU's decode step, a tiny model) is not delayed, a long one is noticed at most about
   * 5 % late, and Dawn ticks a few dozen times per wait instead of spinning a core
   * (docs/performance.md, "Kernel tuning table").
   */
  napFraction: number;
  minNapMs: number;
  maxNapMs: number;
  /**
   * Warm-up helpers (launch-across.ts, CreateDeviceOptions.warmupDevices): a kernel's first run of at least
   * warmupCompileMs is taken for the driver compiling it then (llvmpipe's JIT takes 0.1-3 s a kernel; a GPU
   * driver's compiled pipeline runs in about a millisecond), and this device's run of a helper's kernel in under
   * warmupCachedFraction of the helper's time for the driver's shader cache serving it (milliseconds against a
   * second; docs/performance.md, "Compiling kernels").
   */
  warmupCompileMs: number;
  warmupCachedFraction: number;
}

export const DEFAULT_TUNING: Readonly<KernelTuning> = deepFreeze<KernelTuning>({
  gemvMaxRows: 16,
  gemvRowBuckets: [1, 2, 4, 6, 8, 12, 16],
  streamedMaxRows: 64,
  gemvDefaults: [
    { fromRows: 1, group: 4, wide: true },
    { fromRows: 4, group: 8, wide: true },
    { fromRows: 8, group: 8, wide: false },
    { fromRows: 16, group: 16, wide: false },
  ],
  gemvThreads: 16,
  gemvMinWorkgroups: 4,
  matmulChoices: {},
  attentionRows: 4,
  subgroupAttentionRows: 8,
  prefillOneRowAttention: 32,
  coldPrefillMaxTokens: 32,
  thresholdSearch: { digitBits: 2, wg: 64 },
  rowWorkgroup: 64,
  layerNormWorkgroup: 64,
  layerNormMaxWidth: 2048,
  napFraction: 0.05,
  minNapMs: 0.05,
  maxNapMs: 2,
  warmupCompileMs: 100,
  warmupCachedFraction: 0.5,
});

/**
 * Mesa's software driver (lavapipe) runs workgroups on LP_NUM_THREADS threads, one per core by
 * default; twice that balances this project's small dispatches better (docs/performance.md,
 * "Kernel tuning table"). Per process, not per device: it is read when the Vulkan instance is
 * created, so entry points (the CLI, benchmarks, tests) set it before their first WebGPU call.
 */
export const LAVAPIPE_THREADS_PER_CORE = 2;

/** Devices a warm-up in Node compiles on at once, at most (createNodeDevice): one per core, up to this. */
export const MAX_WARMUP_DEVICES = 4;

/**
 * 'gemv-uniform' binds a dispatch's activation rows in a uniform window of this many bytes (or
 * the device's binding limit, if lower) whatever K is, so that one kernel per row count serves
 * every matmul (docs/performance.md, "Compiling kernels"). The buffer pool makes every buffer at
 * least this large, which the window then always fits.
 */
export const UNIFORM_WINDOW_MAX_BYTES = 1 << 16;

/**
 * The uniform window's bytes on a device with these limits: a multiple of 256, the largest
 * offset alignment WebGPU allows, so that a window ending at a pool buffer's end starts aligned.
 */
export function uniformWindowBytes(limits: Pick<DeviceLimits, 'maxUniformBufferBindingSize'>): number {
  return Math.floor(Math.min(limits.maxUniformBufferBindingSize, UNIFORM_WINDOW_MAX_BYTES) / 256) * 256;
}

const MATMUL_FAMILIES: readonly MatmulFamily[] = ['tiled', 'gemv', 'gemv-split', 'gemv-subgroup', 'gemv-uniform'];

/**
 * `base` with `overrides`, each field checked (against the device's limits where given); throws
 * TuningError naming the first bad one.
 */
export function resolveTuning(overrides: Partial<KernelTuning> = {}, base: Readonly<KernelTuning> = DEFAULT_TUNING, limits?: DeviceLimits): KernelTuning {
  const t: KernelTuning = { ...base, ...overrides };
  const int = (field: keyof KernelTuning, v: unknown, lo: number, hi = Infinity) => {
    if (!Number.isInteger(v) || (v as number) < lo || (v as number) > hi) {
      throw new TuningError(field, hi === Infinity ? `an integer >= ${lo}` : `an integer in ${lo}..${hi}`, v);
    }
  };
  const oneOf = (field: string, v: unknown, allowed: readonly unknown[]) => {
    if (!allowed.includes(v)) throw new TuningError(field, `one of ${allowed.join(', ')}`, v);
  };
  const num = (field: keyof KernelTuning, v: unknown, lo: number, hi: number) => {
    if (typeof v !== 'number' || !(v >= lo && v <= hi)) throw new TuningError(field, `a number in [${lo}, ${hi}]`, v);
  };
  int('gemvMaxRows', t.gemvMaxRows, 1, 16);
  const buckets = t.gemvRowBuckets;
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.some((b, i) => !Number.isInteger(b) || b < 1 || b > t.gemvMaxRows || (i > 0 && b <= buckets[i - 1]))) {
    throw new TuningError('gemvRowBuckets', `ascending integers in 1..${t.gemvMaxRows} (gemvMaxRows)`, buckets);
  }
  int('streamedMaxRows', t.streamedMaxRows, 0);
  const bands = t.gemvDefaults;
  if (!Array.isArray(bands) || bands[0]?.fromRows !== 1 || bands.some((b, i) => !Number.isInteger(b.fromRows) || (i > 0 && b.fromRows <= bands[i - 1].fromRows))) {
    throw new TuningError('gemvDefaults', 'bands of ascending integer fromRows, the first 1', bands);
  }
  bands.forEach((b, i) => oneOf(`gemvDefaults[${i}].group`, b.group, [4, 8, 16]));
  oneOf('gemvThreads', t.gemvThreads, [16, 32, 64]);
  int('gemvMinWorkgroups', t.gemvMinWorkgroups, 1, 1024);
  for (const [key, c] of Object.entries(t.matmulChoices)) validateChoice(`matmulChoices['${key}']`, c);
  int('attentionRows', t.attentionRows, 1, 16);
  int('subgroupAttentionRows', t.subgroupAttentionRows, 0, 16);
  int('prefillOneRowAttention', t.prefillOneRowAttention, 0);
  int('coldPrefillMaxTokens', t.coldPrefillMaxTokens, 0);
  oneOf('thresholdSearch.digitBits', t.thresholdSearch?.digitBits, [1, 2, 4]);
  oneOf('thresholdSearch.wg', t.thresholdSearch.wg, [32, 64, 128, 256]);
  oneOf('rowWorkgroup', t.rowWorkgroup, [64, 128, 256]);
  oneOf('layerNormWorkgroup', t.layerNormWorkgroup, [32, 64, 128, 256]);
  int('layerNormMaxWidth', t.layerNormMaxWidth, 0);
  num('napFraction', t.napFraction, 0, 1);
  num('minNapMs', t.minNapMs, 0, 1000);
  num('maxNapMs', t.maxNapMs, t.minNapMs, 1000);
  num('warmupCompileMs', t.warmupCompileMs, 0, 60_000);
  num('warmupCachedFraction', t.warmupCachedFraction, 0, 1);
  if (limits) {
    const invocations = Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
    for (const field of ['rowWorkgroup', 'layerNormWorkgroup'] as const) {
      if (t[field] > invocations) throw new TuningError(field, `at most ${invocations} (the device's invocations per workgroup)`, t[field]);
    }
    const bytes = limits.maxComputeWorkgroupStorageSize;
    if (thresholdSearchBytes(t.thresholdSearch) > bytes) {
      throw new TuningError('thresholdSearch', `a search within ${bytes} bytes of workgroup memory (it needs ${thresholdSearchBytes(t.thresholdSearch)})`, t.thresholdSearch);
    }
  }
  return t;
}

/** Throws TuningError if `c` names a kernel the matmul op does not have. */
export function validateChoice(field: string, c: MatmulChoice): void {
  if (!MATMUL_FAMILIES.includes(c?.family)) throw new TuningError(`${field}.family`, `one of ${MATMUL_FAMILIES.join(', ')}`, c?.family);
  if (!Number.isInteger(c.split) || c.split < 1 || c.split > 64 || (c.split & (c.split - 1)) !== 0) {
    throw new TuningError(`${field}.split`, 'a power of two in 1..64', c.split);
  }
  if (c.group !== undefined && ![4, 8, 16].includes(c.group)) throw new TuningError(`${field}.group`, 'one of 4, 8, 16', c.group);
  if (c.threads !== undefined && ![16, 32, 64].includes(c.threads)) throw new TuningError(`${field}.threads`, 'one of 16, 32, 64', c.threads);
}

/** Freezes an object and everything in it: the defaults are shared by every device. */
function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) if (v && typeof v === 'object') deepFreeze(v);
  return Object.freeze(o);
}
