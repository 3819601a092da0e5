/**
 * Matmul autotuning: for each (layout, dtype, rows, K, N) a model will run, time the candidate
 * kernel families on this adapter and remember the fastest. Variants win on different
 * adapters (lavapipe, integrated and discrete GPUs), so the choice is made by measurement, never
 * by the adapter's name. Results can be saved and restored (e.g. in localStorage or a file).
 */
import type { Device } from './device.js';
import { Tensor } from './tensor.js';
import type { WeightLayout } from '../shaders/matmul.js';
import { defaultThreads, getMatmulChoice, matmul, setMatmulChoice, tuneKey } from './ops/matmul.js';
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

/** Wall time per call of `reps` batched calls. */
async function timeBatch(dev: Device, a: Tensor, w: Tensor, layout: WeightLayout, choice: MatmulChoice, reps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) matmul(a, w, { layout }, choice).dispose();
  await dev.sync();
  return (performance.now() - t0) / reps;
}

/**
 * Tunes every signature not yet tuned on this device; returns the table of choices made. The
 * candidates take turns, one batch each per round, and each is judged by its fastest batch: load
 * from other processes only ever slows a batch down, and a burst of it then hits every candidate
 * alike instead of the one being timed (docs/performance.md, "Kernel tuning table").
 */
export async function autotuneMatmul(dev: Device, signatures: MatmulSignature[], reps = 4, rounds = 5): Promise<TuningTable> {
  const table: TuningTable = {};
  for (const s of signatures) {
    const key = tuneKey(s.layout, s.dtype, s.rows, s.K, s.N);
    if (s.rows > dev.tuning.streamedMaxRows || getMatmulChoice(dev, key) || table[key]) continue;
    const a = Tensor.from(dev, new Float32Array(s.rows * s.K).fill(0.01), [s.rows, s.K]);
    const w = Tensor.empty(dev, s.layout === 'kn' ? [s.K, s.N] : [s.N, s.K], s.dtype);
    const cands = candidates(dev, s.layout, s.dtype, s.rows, s.N);
    for (const c of cands) await timeBatch(dev, a, w, s.layout, c, 1); // compiles the pipelines
    const best = cands.map(() => Infinity);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < cands.length; k++) {
        const i = (k + r) % cands.length;
        best[i] = Math.min(best[i], await timeBatch(dev, a, w, s.layout, cands[i], reps));
      }
    }
    a.dispose();
    w.dispose();
    const choice = cands[best.indexOf(Math.min(...best))];
    setMatmulChoice(dev, key, choice);
    table[key] = choice;
  }
  return table;
}

/** Restores choices saved from an earlier autotuneMatmul on the same adapter. */
export function applyTuning(dev: Device, table: TuningTable): void {
  for (const [key, c] of Object.entries(table)) setMatmulChoice(dev, key, c);
}
