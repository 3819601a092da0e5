/**
 * Matmul autotuning: for each (layout, dtype, rows, K, N) a model will run, time the candidate
 * kernel families on this adapter and remember the fastest. Variants win on different
 * adapters (lavapipe, integrated and discrete GPUs), so the choice is made by measurement, never
 * by the adapter's name. Results can be saved and restored (e.g. in localStorage or a file).
 */
import type { Device } from './device.js';
import { Tensor } from './tensor.js';
import type { WeightLayout } from '../shaders/matmul.js';
import { defaultChoice, defaultThreads, getMatmulChoice, matmul, rowBucket, setMatmulChoice, tuneKey } from './ops/matmul.js';
import type { MatmulChoice } from './tuning.js';

export interface MatmulSignature {
  layout: WeightLayout;
  dtype: 'f32' | 'f16';
  rows: number;
  K: number;
  N: number;
}

export type TuningTable = Record<string, MatmulChoice>;

function candidates(dev: Device, layout: WeightLayout, dtype: 'f32' | 'f16', rows: number, N: number): MatmulChoice[] {
  const wides = dtype === 'f16' ? [false, true] : [false];
  // Smaller workgroups only matter where 64 invocations leave few of them: there, both.
  const threads = (group: number) => [...new Set([64, defaultThreads(dev.tuning, N, group)])];
  const c: MatmulChoice[] = [
    { family: 'gemv', split: 1 },
    ...(layout === 'nk' ? [8, 16].map((group) => ({ family: 'gemv' as const, split: 1, group })) : []),
    ...(layout === 'nk' ? [4, 8, 16].flatMap((group) => wides.flatMap((wide) => threads(group).map((t) => ({ family: 'gemv-uniform' as const, split: 1, group, wide, threads: t })))) : []),
    { family: 'gemv-split', split: 4 },
    { family: 'gemv-split', split: 16 },
  ];
  if (layout === 'nk' && dev.info.features.subgroups && dev.info.subgroupMaxSize > 0) c.push({ family: 'gemv-subgroup', split: 1 });
  if (rows > 1) c.push({ family: 'tiled', split: 1 });
  return c;
}

/**
 * The weights a signature's timing reads rotate through copies filling this many bytes, so that, as in decoding,
 * they stream from memory: one copy stays in the caches and favours kernels that are slower when it does not.
 */
export const TUNE_WORKING_SET_BYTES = 64 << 20;
/** Most weight copies a signature's timing makes. */
export const TUNE_MAX_COPIES = 64;
/**
 * A candidate replaces the untuned kernel only if its median batch is faster by at least this fraction: close
 * candidates trade places from run to run, and a choice made by noise can be slower in decoding.
 */
export const TUNE_MIN_GAIN = 0.05;

/** Copies of a constant weight (small, finite, no denormals) filling TUNE_WORKING_SET_BYTES, at most TUNE_MAX_COPIES. */
function weightCopies(dev: Device, s: MatmulSignature): Tensor[] {
  const shape = s.layout === 'kn' ? [s.K, s.N] : [s.N, s.K];
  const n = s.K * s.N;
  // 0x211f is f16 0.0101.
  const first = s.dtype === 'f16' ? Tensor.from(dev, new Uint16Array(n).fill(0x211f), shape, 'f16') : Tensor.from(dev, new Float32Array(n).fill(0.01), shape);
  const copies = Math.max(1, Math.min(TUNE_MAX_COPIES, Math.ceil(TUNE_WORKING_SET_BYTES / first.byteLength)));
  const out = [first];
  for (let i = 1; i < copies; i++) {
    const t = Tensor.empty(dev, shape, s.dtype);
    dev.copy(first.buffer, 0, t.buffer, 0, first.byteLength);
    out.push(t);
  }
  return out;
}

/** Wall time per call of `reps` batched calls, each reading the next weight copy. */
async function timeBatch(dev: Device, a: Tensor, ws: Tensor[], layout: WeightLayout, choice: MatmulChoice, reps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) matmul(a, ws[i % ws.length], { layout }, choice).dispose();
  await dev.sync();
  return (performance.now() - t0) / reps;
}

/**
 * Tunes every signature not yet tuned on this device; returns the table of choices made. The
 * candidates, the untuned kernel among them, take turns, one batch each per round, so that a burst of load from
 * other processes hits every candidate alike instead of the one being timed, and each is judged by its median
 * batch: judged by its fastest, a kernel whose time swings wins on its lucky batches and decodes slower. The
 * untuned kernel stays unless another is TUNE_MIN_GAIN faster (docs/performance.md, "Kernel tuning table").
 */
export async function autotuneMatmul(dev: Device, signatures: MatmulSignature[], reps = 4, rounds = 5): Promise<TuningTable> {
  const table: TuningTable = {};
  for (const s of signatures) {
    const key = tuneKey(s.layout, s.dtype, s.rows, s.K, s.N);
    if (s.rows > dev.tuning.streamedMaxRows || getMatmulChoice(dev, key) || table[key]) continue;
    const a = Tensor.from(dev, new Float32Array(s.rows * s.K).fill(0.01), [s.rows, s.K]);
    const ws = weightCopies(dev, s);
    // What matmul runs without a tuned choice.
    const untuned = defaultChoice(dev.tuning, s.rows <= dev.tuning.gemvMaxRows ? rowBucket(dev.tuning, s.rows) : s.rows);
    // The untuned kernel once, as candidate 0: the list's entry for the same kernel with the default threads goes.
    const same = (c: MatmulChoice) =>
      c.family === untuned.family && c.group === untuned.group && !!c.wide === !!untuned.wide && (c.threads ?? 0) === defaultThreads(dev.tuning, s.N, c.group ?? 1);
    const cands = [untuned, ...candidates(dev, s.layout, s.dtype, s.rows, s.N).filter((c) => !same(c))];
    for (const c of cands) await timeBatch(dev, a, ws, s.layout, c, 1); // compiles the pipelines
    const times: number[][] = cands.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < cands.length; k++) {
        const i = (k + r) % cands.length;
        times[i].push(await timeBatch(dev, a, ws, s.layout, cands[i], reps));
      }
    }
    a.dispose();
    for (const w of ws) w.dispose();
    const choice = cands[chooseCandidate(times)];
    setMatmulChoice(dev, key, choice);
    table[key] = choice;
  }
  return table;
}

/** Restores choices saved from an earlier autotuneMatmul on the same adapter. */
export function applyTuning(dev: Device, table: TuningTable): void {
  for (const [key, c] of Object.entries(table)) setMatmulChoice(dev, key, c);
}

/**
 * Which candidate to keep, given each one's batch times (candidate 0: the untuned kernel): the fastest by its median
 * batch if that beats the untuned kernel's by TUNE_MIN_GAIN, else the untuned kernel.
 */
export function chooseCandidate(times: readonly number[][]): number {
  const typical = times.map(median);
  const fastest = typical.indexOf(Math.min(...typical));
  return typical[fastest] <= typical[0] * (1 - TUNE_MIN_GAIN) ? fastest : 0;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
