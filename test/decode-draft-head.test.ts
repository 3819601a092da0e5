/**
 * A diffusion drafter whose MDLM has a draft head (config "draft_head"): one backbone pass, then the
 * head position by position, each position drawn given the token drawn before it, or in one step
 * reading the backbone's own draws ('parallel').
 */
import { describe, expect, it } from 'vitest';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import { resolveSampling } from '../src/decode/options.js';
import { Rng } from '../src/decode/rng.js';
import { Tensor } from '../src/tensor/tensor.js';
import { slice } from '../src/tensor/ops/gather.js';
import { softmax } from '../src/tensor/ops/rowwise.js';
import { selectTokens } from '../src/decode/sample.js';
import { getDevice } from './helpers/device.js';
import { tinyMDLM } from './helpers/tiny-models.js';
import type { MDLM } from '../src/models/mdlm.js';

const V = 24;
const sampled = resolveSampling({ temperature: 1 });
const ctx = [3, 7, 1, 9, 4, 4, 12, 5];
const gamma = 5;

/** The backbone's own T = 1 distributions [γ, V + 1] at the γ masks after ctx (block-causal, a fresh cache). */
async function backboneDistributions(mdlm: MDLM): Promise<Float32Array> {
  const dev = mdlm.device;
  const ids = [...ctx, ...new Array<number>(gamma).fill(mdlm.maskTokenId)];
  const cache = mdlm.createCache();
  const p = dev.scope(() => softmax(mdlm.logitsCached(ids, cache, gamma, Array.from({ length: gamma }, (_, i) => ctx.length + i))));
  const out = (await p.read()) as Float32Array;
  p.dispose();
  cache.dispose();
  return out;
}

/** Largest difference in row r between q [γ, V] and distributions over V + 1 ids (the mask last). */
const rowGaps = (q: ArrayLike<number>, want: Float32Array) => (r: number) => Math.max(...Array.from({ length: V }, (_, j) => Math.abs(q[r * V + j] - want[r * (V + 1) + j])));

describe('drafting through a draft head', () => {
  it("row i of q is the head's distribution at position i given the tokens drawn before it, and the tokens were drawn from it", async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 1.0, draftHead: true });
    const drafter = new DiffusionDrafter(mdlm, { headPositions: gamma, headStart: 0 });
    expect([drafter.draftHead, drafter.attention]).toEqual([true, 'block-causal']);
    const draft = dev.scope(() => drafter.draft(ctx, gamma, sampled, new Rng(1)));
    expect([draft.passes, draft.headSteps]).toEqual([1, gamma]);
    const [tokens, q] = [Array.from(await draft.tokens.read()), await draft.q!.read()];
    // The same computation spelled out on a fresh cache, reading the drawn tokens.
    const cache = mdlm.createCache();
    const headCache = mdlm.createDraftHeadCache();
    const ids = [...ctx, ...new Array<number>(gamma).fill(mdlm.maskTokenId)];
    const hidden = dev.scope(() => mdlm.hiddenStatesCached(ids, cache, gamma, Array.from({ length: gamma }, (_, i) => ctx.length + i)));
    const previous = [ctx[ctx.length - 1], ...tokens.slice(0, -1)];
    for (let i = 0; i < gamma; i++) {
      const p = dev.scope(() => softmax(mdlm.draftHeadLogits(slice(hidden, i, i + 1, 0), Tensor.from(dev, Int32Array.of(previous[i]), [1]), headCache)));
      const want = await p.read(); // V + 1 columns; the mask's is ~0
      const got = q.subarray(i * V, (i + 1) * V);
      expect(Math.max(...Array.from(got, (v, j) => Math.abs(v - want[j]))), `position ${i}`).toBeLessThan(1e-5);
      expect(got[tokens[i]], `token ${i} has probability under q`).toBeGreaterThan(0);
      p.dispose();
    }
    for (const t of [draft.tokens, draft.q!, hidden, cache, headCache]) t.dispose();
    drafter.dispose();
    mdlm.dispose();
  }, 120_000);

  it("from headStart on the head draws, its chain starting there and reading the token the backbone drew before it", async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 1.0, draftHead: true });
    const start = 2;
    const drafter = new DiffusionDrafter(mdlm, { headPositions: gamma, headStart: start });
    const draft = dev.scope(() => drafter.draft(ctx, gamma, sampled, new Rng(1)));
    expect([draft.passes, draft.headSteps]).toEqual([1, gamma - start]);
    const [tokens, q] = [Array.from(await draft.tokens.read()), await draft.q!.read()];
    const gap = rowGaps(q, await backboneDistributions(mdlm));
    expect([0, 1].map(gap).every((g) => g < 1e-5), "rows before headStart are the backbone's").toBe(true);
    // The head's chain spelled out on fresh caches: its first step (an empty head cache) at position `start`.
    const cache = mdlm.createCache();
    const headCache = mdlm.createDraftHeadCache();
    const ids = [...ctx, ...new Array<number>(gamma).fill(mdlm.maskTokenId)];
    const hidden = dev.scope(() => mdlm.hiddenStatesCached(ids, cache, gamma, Array.from({ length: gamma }, (_, i) => ctx.length + i)));
    for (let i = start; i < gamma; i++) {
      const p = dev.scope(() => softmax(mdlm.draftHeadLogits(slice(hidden, i, i + 1, 0), Tensor.from(dev, Int32Array.of(tokens[i - 1]), [1]), headCache)));
      const want = await p.read();
      const got = q.subarray(i * V, (i + 1) * V);
      expect(Math.max(...Array.from(got, (v, j) => Math.abs(v - want[j]))), `position ${i}`).toBeLessThan(1e-5);
      expect(got[tokens[i]], `token ${i} has probability under q`).toBeGreaterThan(0);
      p.dispose();
    }
    expect(gap(start), "row headStart is the head's").toBeGreaterThan(1e-3);
    expect(() => new DiffusionDrafter(mdlm, { headStart: -1 })).toThrow(/headStart must be an integer in \[0, \d+\], got -1/);
    for (const t of [draft.tokens, draft.q!, hidden, cache, headCache]) t.dispose();
    drafter.dispose();
    mdlm.dispose();
  }, 120_000);

  it('past headPositions the draft comes from the backbone pass: those rows of q are its T = 1 distributions', async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 1.0, draftHead: true });
    const drafter = new DiffusionDrafter(mdlm, { headPositions: 2, headStart: 0 });
    const draft = dev.scope(() => drafter.draft(ctx, gamma, sampled, new Rng(1)));
    expect(draft.headSteps).toBe(2);
    const gap = rowGaps(await draft.q!.read(), await backboneDistributions(mdlm));
    expect([2, 3, 4].map(gap).every((g) => g < 1e-5), 'rows 2-4 are the backbone\'s').toBe(true);
    expect(gap(1), "row 1 is the head's").toBeGreaterThan(1e-3);
    for (const t of [draft.tokens, draft.q!]) t.dispose();
    drafter.dispose();
    mdlm.dispose();
  }, 120_000);

  it('the head over R positions in one step gives what R one-position steps give', async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 1.0, draftHead: true });
    const ids = [...ctx, ...new Array<number>(gamma).fill(mdlm.maskTokenId)];
    const cache = mdlm.createCache();
    const hidden = dev.scope(() => mdlm.hiddenStatesCached(ids, cache, gamma, Array.from({ length: gamma }, (_, i) => ctx.length + i)));
    const previous = [ctx[ctx.length - 1], 11, 2, 11, 0];
    const [batched, stepped] = [mdlm.createDraftHeadCache(), mdlm.createDraftHeadCache()];
    const all = dev.scope(() => mdlm.draftHeadLogits(hidden, Tensor.from(dev, Int32Array.from(previous), [gamma]), batched));
    const want = await all.read();
    for (let i = 0; i < gamma; i++) {
      const row = dev.scope(() => mdlm.draftHeadLogits(slice(hidden, i, i + 1, 0), Tensor.from(dev, Int32Array.of(previous[i]), [1]), stepped));
      const got = await row.read();
      expect(Math.max(...Array.from(got, (v, j) => Math.abs(v - want[i * (V + 1) + j]))), `position ${i}`).toBeLessThan(1e-4);
      row.dispose();
    }
    expect(() => mdlm.draftHeadLogits(hidden, Tensor.from(dev, Int32Array.of(1, 2), [2]), batched)).toThrow(/previous must be 5 i32 token ids/);
    for (const t of [all, hidden, cache, batched, stepped]) t.dispose();
    mdlm.dispose();
  }, 120_000);

  // Three drafts over four positions share one cache (12 rows): each row must see only its own draft's rows,
  // at its own rotary position, with the target's state (draft_head_features) at the first position of each.
  it("several drafts' head steps taken together give each draft's own chain of one-position steps", async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 1.0, draftHead: true, draftHeadFeatures: 8 });
    const ids = [...ctx, ...new Array<number>(gamma).fill(mdlm.maskTokenId)];
    const cache = mdlm.createCache();
    const hidden = dev.scope(() => mdlm.hiddenStatesCached(ids, cache, gamma, Array.from({ length: gamma }, (_, i) => ctx.length + i)));
    const feature = Tensor.from(dev, Float32Array.from({ length: 8 }, (_, i) => Math.sin(i + 1)), [1, 8]);
    const last = ctx[ctx.length - 1];
    const drafts = [
      [last, 11, 2, 11],
      [last, 11, 7, 0],
      [last, 3, 3, 20],
    ];
    const shared = mdlm.createDraftHeadCache();
    const together: Float32Array[] = [];
    for (let i = 0; i < 4; i++) {
      const previous = Tensor.from(dev, Int32Array.from(drafts, (d) => d[i]), [3]);
      const logits = dev.scope(() => mdlm.draftHeadLogitsForDrafts(slice(hidden, i, i + 1, 0), previous, shared, i === 0 ? feature : undefined));
      together.push((await logits.read()) as Float32Array);
      logits.dispose();
    }
    expect(shared.length).toBe(12);
    for (const [k, draft] of drafts.entries()) {
      const own = mdlm.createDraftHeadCache();
      for (let i = 0; i < 4; i++) {
        const row = dev.scope(() => mdlm.draftHeadLogits(slice(hidden, i, i + 1, 0), Tensor.from(dev, Int32Array.of(draft[i]), [1]), own, i === 0 ? feature : undefined));
        const got = await row.read();
        expect(Math.max(...Array.from(got, (v, j) => Math.abs(v - together[i][k * (V + 1) + j]))), `draft ${k} position ${i}`).toBeLessThan(1e-4);
        row.dispose();
      }
      own.dispose();
    }
    expect(() => mdlm.draftHeadLogitsForDrafts(slice(hidden, 0, 1, 0), Tensor.from(dev, new Int32Array(5), [5]), shared)).toThrow(/5 drafts' i32 tokens after 12 cached rows/);
    for (const t of [hidden, cache, shared, feature]) t.dispose();
    mdlm.dispose();
  }, 120_000);

  it("drawing in parallel: the head's positions read the backbone's draws made with the same random numbers, in one head step", async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 1.0, draftHead: true });
    const headed = 3;
    const drafter = new DiffusionDrafter(mdlm, { headPositions: headed, headDraw: 'parallel', headStart: 0 });
    const draft = dev.scope(() => drafter.draft(ctx, gamma, sampled, new Rng(1)));
    expect([draft.passes, draft.headSteps]).toEqual([1, 1]);
    const [tokens, q] = [Array.from(await draft.tokens.read()), await draft.q!.read()];
    // Spelled out: the backbone's draw of every position with Rng(1)'s numbers, then the head reading it.
    const uniforms = new Rng(1).uniforms(gamma);
    const ids = [...ctx, ...new Array<number>(gamma).fill(mdlm.maskTokenId)];
    const cache = mdlm.createCache();
    const headCache = mdlm.createDraftHeadCache();
    const hidden = dev.scope(() => mdlm.hiddenStatesCached(ids, cache, gamma, Array.from({ length: gamma }, (_, i) => ctx.length + i)));
    const backbone = dev.scope(() => selectTokens(dev, mdlm.logitsOfStates(hidden), sampled, new Rng(99), false, uniforms).ids);
    const backboneTokens = Array.from(await backbone.read());
    const previous = [ctx[ctx.length - 1], ...backboneTokens.slice(0, headed - 1)];
    const headLogits = dev.scope(() => mdlm.draftHeadLogits(slice(hidden, 0, headed, 0), Tensor.from(dev, Int32Array.from(previous), [headed]), headCache));
    const p = dev.scope(() => softmax(headLogits));
    const want = await p.read();
    const redrawn = dev.scope(() => selectTokens(dev, headLogits, sampled, new Rng(99), false, uniforms.subarray(0, headed)).ids);
    expect(tokens.slice(0, headed), "the head's draws, with the same numbers").toEqual(Array.from(await redrawn.read()));
    expect(tokens.slice(headed), "past headPositions, the backbone's draws").toEqual(backboneTokens.slice(headed));
    for (let i = 0; i < headed; i++) {
      const got = q.subarray(i * V, (i + 1) * V);
      expect(Math.max(...Array.from(got, (v, j) => Math.abs(v - want[i * (V + 1) + j]))), `position ${i}`).toBeLessThan(1e-5);
    }
    const gap = rowGaps(q, await backboneDistributions(mdlm));
    expect([3, 4].map(gap).every((g) => g < 1e-5), "rows 3-4 are the backbone's").toBe(true);
    for (const t of [draft.tokens, draft.q!, hidden, cache, headCache, backbone, headLogits, p, redrawn]) t.dispose();
    drafter.dispose();
    mdlm.dispose();
  }, 120_000);

  it('later positions depend on the tokens drawn before them: other draws give other distributions', async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 0.3, draftHead: true });
    const drafter = new DiffusionDrafter(mdlm);
    const drafts = [];
    for (let seed = 0; seed < 8; seed++) {
      const d = dev.scope(() => drafter.draft(ctx, 2, sampled, new Rng(seed)));
      drafts.push({ tokens: Array.from(await d.tokens.read()), q: (await d.q!.read()) as Float32Array });
      d.tokens.dispose();
      d.q!.dispose();
    }
    const first = drafts[0];
    const other = drafts.find((d) => d.tokens[0] !== first.tokens[0]);
    expect(other, 'eight draws give two first tokens (the first position is far from sure)').toBeDefined();
    const row = (q: Float32Array, i: number) => q.subarray(i * V, (i + 1) * V);
    // Position 1's q does not depend on the draw; position 2's does.
    expect(Math.max(...Array.from(row(first.q, 0), (v, j) => Math.abs(v - row(other!.q, 0)[j])))).toBeLessThan(1e-6);
    expect(Math.max(...Array.from(row(first.q, 1), (v, j) => Math.abs(v - row(other!.q, 1)[j])))).toBeGreaterThan(1e-3);
    drafter.dispose();
    mdlm.dispose();
  }, 120_000);

  it('by default the head drafts, sampling or greedy; draftHead false, as an option or to the drafter, turns it off', async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 1.0, draftHead: true });
    const drafter = new DiffusionDrafter(mdlm);
    const used = (d: DiffusionDrafter) => d.draftHead;
    expect(used(drafter.configure({}, gamma))).toBe(true);
    expect(used(drafter.configure({ draftHead: false }, gamma))).toBe(false);
    const off = new DiffusionDrafter(mdlm, { draftHead: false });
    expect(used(off.configure({}, gamma))).toBe(false);
    expect(used(off.configure({ draftHead: true }, gamma))).toBe(true);
    for (const d of [drafter, off]) d.dispose();
    mdlm.dispose();
  });

  it('draftHead false drafts as the backbone alone; asking for T > 1 steps turns the head off; bad combinations and values are typed errors', async () => {
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 5, scale: 1.0, draftHead: true });
    const drafter = new DiffusionDrafter(mdlm);
    const plain = drafter.configure({ draftHead: false }, gamma) as DiffusionDrafter;
    expect(plain.draftHead).toBe(false);
    const draft = dev.scope(() => plain.draft(ctx, gamma, sampled, new Rng(1)));
    expect(draft.headSteps ?? 0).toBe(0);
    const gap = rowGaps(await draft.q!.read(), await backboneDistributions(mdlm));
    expect(Array.from({ length: gamma }, (_, r) => gap(r)).every((g) => g < 1e-5)).toBe(true);
    expect((drafter.configure({ steps: 2 }, gamma) as DiffusionDrafter).draftHead).toBe(false);
    expect(() => drafter.configure({ steps: 2, draftHead: true }, gamma)).toThrow(/steps: a draft through the draft head takes one backbone pass/);
    const headless = new DiffusionDrafter(await tinyMDLM(dev, { vocab: V, seed: 5 }));
    expect(headless.draftHead).toBe(false);
    expect(() => headless.configure({ draftHead: true }, gamma)).toThrow(/draftHead: this drafter's model has no draft head/);
    expect(() => headless.model.createDraftHeadCache()).toThrow(/has no draft head/);
    expect(() => drafter.configure({ headDraw: 'tree' as never }, gamma)).toThrow(/headDraw must be 'sequential' or 'parallel', got tree/);
    for (const t of [draft.tokens, draft.q!]) t.dispose();
    for (const d of [drafter, plain, headless]) d.dispose();
    mdlm.dispose();
    headless.model.dispose();
  }, 120_000);
});
