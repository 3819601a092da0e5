import { describe, expect, it } from 'vitest';
import { generate } from '../src/decode/generate.js';
import { ARDrafter } from '../src/decode/ar-drafter.js';
import { DiffusionDrafter } from '../src/decode/diffusion-drafter.js';
import { getDevice } from './helpers/device.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';

const prompts = [[1], [5, 9, 2], [3, 3, 3, 3, 7, 11, 0, 2, 19, 4]];

describe('greedy speculative decoding reproduces AR greedy token for token', () => {
  it('with an AR drafter (an unrelated model, and the target itself), over prompts and γ', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const others = [await tinyGPT2(dev, { vocab: 24, seed: 2, scale: 0.5 }), target];
    for (const prompt of prompts) {
      const ar = await generate(target, null, { prompt, maxNewTokens: 20, temperature: 0, stopAtEos: false }).result();
      for (const model of others) {
        for (const gamma of [1, 3, 8]) {
          const spec = await generate(target, null, { prompt, maxNewTokens: 20, temperature: 0, method: 'speculative', drafter: new ARDrafter(model), gamma, stopAtEos: false }).result();
          expect(spec.tokens, `prompt ${prompt} γ=${gamma}`).toEqual(ar.tokens);
          if (model === target) expect(spec.stats.acceptanceRate).toBe(1);
        }
      }
    }
  }, 400_000);

  it.each([false, true])('with a diffusion drafter (shifted logits: %s), over prompts, γ, T, W and both schedules', async (shiftLogits) => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5, shiftLogits });
    for (const prompt of prompts) {
      const ar = await generate(target, null, { prompt, maxNewTokens: 12, temperature: 0, stopAtEos: false }).result();
      for (const [gamma, steps, window] of [[4, 1, 64], [6, 3, 2], [8, 8, 5]] as const) {
        for (const schedule of ['left-to-right', 'random'] as const) {
          const drafter = new DiffusionDrafter(mdlm);
          const spec = await generate(target, null, { prompt, maxNewTokens: 12, temperature: 0, method: 'specdiff', drafter, gamma, steps, window: Math.min(window, 64 - gamma), schedule, stopAtEos: false }).result();
          expect(spec.tokens, `prompt ${prompt} γ=${gamma} T=${steps} ${schedule}`).toEqual(ar.tokens);
          expect(spec.stats.drafterPasses).toBeLessThanOrEqual(spec.stats.targetPasses * Math.min(steps, gamma));
        }
      }
    }
  }, 400_000);

  it.each([false, true])('with a diffusion drafter reading the target\'s hidden states (shifted logits: %s), block-causal and bidirectional, past its model length', async (shiftLogits) => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5, positions: 24, targetFeatures: target.config.nEmbd, shiftLogits });
    for (const prompt of prompts) {
      const ar = await generate(target, null, { prompt, maxNewTokens: 40, temperature: 0, stopAtEos: false }).result();
      for (const [gamma, steps, attention] of [[4, 1, 'block-causal'], [6, 3, 'block-causal'], [5, 2, 'bidirectional']] as const) {
        const drafter = new DiffusionDrafter(mdlm, { attention, window: 8 });
        const spec = await generate(target, null, { prompt, maxNewTokens: 40, temperature: 0, method: 'specdiff', drafter, gamma, steps, stopAtEos: false }).result();
        expect(spec.tokens, `prompt ${prompt} γ=${gamma} T=${steps} ${attention}`).toEqual(ar.tokens);
        drafter.dispose();
      }
    }
  }, 400_000);

  it.each([false, true])('with a block-causal diffusion drafter (shifted logits: %s), over prompts, γ, T and both schedules, past its model length', async (shiftLogits) => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5, positions: 24, shiftLogits });
    for (const prompt of prompts) {
      // 40 tokens: the drafter (24 positions) restarts its context at least once.
      const ar = await generate(target, null, { prompt, maxNewTokens: 40, temperature: 0, stopAtEos: false }).result();
      for (const [gamma, steps] of [[4, 1], [6, 3], [8, 8]] as const) {
        for (const schedule of ['left-to-right', 'random'] as const) {
          const drafter = new DiffusionDrafter(mdlm, { attention: 'block-causal' });
          const spec = await generate(target, null, { prompt, maxNewTokens: 40, temperature: 0, method: 'specdiff', drafter, gamma, steps, schedule, stopAtEos: false }).result();
          expect(spec.tokens, `prompt ${prompt} γ=${gamma} T=${steps} ${schedule}`).toEqual(ar.tokens);
          expect(spec.stats.drafterPasses).toBeLessThanOrEqual(spec.stats.targetPasses * Math.min(steps, gamma));
          drafter.dispose();
        }
      }
    }
  }, 400_000);

  it('with a diffusion drafter drafting through its draft head (asked for at greedy), sequential and parallel, with and without the target state, over shifted logits and the AR drafter\'s layout, past its model length', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    for (const [draftHeadFeatures, shiftLogits, arLayout] of [[0, false, false], [target.config.nEmbd, false, false], [0, true, false], [0, true, true]] as const) {
      const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5, positions: 24, draftHead: true, draftHeadFeatures, shiftLogits, arLayout });
      for (const prompt of prompts) {
        const ar = await generate(target, null, { prompt, maxNewTokens: 40, temperature: 0, stopAtEos: false }).result();
        for (const [headDraw, headStart] of [['sequential', 0], ['sequential', 1], ['parallel', 0], ['parallel', 1]] as const) {
          const drafter = new DiffusionDrafter(mdlm, { attention: 'block-causal', draftHead: true, headDraw, headPositions: 3, headStart });
          const spec = await generate(target, null, { prompt, maxNewTokens: 40, temperature: 0, method: 'specdiff', drafter, gamma: 4, stopAtEos: false }).result();
          expect(spec.tokens, `prompt ${prompt}, ${headDraw} from ${headStart}, head features ${draftHeadFeatures}, shifted ${shiftLogits}, AR layout ${arLayout}`).toEqual(ar.tokens);
          expect(spec.stats.draftHeadSteps, 'the head drafted').toBeGreaterThan(0);
          drafter.dispose();
        }
      }
      mdlm.dispose();
    }
  }, 400_000);
});

describe('an adaptive draft length', () => {
  it('leaves greedy output unchanged for both drafters', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const drafters = [new ARDrafter(await tinyGPT2(dev, { vocab: 24, seed: 2, scale: 0.5 })), new DiffusionDrafter(await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5 }), { attention: 'block-causal' })];
    for (const prompt of prompts) {
      const ar = await generate(target, null, { prompt, maxNewTokens: 30, temperature: 0, stopAtEos: false }).result();
      for (const drafter of drafters) {
        const method = drafter instanceof DiffusionDrafter ? 'specdiff' : 'speculative';
        const spec = await generate(target, null, { prompt, maxNewTokens: 30, temperature: 0, method, drafter, gamma: 2, maxGamma: 11, stopAtEos: false }).result();
        expect(spec.tokens, `${method} prompt ${prompt}`).toEqual(ar.tokens);
        expect(spec.stats.maxGamma).toBe(11);
        drafter.dispose();
      }
    }
  }, 400_000);

  it('drafts 2γ + 1 after a draft accepted whole and γ again after a rejection', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    // The target drafting for itself is always right; its weights at a fifth of their scale, sometimes.
    for (const model of [target, await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.1 })]) {
      const maxNewTokens = 40;
      const gen = generate(target, null, { prompt: [1], maxNewTokens, temperature: 0, method: 'speculative', drafter: new ARDrafter(model), gamma: 2, maxGamma: 11, stopAtEos: false });
      // Each chunk is one iteration, whose drafted flags count the drafted tokens accepted.
      const lengths: number[] = [];
      let length = 2;
      let made = 0;
      for await (const chunk of gen) {
        if (!chunk.tokens.length) continue;
        const drafted = Math.min(length, maxNewTokens - made - 1);
        lengths.push(drafted);
        length = chunk.drafted.filter(Boolean).length < drafted ? 2 : Math.min(11, 2 * length + 1);
        made += chunk.tokens.length;
      }
      const { stats } = await gen.result();
      expect(stats.draftedTokens).toBe(lengths.reduce((a, b) => a + b, 0));
      if (model === target) expect(lengths.slice(0, 4)).toEqual([2, 5, 11, 11]);
      else expect(lengths.some((g, i) => g === 11 && lengths[i + 1] === 2), `lengths ${lengths}`).toBe(true);
    }
  }, 400_000);
});

describe('a confidence cutoff', () => {
  it('leaves greedy output unchanged for both drafters, verifying fewer drafted tokens (one per pass at cutoff 1)', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const arModel = await tinyGPT2(dev, { vocab: 24, seed: 2, scale: 0.5 });
    // Small weights: the drafters must be unsure of some tokens for the cutoff to cut.
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.05 });
    const gamma = 5;
    for (const prompt of prompts) {
      const ar = await generate(target, null, { prompt, maxNewTokens: 16, temperature: 0, stopAtEos: false }).result();
      for (const method of ['speculative', 'specdiff'] as const) {
        const drafted: number[] = [];
        for (const confidenceCutoff of [0, 0.5, 1]) {
          const drafter = method === 'speculative' ? new ARDrafter(arModel) : new DiffusionDrafter(mdlm, { attention: 'block-causal' });
          const r = await generate(target, null, { prompt, maxNewTokens: 16, temperature: 0, method, drafter, gamma, confidenceCutoff, stopAtEos: false }).result();
          drafter.dispose();
          expect(r.tokens, `${method} cutoff ${confidenceCutoff} prompt ${prompt}`).toEqual(ar.tokens);
          // One drafted token verified per pass; the last pass may have had no room to draft.
          if (confidenceCutoff === 1) expect(r.stats.targetPasses - r.stats.draftedTokens).toBeOneOf([0, 1]);
          drafted.push(r.stats.draftedTokens / r.stats.targetPasses);
        }
        expect(drafted[0]).toBeGreaterThan(drafted[2]);
      }
    }
  }, 400_000);
});

describe('cache rollback', () => {
  it('an AR drafter that kept its cache across verifications drafts what a fresh one drafts', async () => {
    const { readTensors } = await import('../src/tensor/tensor.js');
    const { Rng } = await import('../src/decode/rng.js');
    const dev = await getDevice();
    const model = await tinyGPT2(dev, { vocab: 24, seed: 2, scale: 0.5 });
    const kept = new ARDrafter(model);
    const greedy = { temperature: 0, topK: 0, topP: 1 };
    const ctx = [1, 2, 3];
    for (let step = 0; step < 6; step++) {
      const a = kept.draft(ctx, 4, greedy, new Rng(0));
      const fresh = new ARDrafter(model);
      const b = fresh.draft(ctx, 4, greedy, new Rng(0));
      const [ta, tb] = await readTensors([a.tokens, b.tokens]);
      expect(Array.from(ta), `step ${step}`).toEqual(Array.from(tb));
      fresh.dispose();
      // Pretend the target accepted `step % 3` tokens and then chose its own token 5.
      const accepted = step % 3;
      kept.afterVerify(Array.from(ta));
      ctx.push(...Array.from(ta).slice(0, accepted), 5);
    }
    kept.dispose();
  });

  it('a drafter disposed and used again drafts what a fresh one drafts (AR, block-causal MDLM)', async () => {
    const { readTensors } = await import('../src/tensor/tensor.js');
    const { Rng } = await import('../src/decode/rng.js');
    const dev = await getDevice();
    const greedy = { temperature: 0, topK: 0, topP: 1 };
    const ar = await tinyGPT2(dev, { vocab: 24, seed: 2, scale: 0.5 });
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5 });
    for (const fresh of [() => new ARDrafter(ar), () => new DiffusionDrafter(mdlm, { attention: 'block-causal' })]) {
      const reused = fresh();
      reused.draft([1, 2, 3, 7], 3, greedy, new Rng(0)).tokens.dispose();
      reused.dispose();
      const other = fresh();
      const [a, b] = await readTensors([reused.draft([1, 2, 3], 4, greedy, new Rng(0)).tokens, other.draft([1, 2, 3], 4, greedy, new Rng(0)).tokens]);
      expect(Array.from(a), reused.kind).toEqual(Array.from(b));
      reused.dispose();
      other.dispose();
    }
  });

  it('a block-causal diffusion drafter that kept its context cache drafts what a fresh one drafts', async () => {
    const { readTensors } = await import('../src/tensor/tensor.js');
    const { Rng } = await import('../src/decode/rng.js');
    const dev = await getDevice();
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5, positions: 14 });
    const kept = new DiffusionDrafter(mdlm, { attention: 'block-causal' });
    const greedy = { temperature: 0, topK: 0, topP: 1 };
    const ctx = [1, 2, 3];
    let [restarts, seen, added] = [0, 0, ctx.length];
    for (let step = 0; step < 20; step++) {
      const a = kept.draft(ctx, 4, greedy, new Rng(0));
      if (kept.contextLength < seen + added) {
        restarts++;
        expect(seen + added + 4, `step ${step}: restarted with room left`).toBeGreaterThan(14);
      }
      seen = kept.contextLength;
      const fresh = new DiffusionDrafter(mdlm, { attention: 'block-causal' });
      const b = fresh.draft(ctx.slice(-kept.contextLength), 4, greedy, new Rng(0));
      const [ta, tb] = await readTensors([a.tokens, b.tokens]);
      expect(Array.from(ta), `step ${step}`).toEqual(Array.from(tb));
      fresh.dispose();
      const accepted = step % 3;
      kept.afterVerify();
      // The target accepted `step % 3` tokens and chose its own token 5; every tenth step a new prompt.
      // Past 10 context tokens (14 positions − γ) the drafter restarts on the most recent ones.
      const before = ctx.length;
      if (step % 10 === 9) ctx.splice(0, ctx.length, 7, 8);
      else ctx.push(...Array.from(ta).slice(0, accepted), 5);
      [seen, added] = step % 10 === 9 ? [0, ctx.length] : [seen, ctx.length - before];
    }
    expect(restarts).toBeGreaterThan(0);
    kept.dispose();
  });

  it('a drafter that read the prompt in the prefill drafts what a fresh one drafts (AR, block-causal MDLM, past its length)', async () => {
    const { readTensors } = await import('../src/tensor/tensor.js');
    const { Rng } = await import('../src/decode/rng.js');
    const dev = await getDevice();
    const model = await tinyGPT2(dev, { vocab: 24, seed: 2, scale: 0.5, positions: 16 });
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5, positions: 14 });
    const greedy = { temperature: 0, topK: 0, topP: 1 };
    const make = [() => new ARDrafter(model), () => new DiffusionDrafter(mdlm, { attention: 'block-causal' })];
    // 13 and 15 tokens: with γ = 4 the MDLM (14 positions) restarts on recent context; 17 overflows the AR drafter.
    for (const n of [1, 2, 5, 13, 15, 17]) {
      const ctx = Array.from({ length: n }, (_, i) => (i * 7 + 3) % 23);
      for (const drafter of make) {
        const [prefilled, fresh] = [drafter(), drafter()];
        prefilled.prefill(ctx);
        const [a, b] = [prefilled.draft(ctx, 4, greedy, new Rng(0)), fresh.draft(ctx, 4, greedy, new Rng(0))];
        const [ta, tb] = await readTensors([a.tokens, b.tokens]);
        expect(Array.from(ta), `${prefilled.kind} drafter, ${n} prompt tokens`).toEqual(Array.from(tb));
        prefilled.dispose();
        fresh.dispose();
      }
    }
  });

  it("after the prefill, a drafter's first draft runs only the prompt's last token, as for a one-token prompt", async () => {
    const { readTensors } = await import('../src/tensor/tensor.js');
    const { Rng } = await import('../src/decode/rng.js');
    const dev = await getDevice();
    const model = await tinyGPT2(dev, { vocab: 24, seed: 2, scale: 0.5 });
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5 });
    const greedy = { temperature: 0, topK: 0, topP: 1 };
    const make = [() => new ARDrafter(model), () => new DiffusionDrafter(mdlm, { attention: 'block-causal' })];
    // 20 prompt tokens + 4 drafted rows: more than one 16-row matmul chunk, so a draft that fed the whole prompt dispatches more.
    const ctx = Array.from({ length: 20 }, (_, i) => (i * 5 + 1) % 23);
    for (const drafter of make) {
      const dispatches = async (d: ReturnType<(typeof make)[number]>, context: number[]) => {
        const before = dev.dispatchCount;
        const { tokens } = d.draft(context, 4, greedy, new Rng(0));
        await readTensors([tokens]);
        return dev.dispatchCount - before;
      };
      const [prefilled, oneToken] = [drafter(), drafter()];
      const before = dev.dispatchCount;
      prefilled.prefill(ctx);
      expect(dev.dispatchCount, `${prefilled.kind} prefill records the prompt's pass`).toBeGreaterThan(before);
      expect(await dispatches(prefilled, ctx), `${prefilled.kind} drafter`).toBe(await dispatches(oneToken, ctx.slice(-1)));
      prefilled.dispose();
      oneToken.dispose();
    }
  });

  it('the target cache truncated after a rejected verification gives the same logits as one never extended', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const a = target.createCache();
    const b = target.createCache();
    await target.forward([1, 2, 3], a).read();
    await target.forward([4, 5, 6, 7, 8], a, 5).read(); // verify γ = 4 …
    a.truncate(4); // … 0 drafts accepted: keep [1, 2, 3, 4]
    await target.forward([1, 2, 3, 4], b).read();
    const [la, lb] = [await target.forward([9], a).read(), await target.forward([9], b).read()];
    expect(Array.from(la)).toEqual(Array.from(lb));
  });
});

describe('memory', () => {
  it('a second generation of the same shape creates no GPU buffer and leaves none live', async () => {
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const mdlm = await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5 });
    const run = () => generate(target, null, { prompt: [1, 2], maxNewTokens: 12, temperature: 1, seed: 3, method: 'specdiff', drafter: new DiffusionDrafter(mdlm), gamma: 4, steps: 2 }).result();
    await run();
    const before = dev.memoryStats();
    await run();
    const after = dev.memoryStats();
    expect(after.created).toBe(before.created);
    expect(after.liveBytes).toBe(before.liveBytes);
  });

  it('Pipeline.generate releases the drafter it makes (and its caches) when the generation ends', async () => {
    const { Pipeline } = await import('../src/pipeline.js');
    const { Tokenizer } = await import('../src/models/tokenizer.js');
    const dev = await getDevice();
    const target = await tinyGPT2(dev, { vocab: 24, seed: 1, scale: 0.5 });
    const vocab = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [String.fromCharCode(97 + i), i]));
    const pipe = new Pipeline(dev, Tokenizer.fromVocabMerges(vocab, ''), target, await tinyMDLM(dev, { vocab: 24, seed: 3, scale: 0.5 }), await tinyGPT2(dev, { vocab: 24, seed: 2, scale: 0.5 }));
    const runs = [
      () => pipe.generate([1, 2], { method: 'speculative', maxNewTokens: 8, stopAtEos: false }).result(),
      () => pipe.generate([1, 2], { method: 'specdiff', draftAttention: 'block-causal', maxNewTokens: 8, stopAtEos: false }).result(),
    ];
    for (const run of runs) await run();
    const before = dev.memoryStats().liveBytes;
    for (const run of runs) await run();
    expect(dev.memoryStats().liveBytes).toBe(before);
    pipe.dispose();
  });
});
