/**
 * Our matmul at GPT-2 shapes. Each configuration is timed once per kernel variant (for M ≤ 16:
 * gemv, gemv-split 4 and 16, and tiled from M = 8); the fastest is reported and the others are
 * kept for the autotuner. The variants' batches are taken in turn, so load on the shared machine
 * does not favour one of them. Calls rotate through copies of the weight filling a working set as
 * large as the bandwidth probe's, so weights come from memory as in a decode step, not from cache.
 */
import type { Device } from '../../src/tensor/device.js';
import { STREAMED_MAX_ROWS, matmul, type MatmulChoice } from '../../src/tensor/ops/matmul.js';
import { BYTES, Tensor } from '../../src/tensor/tensor.js';
import type { WeightLayout } from '../../src/shaders/matmul.js';
import { timeEach, type TfjsResult, type Timing, type TimingOptions } from './timing.js';

export interface MatmulCase {
  name: string;
  K: number;
  N: number;
  layout: WeightLayout;
  wtype: 'f32' | 'f16';
  Ms: number[];
  /** Per-M timing overrides (huge shapes are measured once). */
  timing?: (M: number) => TimingOptions | undefined;
}

export interface VariantResult {
  variant: string;
  choice: MatmulChoice;
  timing?: Timing;
  error?: string;
}

export interface MatmulRow {
  case: string;
  M: number;
  K: number;
  N: number;
  layout: WeightLayout;
  wtype: 'f32' | 'f16';
  weightBytes: number;
  flops: number;
  /** Weight copies rotated through (working set = copies × weightBytes). */
  copies: number;
  variants: VariantResult[];
  best?: string;
  ms?: number;
  gbps?: number;
  gflops?: number;
  /** gbps / measured GPU read bandwidth (set once the roofline is final). */
  fracBW?: number;
  once?: boolean;
  tfjs?: TfjsResult;
  /** Time ratio ours / tfjs (below 1: we are faster). */
  ratio?: number;
}

/** The kernel variants worth timing for M rows. */
export function variantsFor(M: number, layout: WeightLayout = 'kn'): Array<{ variant: string; choice: MatmulChoice }> {
  if (M > STREAMED_MAX_ROWS) return [{ variant: 'tiled', choice: { family: 'tiled', split: 1 } }];
  const v = [
    { variant: 'gemv', choice: { family: 'gemv', split: 1 } as MatmulChoice },
    { variant: 'split4', choice: { family: 'gemv-split', split: 4 } as MatmulChoice },
    { variant: 'split16', choice: { family: 'gemv-split', split: 16 } as MatmulChoice },
  ];
  // [N, K] weights: 8 or 16 output rows per invocation (activations in storage or uniform; f16: 4 or 8 weights per load), and one subgroup per row.
  if (layout === 'nk') {
    v.push(
      { variant: 'gemv8', choice: { family: 'gemv', split: 1, group: 8 } },
      { variant: 'gemv16', choice: { family: 'gemv', split: 1, group: 16 } },
      { variant: 'uniform8', choice: { family: 'gemv-uniform', split: 1, group: 8 } },
      { variant: 'uniform16', choice: { family: 'gemv-uniform', split: 1, group: 16 } },
      { variant: 'uniform4w', choice: { family: 'gemv-uniform', split: 1, group: 4, wide: true } },
      { variant: 'uniform8w', choice: { family: 'gemv-uniform', split: 1, group: 8, wide: true } },
      { variant: 'subgroup', choice: { family: 'gemv-subgroup', split: 1 } },
    );
  }
  if (M >= 8) v.push({ variant: 'tiled', choice: { family: 'tiled', split: 1 } });
  return v;
}

/** Weight values like a trained layer's: small, no denormals (deterministic LCG). */
export function weightData(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 0.1;
  }
  return out;
}

/** How many copies of a weight fill `workingSet` bytes (at least one, at most `max`). */
export function copiesFor(weightBytes: number, workingSet: number, max = 128): number {
  return Math.max(1, Math.min(max, Math.ceil(workingSet / weightBytes)));
}

export async function benchMatmulCase(
  dev: Device,
  c: MatmulCase,
  data: Float32Array,
  workingSet: number,
  log: (row: MatmulRow) => void,
): Promise<MatmulRow[]> {
  const wshape = c.layout === 'kn' ? [c.K, c.N] : [c.N, c.K];
  const weightBytes = c.K * c.N * BYTES[c.wtype];
  const copies = copiesFor(weightBytes, workingSet);
  const first = Tensor.from(dev, data, wshape, c.wtype);
  const weights = [first];
  for (let i = 1; i < copies; i++) {
    const t = Tensor.empty(dev, wshape, c.wtype);
    dev.copy(first.buffer, 0, t.buffer, 0, weightBytes);
    weights.push(t);
  }
  await dev.sync();
  const rows: MatmulRow[] = [];
  for (const M of c.Ms) {
    const a = Tensor.from(dev, weightData(M * c.K, 7 + M), [M, c.K]);
    const row: MatmulRow = {
      case: c.name, M, K: c.K, N: c.N, layout: c.layout, wtype: c.wtype,
      weightBytes, flops: 2 * M * c.N * c.K, copies, variants: [],
    };
    const variants = variantsFor(M, c.layout);
    let i = 0;
    const calls = variants.map(({ choice }) => () => matmul(a, weights[i++ % copies], { layout: c.layout }, choice).dispose());
    const timings = await timeEach(calls, () => dev.sync(), c.timing?.(M));
    variants.forEach(({ variant, choice }, j) => {
      const t = timings[j];
      row.variants.push(t instanceof Error ? { variant, choice, error: t.message } : { variant, choice, timing: t });
    });
    const ok = row.variants.filter((v) => v.timing);
    if (ok.length) {
      const best = ok.reduce((x, y) => (y.timing!.ms < x.timing!.ms ? y : x));
      row.best = best.variant;
      row.ms = best.timing!.ms;
      row.once = best.timing!.once;
      row.gbps = weightBytes / row.ms / 1e6;
      row.gflops = row.flops / row.ms / 1e6;
    }
    a.dispose();
    rows.push(row);
    log(row);
  }
  for (const w of weights) w.dispose();
  dev.pool.trim();
  return rows;
}
