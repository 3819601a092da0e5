/**
 * Autoregressive drafter: a small GPT-2 with its own KV cache. Its γ steps are chained on the
 * GPU (each sampled id feeds the next forward without a readback); the cache keeps the longest
 * prefix it shares with the context, so after verification it rolls back with the target.
 */
import { Tensor } from '../tensor/tensor.js';
import { copy2d } from '../tensor/ops/gather.js';
import type { GPT2, GPT2Cache } from '../models/gpt2.js';
import type { Draft, DraftDefaults, Drafter } from './drafter.js';
import type { ResolvedSampling } from './options.js';
import type { Rng } from './rng.js';
import { selectTokens } from './sample.js';

/** Draft length of speculative decoding with an AR drafter (docs/performance.md, "Decoding defaults"). */
export const DEFAULT_GAMMA = 4;

export class ARDrafter implements Drafter {
  readonly kind = 'ar';
  readonly method = 'speculative';
  /** Made at the first draft or prefill, and again after dispose(): a disposed drafter can be reused. */
  private kv: GPT2Cache | null = null;
  /** Tokens whose keys and values are in the cache, in order. */
  private cached: number[] = [];

  constructor(readonly model: GPT2) {}

  private get cache(): GPT2Cache {
    return (this.kv ??= this.model.createCache());
  }

  get vocabSize(): number {
    return this.model.vocabSize;
  }

  get maxGamma(): number {
    return this.model.config.nPositions - 1;
  }

  /** A fixed length at any temperature: every drafted token costs a drafter pass. */
  defaults(): DraftDefaults {
    return { gamma: DEFAULT_GAMMA, maxGamma: DEFAULT_GAMMA };
  }

  /** The speculation options (the diffusion drafter's) change nothing here. */
  configure(): ARDrafter {
    return this;
  }

  draft(context: readonly number[], gamma: number, sampling: ResolvedSampling, rng: Rng, withConfidence = false): Draft {
    const dev = this.model.device;
    const feed = this.uncached(context, gamma);
    const V = this.vocabSize;
    const tokens = Tensor.empty(dev, [gamma], 'i32');
    const q = sampling.temperature === 0 ? null : Tensor.empty(dev, [gamma, V]);
    const confidence = withConfidence ? Tensor.empty(dev, [gamma]) : null;
    let input: number[] | Tensor = feed;
    for (let i = 0; i < gamma; i++) {
      const step = selectTokens(dev, this.model.forward(input, this.cache, 1), sampling, rng, withConfidence);
      const one = { rows: 1, cols: 1, srcOffset: 0, srcStride: 1, dstOffset: i, dstStride: 1 };
      copy2d(step.ids, tokens, one);
      if (confidence && step.confidence) copy2d(step.confidence, confidence, one);
      if (q && step.probs) copy2d(step.probs, q, { rows: 1, cols: V, srcOffset: 0, srcStride: V, dstOffset: i * V, dstStride: V });
      input = step.ids;
    }
    return { tokens, q, confidence, passes: gamma };
  }

  /** Appends the prompt but its last token to the cache; the first draft then feeds that token. */
  prefill(context: readonly number[]): void {
    if (context.length < 2 || context.length > this.cache.capacity) return;
    const feed = this.uncached(context.slice(0, -1), 1);
    if (feed.length) this.model.prefill(feed, this.cache);
  }

  /**
   * Rolls the cache back to the longest prefix it shares with the context (feeding at least one
   * token) and returns the rest, which the next forward appends; past the drafter's own context
   * it restarts on the most recent tokens that leave room for γ − 1 drafted ones.
   */
  private uncached(context: readonly number[], gamma: number): number[] {
    const capacity = this.cache.capacity;
    let keep = 0;
    const limit = Math.min(this.cached.length, context.length - 1);
    while (keep < limit && this.cached[keep] === context[keep]) keep++;
    let feed = context.slice(keep);
    if (keep + feed.length + gamma - 1 > capacity) {
      keep = 0;
      feed = context.slice(Math.max(0, context.length - (capacity - gamma + 1)));
    }
    this.cache.truncate(keep);
    this.cached.length = keep;
    this.cached.push(...feed);
    return feed;
  }

  /** The cache holds the first γ − 1 drafted tokens; the next draft keeps those the context shares. */
  afterVerify(drafted: readonly number[]): void {
    this.cached.push(...drafted.slice(0, drafted.length - 1));
  }

  dispose(): void {
    this.kv?.dispose();
    this.kv = null;
    this.cached = [];
  }
}
