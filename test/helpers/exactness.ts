/**
 * The chi-square exactness test of speculative sampling (test/decode-exact*.test.ts): on a tiny model with
 * a small vocabulary, the first two generated tokens are drawn many times (fixed seeds) and their empirical
 * joint distribution is compared with the target's exact one.
 */
import { generate, type GenerateOptions } from '../../src/decode/generate.js';
import type { ARDrafter } from '../../src/decode/ar-drafter.js';
import type { Drafter, Draft } from '../../src/decode/drafter.js';
import type { GPT2 } from '../../src/models/gpt2.js';
import { softmax } from '../../src/tensor/ops/rowwise.js';

export const V = 6;
export const N = 1200;
export const PROMPT = [2];
/** Chi-square critical value for 35 degrees of freedom at p = 0.001. */
export const CHI2_35_999 = 66.62;

/** The target's exact joint distribution of generated tokens `first` and `first + 1` (first ≤ 1). */
export async function exactJoint(target: GPT2, first = 0): Promise<Float64Array> {
  const cache = target.createCache();
  const next = async (ids: number[]) => {
    cache.truncate(PROMPT.length + ids.length - 1);
    return softmax(target.forward(ids.slice(-1), cache, 1)).read();
  };
  const joint = new Float64Array(V * V);
  const p1 = await softmax(target.forward(PROMPT, cache, 1)).read();
  for (let a = 0; a < V; a++) {
    const p2 = await next([a]);
    if (first === 0) {
      for (let b = 0; b < V; b++) joint[a * V + b] = p1[a] * p2[b];
      continue;
    }
    for (let b = 0; b < V; b++) {
      const p3 = await next([a, b]);
      for (let c = 0; c < V; c++) joint[b * V + c] += p1[a] * p2[b] * p3[c];
    }
  }
  cache.dispose();
  return joint;
}

/**
 * Counts of generated tokens `first` and `first + 1` over N seeds (`perRun`: options made anew for each run).
 * Generation runs to γ + 1 tokens
 * by default so that the first draft has all γ (the loop drafts at most what is left to make, less one).
 */
export async function empirical(target: GPT2, opts: Omit<GenerateOptions, 'prompt'>, first = 0, perRun: () => Partial<GenerateOptions> = () => ({})): Promise<Float64Array> {
  const counts = new Float64Array(V * V);
  for (let seed = 0; seed < N; seed++) {
    const { tokens } = await generate(target, null, { maxNewTokens: (opts.gamma ?? 1) + 1, ...opts, ...perRun(), prompt: PROMPT, seed, stopAtEos: false }).result();
    counts[tokens[first] * V + tokens[first + 1]]++;
  }
  return counts;
}

/** Pearson chi-square, pooling cells with expected count < 5 into one. */
export function chiSquare(counts: Float64Array, p: Float64Array): { stat: number; df: number } {
  let stat = 0;
  let df = -1;
  let poolE = 0;
  let poolO = 0;
  for (let i = 0; i < p.length; i++) {
    const e = p[i] * N;
    if (e < 5) {
      poolE += e;
      poolO += counts[i];
      continue;
    }
    stat += (counts[i] - e) ** 2 / e;
    df++;
  }
  if (poolE > 0) {
    stat += (poolO - poolE) ** 2 / Math.max(poolE, 1e-9);
    df++;
  }
  return { stat, df };
}

/** Draws like its inner drafter but reports a different q: the exactness theorem no longer applies. */
export class LyingDrafter implements Drafter {
  readonly kind = 'ar';
  readonly method = 'speculative';
  constructor(
    private inner: ARDrafter,
    private liar: ARDrafter,
  ) {}
  get vocabSize() {
    return this.inner.vocabSize;
  }
  get maxGamma() {
    return this.inner.maxGamma;
  }
  defaults() {
    return this.inner.defaults();
  }
  configure() {
    return this;
  }
  draft(ctx: readonly number[], g: number, s: Parameters<Drafter['draft']>[2], rng: Parameters<Drafter['draft']>[3]): Draft {
    const d = this.inner.draft(ctx, g, s, rng);
    const lie = this.liar.draft(ctx, g, s, rng);
    lie.tokens.dispose();
    d.q?.dispose();
    return { ...d, q: lie.q };
  }
  prefill(ctx: readonly number[]) {
    this.inner.prefill(ctx);
    this.liar.prefill(ctx);
  }
  afterVerify(drafted: readonly number[]) {
    this.inner.afterVerify(drafted);
  }
  dispose() {}
}
