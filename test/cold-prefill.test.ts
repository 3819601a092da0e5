/**
 * A cold prompt read a token per pass (decode/prefill.ts): where the restored first runs show that a one-pass
 * prefill would run a kernel never run on this adapter, the target reads the prompt with the one-token steps'
 * kernels; the tokens are the same, and a staged start's first stage compiles exactly what the generation runs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createNodeDevice } from '../src/node.js';
import type { Device } from '../src/tensor/device.js';
import type { Tokenizer } from '../src/models/tokenizer.js';
import { tinyGPT2, tinyMDLM } from './helpers/tiny-models.js';
import { Pipeline } from '../src/pipeline.js';

const V = 16;
// 9 tokens: a one-pass prefill of 8 rows runs matmul kernels one-token steps never run.
const PROMPT = [1, 2, 3, 4, 5, 6, 7, 8, 9];
const opts = { method: 'ar' as const, temperature: 0, maxNewTokens: 6, stopAtEos: false };
/** Matmul kernels of more than one row: the prefill's own. */
const multiRow = (keys: string[]) => keys.filter((k) => /^matmul_.*_r(?!1_)\d+_/.test(k));

describe('a cold prompt read a token per pass', () => {
  const devices: Device[] = [];
  /** `targetFeatures`: the diffusion drafter reads the target's hidden states, which the prefill writes. */
  const pipeline = async (record: boolean, targetFeatures = 0) => {
    const dev = await createNodeDevice();
    devices.push(dev);
    if (record) dev.restoreFirstRuns([]);
    const target = await tinyGPT2(dev, { vocab: V, seed: 41, positions: 64 });
    return new Pipeline(dev, null as unknown as Tokenizer, target, await tinyMDLM(dev, { vocab: V, seed: 42, positions: 64, targetFeatures }), target);
  };
  afterEach(() => {
    for (const d of devices.splice(0)) d.destroy();
  });

  it('without a record of first runs the prompt is read in one pass (the control)', async () => {
    const pipe = await pipeline(false);
    await pipe.generate(PROMPT, opts).result();
    expect(multiRow(pipe.device.firstRuns())).not.toEqual([]);
  });

  it('with a record that lacks them, the prompt is read a token per pass: no multi-row kernel runs, and the tokens are the same', async () => {
    const cold = await pipeline(true);
    const r = await cold.generate(PROMPT, opts).result();
    expect(multiRow(cold.device.firstRuns())).toEqual([]);
    const plain = await pipeline(false);
    expect(r.tokens).toEqual((await plain.generate(PROMPT, opts).result()).tokens);
  });

  it('a drafter reading the target\'s hidden states drafts the same from a prompt read a token per pass', async () => {
    const run = async (record: boolean) => {
      const pipe = await pipeline(record, 32);
      const r = await pipe.generate(PROMPT, { ...opts, method: 'specdiff', maxNewTokens: 12 }).result();
      return { tokens: r.tokens, accepted: r.stats.acceptedTokens };
    };
    const cold = await run(true);
    const plain = await run(false);
    expect(cold.tokens).toEqual(plain.tokens);
    // Greedy tokens are the target's whatever is drafted: the drafts show the states.
    expect(cold.accepted).toBe(plain.accepted);
  });

  it('once the one-pass kernels have run, the prompt is read in one pass again: fewer dispatches', async () => {
    const dispatches = async (pipe: Pipeline) => {
      const before = pipe.device.dispatchCount;
      await pipe.generate(PROMPT, opts).result();
      return pipe.device.dispatchCount - before;
    };
    const warm = await pipeline(true);
    await warm.warmup({ ...opts, prompt: PROMPT });
    expect(multiRow(warm.device.firstRuns())).not.toEqual([]);
    const cold = await pipeline(true);
    // The same steps after the prompt; a token per pass adds 7 passes.
    expect(await dispatches(cold)).toBeGreaterThan((await dispatches(warm)) + 7 * 10);
  });

  it("a staged start's first stage compiles what the cold generation runs, and no multi-row kernel", async () => {
    const pipe = await pipeline(true);
    const staged = await pipe.warmupStaged({ ...opts, method: 'specdiff', prompt: PROMPT });
    expect(multiRow(pipe.device.firstRuns())).toEqual([]);
    const before = pipe.device.pipelineCount;
    const r = await pipe.generate(PROMPT, { ...opts, method: 'specdiff', draftWhen: new Promise(() => {}) }).result();
    expect(r.stats.stepsBeforeDrafting).toBe(r.stats.targetPasses);
    expect(pipe.device.pipelineCount).toBe(before);
    await staged.stop();
  });
});
