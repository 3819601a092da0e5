/**
 * A diffusion drafter that reads the target's hidden states (config "target_features"): token i of
 * the context is read beside the target's state that predicted it, from the target's HiddenStates.
 * A draft head with "draft_head_features" reads, at the draft's first position, the state that
 * predicted the last context token.
 */
import { describe, expect, it } from 'vitest';
import { generate } from '../src/decode/generate.js';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import { resolveSampling } from '../src/decode/options.js';
import { Rng } from '../src/decode/rng.js';
import { Tensor } from '../src/tensor/tensor.js';
import { embedding, slice } from '../src/tensor/ops/gather.js';
import { getDevice } from './helpers/device.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';

const V = 24;
const greedy = resolveSampling({ temperature: 0 });
const sampled = resolveSampling({ temperature: 1 });

/** Softmax of each row's first `keep` of `cols` logits (the drafter's q leaves out the mask column). */
function softmaxRows(logits: ArrayLike<number>, rows: number, cols: number, keep: number): Float64Array {
  const out = new Float64Array(rows * keep);
  for (let r = 0; r < rows; r++) {
    const row = Array.from({ length: keep }, (_, j) => logits[r * cols + j]);
    const m = Math.max(...row);
    const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
    row.forEach((v, j) => (out[r * keep + j] = Math.exp(v - m) / z));
  }
  return out;
}

describe('drafting with the target hidden states', () => {
  it('a block-causal draft is drawn from one pass over the whole context with state i beside token i, as the context grows', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: V, seed: 1, scale: 0.5 });
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 3, targetFeatures: target.config.nEmbd });
    const drafter = new DiffusionDrafter(mdlm, { attention: 'block-causal' });
    const cache = target.createCache();
    const states = target.createHiddenStates();
    const ctx = [3, 7, 1, 9, 4, 4, 12, 5];
    const gamma = 4;
    dev.scope(() => target.forward(ctx.slice(0, -1), cache, 1, states).dispose());
    drafter.prefill(ctx, states);
    for (const grow of [[], [8, 2, 17], [6]]) {
      if (grow.length) {
        // What a verify does: the target reads the pending token and the accepted ones.
        dev.scope(() => target.forward([ctx[ctx.length - 1], ...grow.slice(0, -1)], cache, 1, states).dispose());
        ctx.push(...grow);
      }
      const draft = dev.scope(() => drafter.draft(ctx, gamma, sampled, new Rng(0), false, states));
      const expected = dev.scope(() => {
        const rows = Tensor.from(dev, Int32Array.from([...ctx.keys(), ...new Array(gamma).fill(0)]), [ctx.length + gamma]);
        const ids = [...ctx, ...new Array(gamma).fill(mdlm.maskTokenId)];
        const tail = Array.from({ length: gamma }, (_, i) => ctx.length + i);
        return mdlm.logitsCached(ids, mdlm.createCache(), gamma, tail, embedding(states.rows, rows));
      });
      const [q, logits] = await Promise.all([draft.q!.read(), expected.read()]);
      const want = softmaxRows(logits, gamma, V + 1, V);
      expect(Math.max(...q.map((v, i) => Math.abs(v - want[i]))), `context of ${ctx.length}`).toBeLessThan(1e-5);
      for (const t of [draft.tokens, draft.q!, expected]) t.dispose();
    }
    drafter.dispose();
    states.dispose();
    cache.dispose();
  }, 400_000);

  it('the draft depends on the states: zeroed states give other distributions', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: V, seed: 1, scale: 0.5 });
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 3, targetFeatures: target.config.nEmbd });
    const ctx = [3, 7, 1, 9, 4, 4, 12, 5, 8, 2, 17, 6];
    const draftWith = async (fill: boolean) => {
      const states = target.createHiddenStates();
      const cache = target.createCache();
      if (fill) dev.scope(() => target.forward(ctx.slice(0, -1), cache, 1, states).dispose());
      else dev.upload(states.rows.buffer, 0, new Float32Array(states.rows.size));
      const drafter = new DiffusionDrafter(mdlm, { attention: 'bidirectional', window: ctx.length });
      const draft = dev.scope(() => drafter.draft(ctx, 4, sampled, new Rng(0), false, states));
      const q = await draft.q!.read();
      draft.tokens.dispose();
      draft.q!.dispose();
      states.dispose();
      cache.dispose();
      return q;
    };
    const [withStates, zeroed] = [await draftWith(true), await draftWith(false)];
    expect(Math.max(...withStates.map((v, i) => Math.abs(v - zeroed[i])))).toBeGreaterThan(1e-3);
  }, 400_000);

  it('refuses to draft without the states, and generate refuses a target of another width, naming both widths', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: V, seed: 1, scale: 0.5, d: 16 });
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 3, targetFeatures: 32 });
    const drafter = new DiffusionDrafter(mdlm, { attention: 'block-causal' });
    expect(() => dev.scope(() => drafter.draft([1, 2, 3], 2, greedy, new Rng(0)))).toThrow(/reads the target's hidden states \("target_features": 32\)/);
    expect(() => generate(target, null, { prompt: [1, 2], method: 'specdiff', drafter })).toThrow(/width 32 .* n_embd is 16/);
    drafter.dispose();
  });
});

describe('a draft head reading the target state at its first position', () => {
  const ctx = [3, 7, 1, 9, 4, 4, 12, 5, 8, 2];

  it('the first drafted position reads the state that predicted the last context token (row context.length − 1), not its neighbour', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: V, seed: 1, scale: 0.5 });
    // A small weight scale keeps q away from one-hot, where every feature would give the same q.
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 0.15, draftHead: true, draftHeadFeatures: target.config.nEmbd });
    const drafter = new DiffusionDrafter(mdlm);
    expect(drafter.targetFeatures).toBe(target.config.nEmbd);
    const cache = target.createCache();
    const states = target.createHiddenStates();
    dev.scope(() => target.forward(ctx.slice(0, -1), cache, 1, states).dispose());
    drafter.prefill(ctx, states);
    const draft = dev.scope(() => drafter.draft(ctx, 3, sampled, new Rng(0), false, states));
    const q = (await draft.q!.read()).subarray(0, V);
    // The head's first step, by hand: the backbone's state of the first mask, the last context token, state row `row`.
    const firstRow = async (row: number) => {
      const logits = dev.scope(() => {
        const ids = [...ctx, ...new Array(3).fill(mdlm.maskTokenId)];
        const hidden = mdlm.hiddenStatesCached(ids, mdlm.createCache(), 3, [ctx.length]);
        const feature = embedding(states.rows, Tensor.from(dev, Int32Array.of(row), [1]));
        return mdlm.draftHeadLogits(slice(hidden, 0, 1, 0), Tensor.from(dev, Int32Array.of(ctx[ctx.length - 1]), [1]), mdlm.createDraftHeadCache(), feature);
      });
      const want = softmaxRows(await logits.read(), 1, V + 1, V);
      logits.dispose();
      return Math.max(...q.map((v, i) => Math.abs(v - want[i])));
    };
    expect(await firstRow(ctx.length - 1)).toBeLessThan(1e-5);
    expect(await firstRow(ctx.length - 2)).toBeGreaterThan(1e-3);
    for (const t of [draft.tokens, draft.q!]) t.dispose();
    drafter.dispose();
    states.dispose();
    cache.dispose();
  }, 400_000);

  it('needs the states only while the head drafts: a drafter configured without its head reads none', async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, draftHead: true, draftHeadFeatures: 32 });
    const drafter = new DiffusionDrafter(mdlm);
    expect(drafter.targetFeatures).toBe(32);
    expect(new DiffusionDrafter(mdlm, { draftHead: false }).targetFeatures).toBe(0);
    expect(() => dev.scope(() => drafter.draft(ctx, 2, sampled, new Rng(0)))).toThrow(/head reads the target's hidden states \("draft_head_features": 32\)/);
    drafter.dispose();
  });
});
