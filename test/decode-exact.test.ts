/**
 * Speculative sampling must leave the target's distribution unchanged (helpers/exactness.ts), verified by
 * blocks (the default) and token by token: AR and diffusion drafters, a confidence cutoff, an adaptive draft
 * length, drafting after a plain step (a staged start), and a drafter that lies about the distribution it drew
 * from, which must fail the same test.
 * Drafters through a draft head: decode-exact-head.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ARDrafter } from '../src/decode/ar-drafter.js';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import { getDevice } from './helpers/device.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';
import { CHI2_35_999, chiSquare, empirical, exactJoint, LyingDrafter, V } from './helpers/exactness.js';

describe('speculative sampling is exact (chi-square on the first two tokens)', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: V, seed: 11, scale: 1.0 });
  const joint = await exactJoint(target);
  const critical = CHI2_35_999;

  // The target's weights at 0.7 of their scale: a different q that is accepted about half the time,
  // so second drafted tokens are tested too.
  // Block verification (the default) and the token rule: they differ from the second drafted token on.
  it.each(['block', 'token'] as const)('AR drafter, γ = 2, temperature 1, %s verification', async (verification) => {
    const drafter = new ARDrafter(await tinyGPT2(dev, { vocab: V, seed: 11, scale: 0.7 }));
    const { stat, df } = chiSquare(await empirical(target, { method: 'speculative', drafter, gamma: 2, verification }), joint);
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

  it.each(['block-causal', 'bidirectional'] as const)('diffusion drafter with shifted logits (%s), left-to-right and random, T = 1 and T = 2, γ = 2', async (attention) => {
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 0.3, shiftLogits: true });
    for (const [steps, schedule] of [[1, 'left-to-right'], [2, 'random']] as const) {
      const drafter = new DiffusionDrafter(mdlm, { steps, schedule, attention });
      const { stat } = chiSquare(await empirical(target, { method: 'specdiff', drafter, gamma: 2 }), joint);
      expect(stat, `T=${steps} ${schedule}: chi-square ${stat.toFixed(1)}`).toBeLessThan(critical);
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

  // A staged start (draftWhen settling after the first step): the second and third tokens come from the first draft.
  it('drafting from the second token on, after a plain target step, the second and third tokens, diffusion drafter, γ = 2', async () => {
    const drafter = new DiffusionDrafter(await tinyMDLM(dev, { vocab: V, seed: 13, scale: 1.0 }), { attention: 'block-causal' });
    const afterFirstStep = () => {
      let settle = () => {};
      const draftWhen = new Promise<void>((resolve) => (settle = resolve));
      return { draftWhen, onStep: () => settle() };
    };
    const { stat } = chiSquare(await empirical(target, { method: 'specdiff', drafter, gamma: 2, maxNewTokens: 4 }, 1, afterFirstStep), await exactJoint(target, 1));
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
