/**
 * A generation's speculation options configure a copy of the drafter: the caller's drafter keeps
 * its own settings, so one generation's options never carry over to the next.
 */
import { describe, expect, it } from 'vitest';
import { generate } from '../src/decode/generate.js';
import { ARDrafter } from '../src/decode/ar-drafter.js';
import { DEFAULT_STEPS, DEFAULT_WINDOW, DiffusionDrafter } from '../src/decode/diffusion-drafter.js';

import { getDevice } from './helpers/device.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';

describe('drafters configured per generation', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: 16, seed: 1, positions: 32 });
  const mdlm = await tinyMDLM(dev, { vocab: 16, seed: 2, positions: 32 });
  const settingsOf = (d: DiffusionDrafter) => ({ steps: d.steps, window: d.window, schedule: d.schedule, attention: d.attention });
  const specdiff = (drafter: DiffusionDrafter, o: object = {}) =>
    generate(target, null, { prompt: [1, 2, 3], method: 'specdiff', drafter, gamma: 4, temperature: 1, seed: 7, maxNewTokens: 12, stopAtEos: false, ...o }).result();

  it("a generation with steps, window, schedule and draftAttention leaves the caller's drafter unchanged", async () => {
    const drafter = new DiffusionDrafter(mdlm, { attention: 'bidirectional' });
    const before = settingsOf(drafter);
    const r = await specdiff(drafter, { steps: 3, window: 5, schedule: 'random', draftAttention: 'block-causal' });
    expect(r.stats.steps).toBe(3);
    expect(settingsOf(drafter)).toEqual(before);
    drafter.dispose();
  });

  it("a later generation without those options drafts with the drafter's own settings", async () => {
    const drafter = new DiffusionDrafter(mdlm, { attention: 'bidirectional' });
    await specdiff(drafter, { steps: 3, window: 5, schedule: 'random', draftAttention: 'block-causal' });
    const later = await specdiff(drafter);
    const fresh = await specdiff(new DiffusionDrafter(mdlm, { attention: 'bidirectional' }), { disposeDrafter: true });
    expect(later.stats.steps).toBe(DEFAULT_STEPS);
    expect(settingsOf(drafter)).toEqual({ steps: DEFAULT_STEPS, window: DEFAULT_WINDOW, schedule: 'left-to-right', attention: 'bidirectional' });
    expect(later.tokens).toEqual(fresh.tokens);
    expect(later.stats.drafterPasses).toBe(fresh.stats.drafterPasses);
    drafter.dispose();
  });

  it('configure returns the drafter itself when the options change nothing, else a copy on the same model', () => {
    const drafter = new DiffusionDrafter(mdlm, { steps: 2, window: 6 });
    expect(drafter.configure({}, 4)).toBe(drafter);
    expect(drafter.configure({ steps: 2, window: 6 }, 4)).toBe(drafter);
    const copy = drafter.configure({ steps: 3 }, 4);
    expect(copy).not.toBe(drafter);
    expect(copy.model).toBe(drafter.model);
    expect(settingsOf(copy)).toEqual({ ...settingsOf(drafter), steps: 3 });
    expect(drafter.steps).toBe(2);
  });

  it('each drafter gives its own default draft lengths: SpecDiff 5 growing to 31 greedy and 3 sampled, speculative 4', () => {
    const greedy = { temperature: 0, topK: 0, topP: 1 };
    const sampled = { temperature: 1, topK: 0, topP: 1 };
    const diffusion = new DiffusionDrafter(mdlm);
    expect([diffusion.defaults(greedy), diffusion.defaults(sampled)]).toEqual([{ gamma: 6, maxGamma: 31 }, { gamma: 6, maxGamma: 6 }]);
    const ar = new ARDrafter(target);
    expect([ar.defaults(), ar.configure()]).toEqual([{ gamma: 4, maxGamma: 4 }, ar]);
  });
});
