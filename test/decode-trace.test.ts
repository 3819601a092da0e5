import { describe, expect, it } from 'vitest';
import { generate, type StepTrace } from '../src/decode/generate.js';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import { getDevice } from './helpers/device.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';

describe('the decoding trace (onStep)', () => {
  it('reports every iteration: its emitted tokens make the output, its counts the statistics, and p, q when sampling', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5 });
    for (const temperature of [0, 1]) {
      const steps: StepTrace[] = [];
      const drafter = new DiffusionDrafter(mdlm, { attention: 'block-causal' });
      const r = await generate(target, null, { prompt: [1, 5, 9], maxNewTokens: 20, temperature, method: 'specdiff', drafter, gamma: 3, stopAtEos: false, onStep: (s) => steps.push(s) }).result();
      drafter.dispose();
      expect(steps.map((s) => s.step)).toEqual(steps.map((_, i) => i));
      expect(steps.length).toBe(r.stats.targetPasses);
      expect(steps.flatMap((s) => s.emitted).slice(0, 20)).toEqual(r.tokens);
      expect(steps.reduce((n, s) => n + s.accepted, 0)).toBe(r.stats.acceptedTokens);
      expect(steps.reduce((n, s) => n + s.drafted.length, 0)).toBe(r.stats.draftedTokens);
      for (const s of steps) {
        expect(s.emitted.slice(0, s.accepted)).toEqual(s.drafted.slice(0, s.accepted));
        if (temperature === 0 || s.drafted.length === 0) continue;
        expect(s.p).toHaveLength(s.drafted.length);
        expect(s.q).toHaveLength(s.drafted.length);
        for (const v of [...s.p!, ...s.q!]) expect(v >= 0 && v <= 1).toBe(true);
        // q(d_i) > 0: a drafted token was drawn from q.
        expect(s.q!.every((v) => v > 0)).toBe(true);
      }
    }
  }, 400_000);
});
