import { describe, expect, it } from 'vitest';
import { generate } from '../src/decode/generate.js';
import { ARDrafter } from '../src/decode/ar-drafter.js';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import { getDevice } from './helpers/device.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';

describe('generate rejects bad input with a clear error', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: 16, seed: 1, positions: 32 });
  const mdlm = await tinyMDLM(dev, { vocab: 16, seed: 2, positions: 32 });

  it('drafter and target vocabularies that differ', async () => {
    const other = await tinyGPT2(dev, { vocab: 17, seed: 3 });
    expect(() => generate(target, null, { prompt: [1], method: 'speculative', drafter: new ARDrafter(other) })).toThrow(/proposes from 17 tokens but the target's vocabulary has 16/);
    const otherMdlm = await tinyMDLM(dev, { vocab: 20, seed: 4 });
    expect(() => generate(target, null, { prompt: [1], method: 'specdiff', drafter: new DiffusionDrafter(otherMdlm) })).toThrow(/vocabulary/);
  });

  it('a prompt that fills the context', () => {
    expect(() => generate(target, null, { prompt: new Array(32).fill(1) })).toThrow(/prompt has 32 tokens; the model's context is 32/);
  });

  it('prompt tokens outside the vocabulary', () => {
    expect(() => generate(target, null, { prompt: [1, 16] })).toThrow(/outside the vocabulary \[0, 16\)/);
  });

  it.each([
    [{ temperature: -1 }, /temperature/],
    [{ temperature: NaN }, /temperature/],
    [{ topK: 1.5 }, /topK/],
    [{ topK: -1 }, /topK/],
    [{ topP: 0 }, /topP/],
    [{ topP: 1.5 }, /topP/],
    [{ maxNewTokens: 0 }, /maxNewTokens/],
    [{ seed: 0.5 }, /seed/],
  ])('sampling option %o', (o, msg) => {
    expect(() => generate(target, null, { prompt: [1], ...o })).toThrow(msg);
  });

  it.each([
    [{ gamma: 0 }, /gamma/],
    [{ gamma: 40 }, /gamma/],
    [{ gamma: 6, maxGamma: 5 }, /maxGamma must be an integer in \[6, \d+\], got 5/],
    [{ maxGamma: 400 }, /maxGamma/],
    [{ steps: 0 }, /steps/],
    [{ window: 0 }, /window/],
    [{ window: 40 }, /window/],
    [{ schedule: 'sideways' as never }, /schedule/],
    [{ draftAttention: 'sideways' as never }, /draft attention must be 'bidirectional' or 'block-causal', got sideways/],
    [{ confidenceCutoff: -0.1 }, /confidenceCutoff must be in \[0, 1\] \(0 = off\), got -0.1/],
    [{ confidenceCutoff: 1.5 }, /confidenceCutoff/],
    [{ confidenceCutoff: NaN }, /confidenceCutoff/],
    [{ verification: 'lenient' as never }, /verification must be one of block, token, got lenient/],
  ])('speculation option %o', (o, msg) => {
    expect(() => generate(target, null, { prompt: [1], method: 'specdiff', drafter: new DiffusionDrafter(mdlm), ...o })).toThrow(msg);
  });

  it('a speculative method without a drafter, or with the wrong kind', () => {
    expect(() => generate(target, null, { prompt: [1], method: 'specdiff' })).toThrow(/needs a drafter/);
    expect(() => generate(target, null, { prompt: [1], method: 'speculative', drafter: new DiffusionDrafter(mdlm) })).toThrow(/does not match/);
  });

  it('stops at the context instead of failing when generation reaches it', async () => {
    const r = await generate(target, null, { prompt: new Array(28).fill(1), maxNewTokens: 50, temperature: 0, stopAtEos: false }).result();
    expect(r.stats.stopReason).toBe('context');
    // 27 prompt tokens + 4 generated fill the 32 positions; the last position predicts one more.
    expect(r.tokens.length).toBe(5);
  });

  it('an aborted signal ends generation early with stopReason aborted', async () => {
    const ctl = new AbortController();
    ctl.abort();
    const r = await generate(target, null, { prompt: [1], maxNewTokens: 10, signal: ctl.signal }).result();
    expect(r.stats.stopReason).toBe('aborted');
    expect(r.tokens.length).toBe(0);
  });
});

describe('default draft lengths', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: 16, seed: 1, positions: 32 });
  const mdlm = await tinyMDLM(dev, { vocab: 16, seed: 2, positions: 32 });
  const ar = await tinyGPT2(dev, { vocab: 16, seed: 3, positions: 32 });
  const gammaOf = async (method: 'specdiff' | 'speculative', temperature: number) => {
    const drafter = method === 'specdiff' ? new DiffusionDrafter(mdlm) : new ARDrafter(ar);
    const r = await generate(target, null, { prompt: [1, 2], method, drafter, temperature, maxNewTokens: 8, stopAtEos: false, disposeDrafter: true }).result();
    return [r.stats.gamma, r.stats.maxGamma];
  };

  it('SpecDiff drafts 6 tokens growing to 31 greedy, and a fixed 6 when sampling (fewer sampled drafts survive)', async () => {
    expect(await gammaOf('specdiff', 0)).toEqual([6, 31]);
    expect(await gammaOf('specdiff', 0.8)).toEqual([6, 6]);
  });

  it('sampled drafts are verified by blocks unless token by token is asked for; greedy runs and token trees report no rule', async () => {
    const rule = async (o: { temperature: number; verification?: 'block' | 'token'; drafts?: number }) => {
      const drafter = new DiffusionDrafter(mdlm);
      const r = await generate(target, null, { prompt: [1, 2], method: 'specdiff', drafter, maxNewTokens: 6, stopAtEos: false, disposeDrafter: true, ...o }).result();
      return r.stats.verification;
    };
    expect(await rule({ temperature: 0.8 })).toBe('block');
    expect(await rule({ temperature: 0.8, verification: 'token' })).toBe('token');
    expect(await rule({ temperature: 0 })).toBeUndefined();
    expect(await rule({ temperature: 0.8, drafts: 2 })).toBeUndefined();
  });

  it('speculative decoding drafts a fixed 4 tokens at any temperature', async () => {
    expect(await gammaOf('speculative', 0)).toEqual([4, 4]);
    expect(await gammaOf('speculative', 1)).toEqual([4, 4]);
  });

  it('a given gamma stays fixed unless maxGamma is given too', async () => {
    const run = (o: { gamma?: number; maxGamma?: number }) =>
      generate(target, null, { prompt: [1, 2], method: 'specdiff', drafter: new DiffusionDrafter(mdlm), temperature: 0, maxNewTokens: 4, stopAtEos: false, disposeDrafter: true, ...o }).result();
    expect((await run({ gamma: 6 })).stats.maxGamma).toBe(6);
    expect((await run({ gamma: 6, maxGamma: 13 })).stats.maxGamma).toBe(13);
  });
});
