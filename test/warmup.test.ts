/**
 * Warm-up: after Pipeline.warmup, generations with the same settings create no pipeline, with
 * every method, greedy and sampled, draft lengths growing to their longest, several drafts verified
 * as a token tree, and a context of several attention tiles; and with helper devices compiling beside the
 * main one.
 */
import { describe, expect, it } from 'vitest';
import { getDevice } from './helpers/device.js';
import { createNodeDevice } from '../src/node.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';
import { Pipeline, type WarmupOptions } from '../src/pipeline.js';
import type { Tokenizer } from '../src/models/tokenizer.js';
import { attentionTileKeys } from '../src/shaders/attention.js';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import { generate } from '../src/decode/generate.js';
import { resolveSampling } from '../src/decode/options.js';
import { reachableKernels } from '../src/decode/warmup.js';
import { Rng } from '../src/decode/rng.js';

const V = 16;
const HEAD = 16;
// A context of several attention tiles and more rows than the few-row matmuls take.
const POSITIONS = 4 * attentionTileKeys(HEAD) + 24;
const PROMPT = [1, 2, 3, 4, 5];

describe('Pipeline.warmup', async () => {
  const dev = await getDevice();
  const target = await tinyGPT2(dev, { vocab: V, seed: 31, positions: POSITIONS });
  const mdlm = await tinyMDLM(dev, { vocab: V, seed: 32, positions: 64 });
  // The target as its own drafter: every draft is accepted, so the draft length grows to its longest.
  const pipe = new Pipeline(dev, null as unknown as Tokenizer, target, mdlm, target);
  const maxNewTokens = POSITIONS - PROMPT.length;

  const settings: Array<[string, WarmupOptions]> = [
    ['ar, greedy', { method: 'ar' }],
    ['speculative, greedy, γ 2 growing to 11', { method: 'speculative', gamma: 2, maxGamma: 11 }],
    ['specdiff, greedy, default growing γ', { method: 'specdiff' }],
    ['ar, sampled', { method: 'ar', temperature: 0.9, topK: 8 }],
    ['speculative, sampled, γ 3', { method: 'speculative', temperature: 0.9, gamma: 3 }],
    ['specdiff, sampled, default γ, with a confidence cutoff', { method: 'specdiff', temperature: 0.9, topP: 0.9, confidenceCutoff: 0.2 }],
    ['specdiff, sampled, 4 drafts of γ 3 verified as a token tree', { method: 'specdiff', temperature: 0.9, drafts: 4, gamma: 3 }],
    ['specdiff, sampled, 4 drafts of γ 12 with branches of 2 (a tree of 19 rows)', { method: 'specdiff', temperature: 0.9, drafts: 4, gamma: 12, branchLength: 2 }],
  ];

  for (const [name, opts] of settings) {
    it(`${name}: a generation to the end of the context compiles nothing`, async () => {
      const w = await pipe.warmup({ ...opts, prompt: PROMPT, maxNewTokens });
      expect(w.kernels).toBeGreaterThan(0);
      const before = dev.pipelineCount;
      const r = await pipe.generate(PROMPT, { ...opts, maxNewTokens }).result();
      expect(r.stats.stopReason === 'context' || r.stats.generatedTokens === maxNewTokens || r.stats.stopReason === 'eos').toBe(true);
      expect(r.stats.promptTokens + r.stats.generatedTokens).toBeGreaterThan(3 * attentionTileKeys(HEAD));
      expect(dev.pipelineCount - before).toBe(0);
      expect(r.stats.pipelinesCompiled).toBe(0);
      expect(r.stats.compileMs).toBe(0);
      if (opts.method === 'speculative' && !opts.temperature) expect(r.stats.meanDrafted).toBeGreaterThan(opts.gamma!);
    }, 240_000);
  }

  it('a drafter reading a window of the context: the kernels of a draft over its whole window are reachable from a shorter prompt', async () => {
    const drafter = new DiffusionDrafter(mdlm, { attention: 'bidirectional' });
    const sampling = resolveSampling({ temperature: 0.9 });
    const { gamma } = drafter.defaults(sampling);
    const reachable = new Set((await reachableKernels(target, drafter, { sampling, maxGamma: gamma, withConfidence: false, promptTokens: PROMPT.length, maxNewTokens: 24 })).map((k) => k.key));
    const fullWindow = dev.collectKernels(() => drafter.draft(new Array<number>(drafter.window + PROMPT.length).fill(1), gamma, sampling, new Rng(0)));
    expect(PROMPT.length).toBeLessThan(drafter.window);
    for (const k of fullWindow) expect(reachable.has(k.key), k.key).toBe(true);
    drafter.dispose();
  });

  it('the search records its passes with the event loop running between them, so a generation beside it keeps stepping', async () => {
    const drafter = new DiffusionDrafter(mdlm);
    const settings = { sampling: resolveSampling({ temperature: 0.9 }), maxGamma: 4, withConfidence: false, promptTokens: PROMPT.length, maxNewTokens: 24 };
    const search = async (sliceMs: number) => {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 0);
      const kernels = await reachableKernels(target, drafter, { ...settings, sliceMs });
      clearInterval(timer);
      return { ticks, keys: kernels.map((k) => k.key) };
    };
    const sliced = await search(0);
    const whole = await search(Infinity); // the control: one stretch, no timer runs
    expect([sliced.ticks > 0, whole.ticks]).toEqual([true, 0]);
    expect(sliced.keys).toEqual(whole.keys);
    drafter.dispose();
  });

  // reachableKernels configures the drafter it is given as a generation would: a draft head drafts by default,
  // greedy (growing drafts, the head on its leading positions, the backbone past them) and sampled alike.
  for (const temperature of [0, 0.9]) {
    it(`a drafter with a draft head, given unconfigured to reachableKernels, temperature ${temperature}: its generation compiles nothing`, async () => {
      const headed = await tinyMDLM(dev, { vocab: V, seed: 33, positions: 64, draftHead: true });
      const drafter = new DiffusionDrafter(headed);
      const sampling = resolveSampling({ temperature });
      const maxGamma = drafter.defaults(sampling).maxGamma;
      await dev.warmup(await reachableKernels(target, drafter, { sampling, maxGamma, withConfidence: false, promptTokens: PROMPT.length, maxNewTokens: 40 }));
      const before = dev.pipelineCount;
      const r = await generate(target, null, { prompt: PROMPT, method: 'specdiff', drafter, temperature, maxNewTokens: 40, stopAtEos: false }).result();
      expect(dev.pipelineCount - before).toBe(0);
      expect(r.stats.draftHeadSteps, 'the head drafted').toBeGreaterThan(0);
      drafter.dispose();
      headed.dispose();
    }, 240_000);
  }
});


describe('warm-up on helper devices (CreateDeviceOptions.warmupDevices)', async () => {
  // A threshold of 0 takes every first run for a compilation, so the helper always starts.
  const dev = await createNodeDevice({ warmupDevices: 2, tuning: { warmupCompileMs: 0 } });
  const target = await tinyGPT2(dev, { vocab: V, seed: 31, positions: 64 });
  const mdlm = await tinyMDLM(dev, { vocab: V, seed: 32, positions: 64 });
  const pipe = new Pipeline(dev, null as unknown as Tokenizer, target, mdlm, target);
  const opts: WarmupOptions = { method: 'specdiff', temperature: 0.9, topK: 8, maxNewTokens: 24, seed: 5 };

  it('leaves every kernel of the generation ready on the main device, and the generation draws the same tokens as on a device alone', async () => {
    const w = await pipe.warmup({ ...opts, prompt: PROMPT });
    expect(w.helperDevices).toBe(1);
    expect(w.launched).toBe(w.kernels);
    const before = dev.pipelineCount;
    const r = await pipe.generate(PROMPT, opts).result();
    expect(dev.pipelineCount - before).toBe(0);
    expect(r.stats.compileMs).toBe(0);

    const alone = await getDevice();
    const [t2, m2] = [await tinyGPT2(alone, { vocab: V, seed: 31, positions: 64 }), await tinyMDLM(alone, { vocab: V, seed: 32, positions: 64 })];
    const r2 = await new Pipeline(alone, null as unknown as Tokenizer, t2, m2, t2).generate(PROMPT, opts).result();
    expect(r.tokens).toEqual(r2.tokens);
    t2.dispose();
    m2.dispose();
  }, 240_000);
});

describe('Pipeline.warmupStaged (a first token before the drafter\'s kernels are ready)', async () => {
  // Passes of up to 16 rows, so that the drafter (block-causal, with a draft head, as the bundled one) catches up on
  // the context in several passes, of more rows than its drafts of 2 take after a short prompt.
  const dev = await createNodeDevice({ tuning: { streamedMaxRows: 16 } });
  const target = await tinyGPT2(dev, { vocab: V, seed: 31, positions: 64 });
  const mdlm = await tinyMDLM(dev, { vocab: V, seed: 32, positions: 64, draftHead: true, shiftLogits: true });
  const pipe = new Pipeline(dev, null as unknown as Tokenizer, target, mdlm, target);
  const opts: WarmupOptions = { method: 'specdiff', temperature: 0.9, gamma: 2, maxNewTokens: 40 };

  it('plain steps need only the first stage; drafting from any step after the second compiles nothing', async () => {
    const staged = await pipe.warmupStaged({ ...opts, prompt: PROMPT });
    expect(staged.plain.kernels).toBeGreaterThan(0);
    const before = dev.pipelineCount;
    const plain = await pipe.generate(PROMPT, { ...opts, draftWhen: new Promise(() => {}) }).result();
    expect(plain.stats.stepsBeforeDrafting).toBe(plain.stats.targetPasses);
    const second = await staged.drafting();
    expect(second.kernels).toBeGreaterThan(0);
    for (const k of [1, 20]) {
      let settle = () => {};
      const draftWhen = new Promise<void>((resolve) => (settle = resolve));
      const r = await pipe.generate(PROMPT, { ...opts, draftWhen, onStep: (s) => s.step === k - 1 && settle() }).result();
      expect(r.stats.stepsBeforeDrafting).toBe(k);
      expect(r.stats.draftedTokens).toBeGreaterThan(0);
    }
    expect(dev.pipelineCount - before).toBe(0);
    await staged.stop();
  }, 240_000);

  it('sampled, waiting for drafting: the second stage compiles only what drafting after one plain step reaches, and the generation compiles nothing', async () => {
    /** A staged start on a fresh device; `generate`: then a generation with the same options. */
    const stagedStart = async (waitForDrafting: boolean, generate: boolean) => {
      const fresh = await createNodeDevice({ tuning: { streamedMaxRows: 16 } });
      const [t, m] = [await tinyGPT2(fresh, { vocab: V, seed: 31, positions: 64 }), await tinyMDLM(fresh, { vocab: V, seed: 32, positions: 64, draftHead: true, shiftLogits: true })];
      const p = new Pipeline(fresh, null as unknown as Tokenizer, t, m, t);
      const o = { ...opts, waitForDrafting };
      const staged = await p.warmupStaged({ ...o, prompt: PROMPT });
      const second = await staged.drafting();
      const before = fresh.pipelineCount;
      const r = generate ? await p.generate(PROMPT, { ...o, draftWhen: staged.drafting }).result() : null;
      const compiled = fresh.pipelineCount - before;
      await staged.stop();
      p.dispose();
      fresh.destroy();
      return { kernels: second.kernels, r, compiled };
    };
    const waiting = await stagedStart(true, true);
    expect(waiting.r!.stats.stepsBeforeDrafting).toBe(1);
    expect(waiting.r!.stats.draftedTokens).toBeGreaterThan(0);
    expect(waiting.compiled).toBe(0);
    // Taking plain steps meanwhile, the drafter may catch up on more rows at once: more kernels.
    const stepping = await stagedStart(false, false);
    expect(waiting.kernels).toBeLessThan(stepping.kernels);
  }, 240_000);
});

describe('Pipeline.warmupStaged with helper devices', async () => {
  const dev = await createNodeDevice({ warmupDevices: 2, tuning: { warmupCompileMs: 0 } });
  const target = await tinyGPT2(dev, { vocab: V, seed: 31, positions: 64 });
  const mdlm = await tinyMDLM(dev, { vocab: V, seed: 32, positions: 64 });
  const pipe = new Pipeline(dev, null as unknown as Tokenizer, target, mdlm, target);
  const opts: WarmupOptions = { method: 'specdiff', maxNewTokens: 24 };

  it('helpers run the second stage\'s first runs and the main device then has every kernel ready', async () => {
    const staged = await pipe.warmupStaged({ ...opts, prompt: PROMPT });
    const second = await staged.drafting();
    expect(second.helperDevices).toBeGreaterThan(0);
    expect(second.launched).toBe(second.kernels);
    const before = dev.pipelineCount;
    // The second stage's promise, already settled: drafting from the first step.
    const r = await pipe.generate(PROMPT, { ...opts, draftWhen: staged.drafting() }).result();
    expect(r.stats.stepsBeforeDrafting).toBe(0);
    expect(dev.pipelineCount - before).toBe(0);
    await staged.stop();
  }, 240_000);

  it('stop: no more of the second stage starts, and a generation after it still runs (compiling what it lacks)', async () => {
    const fresh = await createNodeDevice({ warmupDevices: 2, tuning: { warmupCompileMs: 0 } });
    const [t, m] = [await tinyGPT2(fresh, { vocab: V, seed: 31, positions: 64 }), await tinyMDLM(fresh, { vocab: V, seed: 32, positions: 64 })];
    const p = new Pipeline(fresh, null as unknown as Tokenizer, t, m, t);
    const staged = await p.warmupStaged({ ...opts, prompt: PROMPT });
    await staged.stop();
    const second = await staged.drafting();
    expect(second.launched).toBeLessThan(second.kernels);
    const r = await p.generate(PROMPT, opts).result();
    expect(r.stats.generatedTokens).toBe(24);
    p.dispose();
    fresh.destroy();
  }, 240_000);
});
