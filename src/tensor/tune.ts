/**
 * Matmul autotuning: for each (layout, dtype, rows, K, N) a model will run, time the candidate
 * kernel families on this adapter and remember the fastest. Variants win on different
 * adapters (lavapipe, integrated and discrete GPUs), so the choice is made by measurement, never
 * by the adapter's name. Results can be saved and restored (e.g. in localStorage or a file).
 */
import type { Device } from './device.js';
import { Tensor } from './tensor.js';
import type { WeightLayout } from '../shaders/matmul.js';
import { STREAMED_MAX_ROWS, getMatmulChoice, matmul, setMatmulChoice, tuneKey, type MatmulChoice } from './ops/matmul.js';

export interface MatmulSignature {
  layout: WeightLayout;
  dtype: 'f32' | 'f16';
  rows: number;
  K: number;
  N: number;
}

export type TuningTable = Record<string, MatmulChoice>;

function candidates(dev: Device, layout: WeightLayout, dtype: 'f32' | 'f16', rows: number): MatmulChoice[] {
  const wides = dtype === 'f16' ? [false, true] : [false];
  const c: MatmulChoice[] = [
    { family: 'gemv', split: 1 },
    ...(layout === 'nk' ? [8, 16].map((group) => ({ family: 'gemv' as const, split: 1, group })) : []),
    ...(layout === 'nk' ? [4, 8, 16].flatMap((group) => wides.map((wide) => ({ family: 'gemv-uniform' as const, split: 1, group, wide }))) : []),
    { family: 'gemv-split', split: 4 },
    { family: 'gemv-split', split: 16 },
  ];
  if (layout === 'nk' && dev.info.features.subgroups && dev.info.subgroupMaxSize > 0) c.push({ family: 'gemv-subgroup', split: 1 });
  if (rows > 1) c.push({ family: 'tiled', split: 1 });
  return c;
}

/** Median wall time of `reps` batched calls after a warm-up (which also compiles the pipeline). */
async function timeChoice(dev: Device, a: Tensor, w: Tensor, layout: WeightLayout, choice: MatmulChoice, reps: number): Promise<number> {
  matmul(a, w, { layout }, choice).dispose();
  await dev.sync();
  const times: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) matmul(a, w, { layout }, choice).dispose();
    await dev.sync();
    times.push((performance.now() - t0) / reps);
  }
  return times.sort((x, y) => x - y)[1];
}

/** Tunes every signature not yet tuned on this device; returns the table of choices made. */
export async function autotuneMatmul(dev: Device, signatures: MatmulSignature[], reps = 4): Promise<TuningTable> {
  const table: TuningTable = {};
  for (const s of signatures) {
    const key = tuneKey(s.layout, s.dtype, s.rows, s.K, s.N);
    if (s.rows > STREAMED_MAX_ROWS || getMatmulChoice(dev, key) || table[key]) continue;
    const best = await (async () => {
      const a = Tensor.from(dev, new Float32Array(s.rows * s.K).fill(0.01), [s.rows, s.K]);
      const w = Tensor.empty(dev, s.layout === 'kn' ? [s.K, s.N] : [s.N, s.K], s.dtype === 'f16' && dev.info.features.shaderF16 ? 'f16' : 'f32');
      let bestChoice: MatmulChoice = { family: 'gemv', split: 1 };
      let bestMs = Infinity;
      for (const c of candidates(dev, s.layout, w.dtype as 'f32' | 'f16', s.rows)) {
        const ms = await timeChoice(dev, a, w, s.layout, c, reps);
        if (ms < bestMs) [bestMs, bestChoice] = [ms, c];
      }
      a.dispose();
      w.dispose();
      return bestChoice;
    })();
    setMatmulChoice(dev, key, best);
    table[key] = best;
  }
  return table;
}

/** Restores choices saved from an earlier autotuneMatmul on the same adapter. */
export function applyTuning(dev: Device, table: TuningTable): void {
  for (const [key, c] of Object.entries(table)) setMatmulChoice(dev, key, c);
}
