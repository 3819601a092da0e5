import { describe, expect, it } from 'vitest';
import { generate } from '../src/decode/generate.js';
import { ARDrafter } from '../src/decode/ar-drafter.js';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import { getDevice } from './helpers/device.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';

const prompts = [[1], [5, 9, 2], [3, 3, 3, 3, 7, 11, 0, 2, 19, 4]];

describe('greedy speculative decoding reproduces AR greedy token for token', () => {
  it('with an AR drafter (an unrelated model, and the target itself), over prompts and γ', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const others = [await tinyGPT2(dev, { vocab: 24, seed: 2, scale: 0.5 }), target];
    for (const prompt of prompts) {
      const ar = await generate(target, null, { prompt, maxNewTokens: 20, temperature: 0, stopAtEos: false }).result();
      for (const model of others) {
        for (const gamma of [1, 3, 8]) {
          const spec = await generate(target, null, { prompt, maxNewTokens: 20, temperature: 0, method: 'speculative', drafter: new ARDrafter(model), gamma, stopAtEos: false }).result();
          expect(spec.tokens, `prompt ${prompt} γ=${gamma}`).toEqual(ar.tokens);
          if (model === target) expect(spec.stats.acceptanceRate).toBe(1);
        }
      }
    }
  });

  it('with a diffusion drafter, over prompts, γ, T, W and both schedules', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5 });
    for (const prompt of prompts) {
      const ar = await generate(target, null, { prompt, maxNewTokens: 16, temperature: 0, stopAtEos: false }).result();
      for (const [gamma, steps, window] of [[4, 1, 64], [6, 3, 2], [8, 8, 5]] as const) {
        for (const schedule of ['left-to-right', 'random'] as const) {
          const drafter = new DiffusionDrafter(mdlm);
          const spec = await generate(target, null, { prompt, maxNewTokens: 16, temperature: 0, method: 'specdiff', drafter, gamma, steps, window: Math.min(window, 64 - gamma), schedule, stopAtEos: false }).result();
          expect(spec.tokens, `prompt ${prompt} γ=${gamma} T=${steps} ${schedule}`).toEqual(ar.tokens);
          expect(spec.stats.drafterPasses).toBeLessThanOrEqual(spec.stats.targetPasses * Math.min(steps, gamma));
        }
      }
    }
  });
});
