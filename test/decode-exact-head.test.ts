/**
 * Speculative sampling through a draft head leaves the target's distribution unchanged: the chi-square
 * test of helpers/exactness.ts (whose negative control is in decode-exact.test.ts) for a head drawing
 * position by position, bidirectional and block-causal, for its first position only, and in parallel.
 */
import { describe, expect, it } from 'vitest';
import { DiffusionDrafter, type DiffusionDrafterOptions } from '../src/decode/diffusion-drafter.js';
import { getDevice } from './helpers/device.js';
import { tinyGPT2, tinyMDLM, type TinySpec } from './helpers/tiny-models.js';
import { CHI2_35_999, chiSquare, empirical, exactJoint, V } from './helpers/exactness.js';

describe('speculative sampling through a draft head is exact (chi-square on the first two tokens)', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: V, seed: 11, scale: 1.0 });
  const joint = await exactJoint(target);
  const critical = CHI2_35_999;

  // The head draws position 2 given the token drawn at position 1 (by the head itself, or by the backbone when
  // the head starts at the second position, the default with shifted logits): its q must be that conditional. In parallel, position 2's q reads the
  // backbone's draw at position 1, made with position 1's random number.
  const cases: Array<[string, DiffusionDrafterOptions, Partial<TinySpec>?]> = [
    ['bidirectional', { attention: 'bidirectional' }],
    ['block-causal', { attention: 'block-causal' }],
    ['block-causal, from the second position', { attention: 'block-causal', headStart: 1 }],
    ['drawing in parallel, coupled to the backbone\'s draw', { headDraw: 'parallel' }],
    ['drawing in parallel from the second position', { headDraw: 'parallel', headStart: 1 }],
    ['for its first position only, the second from the backbone', { headPositions: 1, headStart: 0 }],
    ['reading the target\'s state at its first position', { headStart: 0 }, { draftHeadFeatures: target.config.nEmbd }],
    ['over a backbone with shifted logits', {}, { shiftLogits: true }],
    ['over a backbone with the AR drafter\'s layout (learned positions, attention biases, shifted logits)', {}, { shiftLogits: true, arLayout: true }],
  ];
  it.each(cases)('diffusion drafter through a draft head, %s, γ = 2', async (_, options, spec = {}) => {
    const drafter = new DiffusionDrafter(await tinyMDLM(dev, { vocab: V, seed: 13, scale: 1.0, draftHead: true, ...spec }), options);
    expect(drafter.draftHead).toBe(true);
    const { stat } = chiSquare(await empirical(target, { method: 'specdiff', drafter, gamma: 2 }), joint);
    expect(stat, `chi-square ${stat.toFixed(1)}`).toBeLessThan(critical);
    drafter.dispose();
    drafter.model.dispose();
  }, 400_000);
});
