/**
 * A staged start (GenerateOptions.draftWhen): plain target steps until the promise settles, then draft → verify;
 * with waitForDrafting, one plain step and a wait.
 * Its exactness when sampling: decode-exact.test.ts; its warm-up (Pipeline.warmupStaged): warmup.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { getDevice } from './helpers/device.js';
import { createNodeDevice } from '../src/node.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import { generate, type GenerateOptions } from '../src/decode/generate.js';

const V = 16;
const PROMPT = [1, 2, 3];

describe('draftWhen', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: V, seed: 21, scale: 0.5 });
  const mdlm = await tinyMDLM(dev, { vocab: V, seed: 22, scale: 0.5 });
  const run = (opts: Omit<GenerateOptions, 'prompt'>) => generate(target, null, { prompt: PROMPT, maxNewTokens: 16, stopAtEos: false, ...opts }).result();

  it('pending throughout: every step is a plain target step, and a seed gives the AR method\'s tokens', async () => {
    const drafter = new DiffusionDrafter(mdlm);
    const sampled = { temperature: 0.9, seed: 3 };
    const staged = await run({ ...sampled, method: 'specdiff', drafter, draftWhen: new Promise(() => {}) });
    const ar = await run({ ...sampled, method: 'ar' });
    expect(staged.tokens).toEqual(ar.tokens);
    expect(staged.stats.stepsBeforeDrafting).toBe(staged.stats.targetPasses);
    expect(staged.stats.draftedTokens).toBe(0);
    drafter.dispose();
  });

  it.each([1, 5])('settling after step %i: that many plain steps, then drafts, and the greedy tokens of a run that drafts from the start', async (k) => {
    const drafter = new DiffusionDrafter(mdlm);
    let settle = () => {};
    const draftWhen = new Promise<void>((resolve) => (settle = resolve));
    const staged = await run({ temperature: 0, method: 'specdiff', drafter, draftWhen, onStep: (s) => s.step === k - 1 && settle() });
    const direct = await run({ temperature: 0, method: 'specdiff', drafter });
    expect(staged.tokens).toEqual(direct.tokens);
    expect(staged.stats.stepsBeforeDrafting).toBe(k);
    expect(staged.stats.draftedTokens).toBeGreaterThan(0);
    drafter.dispose();
  });

  // The drafter reads the context when drafting starts, in passes of up to streamedMaxRows tokens: 8 context tokens
  // in one pass, and, on a device with 3-row passes, in three.
  it.each([64, 3])('its first draft is the one a drafter reading the same context from the start makes (passes of %i rows)', async (rows) => {
    const device = rows === 64 ? dev : await createNodeDevice({ tuning: { streamedMaxRows: rows } });
    const [t, m] = rows === 64 ? [target, mdlm] : [await tinyGPT2(device, { vocab: V, seed: 21, scale: 0.5 }), await tinyMDLM(device, { vocab: V, seed: 22, scale: 0.5 })];
    const k = 5;
    const drafts = async (prompt: number[], draftWhen?: Promise<void>, settleAt?: () => void) => {
      const trace: number[][] = [];
      const drafter = new DiffusionDrafter(m);
      const r = await generate(t, null, { prompt, maxNewTokens: 12, stopAtEos: false, temperature: 0, method: 'specdiff', drafter, gamma: 3, draftWhen, onStep: (s) => {
        trace.push(s.drafted);
        if (s.step === k - 1) settleAt?.();
      } }).result();
      drafter.dispose();
      return { tokens: r.tokens, first: trace.find((d) => d.length > 0) };
    };
    let settle = () => {};
    const staged = await drafts(PROMPT, new Promise<void>((resolve) => (settle = resolve)), () => settle());
    const direct = await drafts([...PROMPT, ...staged.tokens.slice(0, k)]);
    expect(staged.first).toBeDefined();
    expect(staged.first).toEqual(direct.first);
  });

  it('a null draftWhen is no staged start: it drafts from the first step', async () => {
    const drafter = new DiffusionDrafter(mdlm);
    const r = await run({ temperature: 0, method: 'specdiff', drafter, draftWhen: null as never });
    expect(r.stats.stepsBeforeDrafting).toBe(0);
    expect(r.stats.draftedTokens).toBeGreaterThan(0);
    drafter.dispose();
  });

  it('without a drafter at the start, it adopts the one draftWhen brings; one arriving after the end is freed', async () => {
    const late = new DiffusionDrafter(mdlm);
    const adopted = await run({ temperature: 0, method: 'specdiff', disposeDrafter: true, draftWhen: async () => late, onStep: () => undefined });
    expect(adopted.stats.stepsBeforeDrafting).toBeGreaterThan(0);
    expect(adopted.stats.draftedTokens).toBeGreaterThan(0);

    let freed = 0;
    const tooLate = new DiffusionDrafter(mdlm);
    tooLate.dispose = () => void freed++;
    let arrive = () => {};
    const arriving = new Promise<DiffusionDrafter>((resolve) => (arrive = () => resolve(tooLate)));
    const ended = await run({ temperature: 0, method: 'specdiff', disposeDrafter: true, draftWhen: () => arriving, maxNewTokens: 3 });
    expect(ended.stats.draftedTokens).toBe(0);
    arrive();
    await arriving;
    await Promise.resolve();
    expect(freed).toBe(1);
  });

  describe('waitForDrafting', () => {
    const sampled = { temperature: 0.9, seed: 7, method: 'specdiff' as const };
    /** A sampled staged run whose drafting gets ready `ms` after the first token (its function is called). */
    const after = async (ms: number, waitForDrafting: boolean) => {
      const drafter = new DiffusionDrafter(mdlm);
      const draftWhen = () => new Promise<void>((resolve) => setTimeout(resolve, ms));
      const r = await run({ ...sampled, drafter, draftWhen, waitForDrafting });
      drafter.dispose();
      return r;
    };

    it('one plain step, then drafts: a seed gives the same tokens however long drafting takes to get ready', async () => {
      const soon = await after(0, true);
      const late = await after(300, true);
      expect(late.tokens).toEqual(soon.tokens);
      expect(late.stats.stepsBeforeDrafting).toBe(1);
      expect(soon.stats.stepsBeforeDrafting).toBe(1);
      expect(late.stats.draftedTokens).toBeGreaterThan(0);
    });

    it('the wait is counted apart from the decoding time', async () => {
      const late = await after(300, true);
      expect(late.stats.draftingWaitMs).toBeGreaterThanOrEqual(250);
      expect(late.stats.wallMs).toBeLessThan(late.stats.draftingWaitMs);
    });

    it('without it, plain steps go on while drafting gets ready (the control)', async () => {
      const late = await after(300, false);
      expect(late.stats.stepsBeforeDrafting).toBeGreaterThan(1);
      expect(late.stats.draftingWaitMs).toBe(0);
    });

    it('an abort during the wait ends the generation at once', async () => {
      const drafter = new DiffusionDrafter(mdlm);
      const stop = new AbortController();
      const t0 = performance.now();
      const r = await run({ ...sampled, drafter, draftWhen: () => new Promise(() => {}), waitForDrafting: true, signal: stop.signal, onStep: () => setTimeout(() => stop.abort(), 50) });
      expect(r.stats.stopReason).toBe('aborted');
      expect(r.tokens.length).toBe(1);
      expect(performance.now() - t0).toBeLessThan(5000);
      drafter.dispose();
    });
  });

  it('a rejection fails the generation with its error, and frees what it allocated', async () => {
    const drafter = new DiffusionDrafter(mdlm);
    const before = dev.memoryStats().liveBytes;
    const failure = new Error('the drafter\'s kernels did not compile');
    let fail = () => {};
    const draftWhen = new Promise<void>((_, reject) => (fail = () => reject(failure)));
    await expect(run({ method: 'specdiff', drafter, draftWhen, onStep: (s) => s.step === 1 && fail() })).rejects.toBe(failure);
    drafter.dispose();
    expect(dev.memoryStats().liveBytes).toBe(before);
  });
});
