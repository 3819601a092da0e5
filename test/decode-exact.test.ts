/**
 * Speculative sampling must leave the target's distribution unchanged. On a tiny model with a
 * small vocabulary, the first two generated tokens are drawn many times (fixed seeds) and their
 * empirical joint distribution is compared with the target's exact one by a chi-square test.
 * A drafter that lies about the distribution it drew from must fail the same test.
 */
import { describe, expect, it } from 'vitest';
import { generate, type GenerateOptions } from '../src/decode/generate.js';
import { ARDrafter } from '../src/decode/ar-drafter.js';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import type { Drafter, Draft } from '../src/decode/drafter.js';
import type { GPT2 } from '../src/models/gpt2.js';
import { softmax } from '../src/tensor/ops/rowwise.js';
import { getDevice } from './helpers/device.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';

const V = 6;
const N = 1200;
const PROMPT = [2];
/** Chi-square critical value for 35 degrees of freedom at p = 0.001. */
const CHI2_35_999 = 66.62;

/** The target's exact joint distribution of generated tokens `first` and `first + 1` (first ≤ 1). */
async function exactJoint(target: GPT2, first = 0): Promise<Float64Array> {
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
 * Counts of generated tokens `first` and `first + 1` over N seeds. Generation runs to γ + 1 tokens
 * by default so that the first draft has all γ (the loop drafts at most what is left to make, less one).
 */
async function empirical(target: GPT2, opts: Omit<GenerateOptions, 'prompt'>, first = 0): Promise<Float64Array> {
  const counts = new Float64Array(V * V);
  for (let seed = 0; seed < N; seed++) {
    const { tokens } = await generate(target, null, { maxNewTokens: (opts.gamma ?? 1) + 1, ...opts, prompt: PROMPT, seed, stopAtEos: false }).result();
    counts[tokens[first] * V + tokens[first + 1]]++;
  }
  return counts;
}

/** Pearson chi-square, pooling cells with expected count < 5 into one. */
function chiSquare(counts: Float64Array, p: Float64Array): { stat: number; df: number } {
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
class LyingDrafter implements Drafter {
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

describe('speculative sampling is exact (chi-square on the first two tokens)', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: V, seed: 11, scale: 1.0 });
  const joint = await exactJoint(target);
  const critical = CHI2_35_999;

  // The target's weights at 0.7 of their scale: a different q that is accepted about half the time,
  // so second drafted tokens are tested too.
  it('AR drafter, γ = 2, temperature 1', async () => {
    const drafter = new ARDrafter(await tinyGPT2(dev, { vocab: V, seed: 11, scale: 0.7 }));
    const { stat, df } = chiSquare(await empirical(target, { method: 'speculative', drafter, gamma: 2 }), joint);
    expect(df).toBeLessThanOrEqual(35);
    expect(stat, `chi-square ${stat.toFixed(1)}`).toBeLessThan(critical);
  }, 400_000);

  // One drafter serves every seed: a block-causal one keeps its context cache across generations.
  it.each(['bidirectional', 'block-causal'] as const)('diffusion drafter (%s), left-to-right, T = 1 and T = 2, γ = 2', async (attention) => {
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 13, scale: 1.0 });
    for (const steps of [1, 2]) {
      const drafter = new DiffusionDrafter(mdlm, { steps, schedule: 'left-to-right', attention });
      const { stat } = chiSquare(await empirical(target, { method: 'specdiff', drafter, gamma: 2 }), joint);
      expect(stat, `T=${steps}: chi-square ${stat.toFixed(1)}`).toBeLessThan(critical);
      drafter.dispose();
    }
  }, 400_000);

  it('diffusion drafter reading the target\'s hidden states (block-causal), left-to-right, T = 1 and T = 2, γ = 2', async () => {
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 13, scale: 0.5, targetFeatures: target.config.nEmbd });
    for (const steps of [1, 2]) {
      const drafter = new DiffusionDrafter(mdlm, { steps, attention: 'block-causal' });
      const { stat } = chiSquare(await empirical(target, { method: 'specdiff', drafter, gamma: 2 }), joint);
      expect(stat, `T = ${steps}`).toBeLessThan(critical);
      drafter.dispose();
    }
  }, 400_000);

  // The head draws position 2 given the token drawn at position 1: its q must be that conditional.
  it.each(['bidirectional', 'block-causal'] as const)('diffusion drafter through a draft head (%s), γ = 2', async (attention) => {
    const drafter = new DiffusionDrafter(await tinyMDLM(dev, { vocab: V, seed: 13, scale: 1.0, draftHead: true }), { attention });
    expect(drafter.draftHead).toBe(true);
    const { stat } = chiSquare(await empirical(target, { method: 'specdiff', drafter, gamma: 2 }), joint);
    expect(stat, `chi-square ${stat.toFixed(1)}`).toBeLessThan(critical);
    drafter.dispose();
  }, 400_000);

  // Parallel: position 2's q reads the backbone's draw at position 1, made with position 1's random number.
  it('diffusion drafter through a draft head drawing in parallel (coupled to the backbone\'s draw), γ = 2', async () => {
    const drafter = new DiffusionDrafter(await tinyMDLM(dev, { vocab: V, seed: 13, scale: 1.0, draftHead: true }), { headDraw: 'parallel' });
    const { stat } = chiSquare(await empirical(target, { method: 'specdiff', drafter, gamma: 2 }), joint);
    expect(stat, `chi-square ${stat.toFixed(1)}`).toBeLessThan(critical);
    drafter.dispose();
  }, 400_000);

  it('diffusion drafter through a draft head for its first position only, the second from the backbone, γ = 2', async () => {
    const drafter = new DiffusionDrafter(await tinyMDLM(dev, { vocab: V, seed: 13, scale: 1.0, draftHead: true }), { headPositions: 1 });
    const { stat } = chiSquare(await empirical(target, { method: 'specdiff', drafter, gamma: 2 }), joint);
    expect(stat, `chi-square ${stat.toFixed(1)}`).toBeLessThan(critical);
    drafter.dispose();
  }, 400_000);

  // Drafters with small weights are unsure often enough that the cut halves what is verified.
  it('with a confidence cutoff (the draft cut after its first token below q = 0.4), AR and diffusion drafters, γ = 3', async () => {
    const drafters = [new ARDrafter(await tinyGPT2(dev, { vocab: V, seed: 12, scale: 0.1 })), new DiffusionDrafter(await tinyMDLM(dev, { vocab: V, seed: 13, scale: 0.1 }), { attention: 'block-causal' })];
    for (const drafter of drafters) {
      const method = drafter instanceof DiffusionDrafter ? 'specdiff' : 'speculative';
      const { stat } = chiSquare(await empirical(target, { method, drafter, gamma: 3, confidenceCutoff: 0.4 }), joint);
      expect(stat, `${method}: chi-square ${stat.toFixed(1)}`).toBeLessThan(critical);
      drafter.dispose();
    }
  }, 400_000);

  // γ = 1 growing to 3: the third token comes from a longer draft exactly when the first draft
  // was accepted, so a length chosen in a way that favoured some tokens would show here.
  it('with an adaptive draft length (γ = 1 growing to 3), the second and third tokens, diffusion drafter', async () => {
    const drafter = new DiffusionDrafter(await tinyMDLM(dev, { vocab: V, seed: 13, scale: 1.0 }), { attention: 'block-causal' });
    const { stat } = chiSquare(await empirical(target, { method: 'specdiff', drafter, gamma: 1, maxGamma: 3, maxNewTokens: 6 }, 1), await exactJoint(target, 1));
    expect(stat, `chi-square ${stat.toFixed(1)}`).toBeLessThan(critical);
    drafter.dispose();
  }, 400_000);

  it('detects a drafter that tests its tokens against the wrong q', async () => {
    const honest = new ARDrafter(await tinyGPT2(dev, { vocab: V, seed: 12, scale: 1.0 }));
    const liar = new ARDrafter(await tinyGPT2(dev, { vocab: V, seed: 14, scale: 3.0 }));
    const { stat } = chiSquare(await empirical(target, { method: 'speculative', drafter: new LyingDrafter(honest, liar), gamma: 2 }), joint);
    expect(stat, `chi-square ${stat.toFixed(1)}`).toBeGreaterThan(critical);
  }, 400_000);
});
