/**
 * Our causal attention over a KV cache, 12 heads × 64 (GPT-2 small): decode (one query against
 * L cached positions) and prefill (n queries against themselves).
 */
import type { Device } from '../../src/tensor/device.js';
import { attention, KVCache } from '../../src/tensor/ops/attention.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { timeCalls, type TfjsResult, type Timing, type TimingOptions } from './timing.js';
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
