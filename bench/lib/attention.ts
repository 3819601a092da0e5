/**
 * Our causal attention over a KV cache, 12 heads × 64 (GPT-2 small): decode (one query against
 * L cached positions) and prefill (n queries against themselves).
 */
import type { Device } from '../../src/tensor/device.js';
import { attention, KVCache } from '../../src/tensor/ops/attention.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { timeCalls, timeEach, type TfjsResult, type Timing, type TimingOptions } from './timing.js';
import { weightData } from './matmul.js';

export interface AttentionCase {
  kind: 'decode' | 'prefill';
  /** Queries. */
  n: number;
  /** Cached positions the last query sees. */
  L: number;
  H: number;
  hd: number;
  /** Long prefills are measured once (the kernel is compiled by the shorter ones). */
  timing?: TimingOptions;
}

export interface AttentionRow extends AttentionCase {
  flops: number;
  /** K and V bytes read once. */
  kvBytes: number;
  ours?: Timing;
  oursError?: string;
  tfjs?: TfjsResult;
  ratio?: number;
}

export function attentionCases(H = 12, hd = 64): AttentionCase[] {
  return [
    ...[128, 512, 1024].map((L) => ({ kind: 'decode' as const, n: 1, L, H, hd })),
    ...[128, 512, 1024].map((n) => ({
      kind: 'prefill' as const, n, L: n, H, hd,
      timing: n > 128 ? { warmup: false, budgetMs: 0 } : undefined,
    })),
  ];
}

/** q·k and p·v over the visible keys: query i of n sees L − n + i + 1 keys. */
export function attentionFlops(c: AttentionCase): number {
  const visible = c.n * (c.L - c.n) + (c.n * (c.n + 1)) / 2;
  return 4 * c.H * c.hd * visible;
}

export async function benchOursAttention(dev: Device, c: AttentionCase): Promise<AttentionRow> {
  const row: AttentionRow = { ...c, flops: attentionFlops(c), kvBytes: 2 * c.H * c.L * c.hd * 4 };
  const cache = new KVCache(dev, c.H, c.L, c.hd);
  dev.upload(cache.k.buffer, 0, weightData(c.H * c.L * c.hd, 3));
  dev.upload(cache.v.buffer, 0, weightData(c.H * c.L * c.hd, 4));
  cache.length = c.L;
  const q = Tensor.from(dev, weightData(c.n * c.H * c.hd, 5), [c.n, c.H * c.hd]);
  try {
    row.ours = await timeCalls(() => attention(q, cache).dispose(), () => dev.sync(), c.timing);
  } catch (e) {
    row.oursError = (e as Error).message;
  }
  q.dispose();
  cache.dispose();
  return row;
}

/** The few query rows decoding runs (a verify, a draft's backbone pass) against a decode-length cache. */
export interface FewRowsCase {
  n: number;
  L: number;
  H: number;
  hd: number;
}

export function fewRowsCases(): FewRowsCase[] {
  return [
    ...[2, 4, 6, 9, 16].flatMap((n) => [64, 256].map((L) => ({ n, L, H: 8, hd: 64 }))),
    ...[6, 9].map((n) => ({ n, L: 128, H: 4, hd: 64 })),
  ];
}

export interface FewRowsRow extends FewRowsCase {
  /** The kernel the device picks (the subgroup one where the adapter allows it). */
  chosen?: Timing;
  chosenKernel: string;
  /** The tiled kernel, tuning.attentionRows rows per workgroup. */
  tiled?: Timing;
  error?: string;
}

/** Both attention kernels on the same cache and rows, their batches taken in turn (timeEach). */
export async function benchFewRows(dev: Device, c: FewRowsCase, timing?: TimingOptions): Promise<FewRowsRow> {
  const cache = new KVCache(dev, c.H, c.L, c.hd);
  dev.upload(cache.k.buffer, 0, weightData(c.H * c.L * c.hd, 3));
  dev.upload(cache.v.buffer, 0, weightData(c.H * c.L * c.hd, 4));
  cache.length = c.L;
  const q = Tensor.from(dev, weightData(c.n * c.H * c.hd, 5), [c.n, c.H * c.hd]);
  const tiledRows = { rowsPerWorkgroup: dev.tuning.attentionRows };
  const chosenKernel = dev.collectKernels(() => attention(q, cache)).map((s) => s.key).join(', ');
  const row: FewRowsRow = { ...c, chosenKernel };
  const [chosen, tiled] = await timeEach([() => attention(q, cache).dispose(), () => attention(q, cache, tiledRows).dispose()], () => dev.sync(), timing);
  if (chosen instanceof Error || tiled instanceof Error) row.error = ((chosen instanceof Error ? chosen : tiled) as Error).message;
  else Object.assign(row, { chosen, tiled });
  q.dispose();
  cache.dispose();
  return row;
}
