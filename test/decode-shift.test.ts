/**
 * A diffusion drafter whose MDLM has shifted logits (config "shift_logits"): row i predicts the token at
 * i + 1, so a draft of γ runs γ − 1 masks and reads its rows from the last context token on.
 */
import { describe, expect, it } from 'vitest';
import { DiffusionDrafter, type DiffusionDrafterOptions } from '../src/decode/diffusion-drafter.js';
import { resolveSampling } from '../src/decode/options.js';
import { Rng } from '../src/decode/rng.js';
import { Tensor } from '../src/tensor/tensor.js';
import { slice } from '../src/tensor/ops/gather.js';
import { softmax } from '../src/tensor/ops/rowwise.js';
import { getDevice } from './helpers/device.js';
import { tinyMDLM } from './helpers/tiny-models.js';
import type { MDLM } from '../src/models/mdlm.js';

const V = 24;
// Weights at this scale give spread distributions (at 0.5 and over, one token takes nearly all the mass).
const sampled = resolveSampling({ temperature: 1 });
const ctx = [3, 7, 1, 9, 4, 4, 12, 5];

/** Softmax rows [rows.length, V + 1] of one pass over ids: block-causal (a fresh cache, `block` bidirectional rows) or bidirectional. */
async function distributions(mdlm: MDLM, ids: number[], rows: number[], block: number | 'bidirectional'): Promise<Float32Array> {
  const dev = mdlm.device;
  const cache = mdlm.createCache();
  const p = dev.scope(() => softmax(block === 'bidirectional' ? mdlm.logits(ids, rows) : mdlm.logitsCached(ids, cache, block, rows)));
  const out = (await p.read()) as Float32Array;
  p.dispose();
  cache.dispose();
  return out;
}

/** Largest difference between row r of q [rows, V] and row s of distributions over V + 1 ids (the mask last). */
const gap = (q: ArrayLike<number>, r: number, want: Float32Array, s = r) => Math.max(...Array.from({ length: V }, (_, j) => Math.abs(q[r * V + j] - want[s * (V + 1) + j])));

async function draftOnce(mdlm: MDLM, options: DiffusionDrafterOptions, gamma: number, context = ctx) {
  const drafter = new DiffusionDrafter(mdlm, options);
  const draft = mdlm.device.scope(() => drafter.draft(context, gamma, sampled, new Rng(3)));
  const out = { tokens: Array.from(await draft.tokens.read()), q: await draft.q!.read(), passes: draft.passes };
  for (const t of [draft.tokens, draft.q!]) t.dispose();
  drafter.dispose();
  return out;
}

describe('drafting with shifted logits', () => {
  it.each(['block-causal', 'bidirectional'] as const)('%s, T = 1: row i of q is the row of position L − 1 + i over the context and γ − 1 masks', async (attention) => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 0.3, shiftLogits: true });
    const gamma = 4;
    const { q } = await draftOnce(mdlm, { attention, window: 64 }, gamma);
    const ids = [...ctx, ...new Array<number>(gamma - 1).fill(mdlm.maskTokenId)];
    const rows = Array.from({ length: gamma }, (_, i) => ctx.length - 1 + i);
    const want = await distributions(mdlm, ids, rows, attention === 'block-causal' ? gamma - 1 : 'bidirectional');
    for (let i = 0; i < gamma; i++) expect(gap(q, i, want), `position ${i}`).toBeLessThan(1e-5);
    // The unshifted reading (rows L.., γ masks) is another distribution: the test can tell them apart.
    const unshifted = await distributions(mdlm, [...ctx, ...new Array<number>(gamma).fill(mdlm.maskTokenId)], rows.map((r) => r + 1), gamma);
    expect(Math.max(...rows.map((_, i) => gap(q, i, unshifted)))).toBeGreaterThan(1e-3);
    mdlm.dispose();
  }, 120_000);

  it('γ = 1 runs no mask: q is the next-token distribution of the context alone', async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 0.3, shiftLogits: true });
    const { q } = await draftOnce(mdlm, { attention: 'block-causal' }, 1);
    const want = await distributions(mdlm, ctx, [ctx.length - 1], 0);
    expect(gap(q, 0, want)).toBeLessThan(1e-5);
    mdlm.dispose();
  }, 120_000);

  it('T = γ, left to right: position i is drawn given the tokens drawn before it, the last position from the last mask\'s row', async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 0.3, shiftLogits: true });
    const gamma = 3;
    const { tokens, q, passes } = await draftOnce(mdlm, { attention: 'block-causal', steps: gamma, schedule: 'left-to-right' }, gamma);
    expect(passes).toBe(gamma);
    for (let i = 0; i < gamma; i++) {
      // Pass i sees the context, the i tokens drawn so far and the masks after them (γ − 1 positions after the context in all).
      const ids = [...ctx, ...tokens.slice(0, i), ...new Array<number>(gamma - 1 - i).fill(mdlm.maskTokenId)].slice(0, ctx.length + gamma - 1);
      const want = await distributions(mdlm, ids, [ctx.length - 1 + i], gamma - 1);
      expect(gap(q, i, want, 0), `position ${i}`).toBeLessThan(1e-5);
    }
    mdlm.dispose();
  }, 120_000);

  it("through a draft head: the head's first position reads the last context token's row, later ones the masks'", async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 0.3, shiftLogits: true, draftHead: true });
    const gamma = 3;
    const { tokens, q } = await draftOnce(mdlm, { headPositions: gamma, headStart: 0 }, gamma);
    const cache = mdlm.createCache();
    const headCache = mdlm.createDraftHeadCache();
    const ids = [...ctx, ...new Array<number>(gamma - 1).fill(mdlm.maskTokenId)];
    const hidden = dev.scope(() => mdlm.hiddenStatesCached(ids, cache, gamma - 1, Array.from({ length: gamma }, (_, i) => ctx.length - 1 + i)));
    const previous = [ctx[ctx.length - 1], ...tokens.slice(0, -1)];
    for (let i = 0; i < gamma; i++) {
      const p = dev.scope(() => softmax(mdlm.draftHeadLogits(slice(hidden, i, i + 1, 0), Tensor.from(dev, Int32Array.of(previous[i]), [1]), headCache)));
      expect(gap(q, i, (await p.read()) as Float32Array, 0), `position ${i}`).toBeLessThan(1e-5);
      p.dispose();
    }
    for (const t of [hidden, cache, headCache]) t.dispose();
    mdlm.dispose();
  }, 120_000);

  it('a block-causal drafter drafting twice from the same context, its cache holding all of it, drafts what a fresh one drafts', async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 0.3, shiftLogits: true });
    const greedy = resolveSampling({ temperature: 0 });
    const drafter = new DiffusionDrafter(mdlm, { attention: 'block-causal' });
    const twice = [];
    for (let k = 0; k < 2; k++) {
      const d = dev.scope(() => drafter.draft(ctx, 3, greedy, new Rng(1)));
      twice.push(Array.from(await d.tokens.read()));
      d.tokens.dispose();
    }
    drafter.dispose();
    const fresh = new DiffusionDrafter(mdlm, { attention: 'block-causal' });
    const d = dev.scope(() => fresh.draft(ctx, 3, greedy, new Rng(1)));
    const want = Array.from(await d.tokens.read());
    d.tokens.dispose();
    fresh.dispose();
    expect(twice).toEqual([want, want]);
    mdlm.dispose();
  }, 120_000);
});
