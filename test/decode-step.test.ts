/** One speculative step: draft, verify, roll the target back to what was accepted, tell the drafter. */
import { describe, expect, it } from 'vitest';
import { ARDrafter } from '../src/decode/ar-drafter.js';
import { Rng } from '../src/decode/rng.js';
import { speculativeStep, targetStep } from '../src/decode/step.js';
import { getDevice } from './helpers/device.js';
import { tinyGPT2 } from './helpers/tiny-models.js';

describe('speculativeStep', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
  const other = await tinyGPT2(dev, { vocab: 24, seed: 2, scale: 0.5 });
  const greedy = { temperature: 0, topK: 0, topP: 1 };
  const context = [1, 5, 9, 2];

  /** One step after the prompt's prefill; returns it with the cache length before and after. */
  const step = async (draftModel: typeof target, gamma: number) => {
    const cache = target.createCache();
    target.forward(context.slice(0, -1), cache).dispose();
    const drafter = new ARDrafter(draftModel);
    const before = cache.length;
    const s = await speculativeStep({ target, cache, sampling: greedy, rng: new Rng(0), drafter, cutoff: 0, verification: 'block' }, context, gamma);
    const after = cache.length;
    cache.dispose();
    drafter.dispose();
    return { s, before, after };
  };

  it('keeps in the target cache the pending token and the accepted drafts, nothing of the rejected ones', async () => {
    const accepted: number[] = [];
    for (const model of [target, other]) {
      const { s, before, after } = await step(model, 5);
      expect(s.drafted).toHaveLength(5);
      expect(after - before).toBe(1 + s.accepted);
      accepted.push(s.accepted);
    }
    expect(accepted[1], 'the unrelated drafter had a token rejected').toBeLessThan(5);
  });

  it("with the target as its own drafter accepts every greedy draft, and the target's next token follows them", async () => {
    const { s } = await step(target, 5);
    expect(s.accepted).toBe(5);
    const cache = target.createCache();
    target.forward(context.slice(0, -1), cache).dispose();
    const ar: number[] = [];
    const run = { target, cache, sampling: greedy, rng: new Rng(0) };
    for (let i = 0; i < 6; i++) ar.push((await targetStep(run, [...context, ...ar])).next);
    cache.dispose();
    expect([...s.drafted, s.next]).toEqual(ar);
  });
});
