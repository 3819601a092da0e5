/**
 * loadPipeline's deferDrafters: the target alone at first, the drafters at loadDrafters(), which a staged start's
 * second stage calls once its generation's first token is out.
 */
import { describe, expect, it, vi } from 'vitest';
import { writeSafetensors } from '../src/models/safetensors.js';
import { loadPipeline } from '../src/pipeline.js';
import { WeightError } from '../src/models/weights.js';
import { getDevice } from './helpers/device.js';
import { draftHeadShapes, gpt2Shapes, mdlmShapes, randomTensors } from './helpers/tiny-models.js';
import { memoryFolder } from './helpers/memory-folder.js';

const V = 16;
const D = 32;
const C = 16;
const vocab = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', '<|endoftext|>'].map((t, i) => [t, i]));
const target = () =>
  memoryFolder('target', {
    'config.json': JSON.stringify({ model_type: 'gpt2', vocab_size: V, n_positions: 64, n_embd: D, n_layer: 2, n_head: 2 }),
    'tokenizer.json': JSON.stringify({ model: { type: 'BPE', vocab, merges: [] } }),
    'model.safetensors': writeSafetensors(randomTensors(gpt2Shapes(V, D, 2, 64), 41, 0.5, (n) => /ln_.*weight$/.test(n))),
  });
/** With a draft head, whose token_proj the load folds into the embedding on the GPU. */
const drafter = (poison = false, draftHead = false) => {
  const shapes = { ...mdlmShapes(V + 1, D, 2, C), ...(draftHead ? draftHeadShapes(V + 1, D, C) : {}) };
  const tensors = randomTensors(shapes, 42, 0.5, (n) => /norm.*weight$/.test(n));
  if (poison) tensors['backbone.output_layer.linear.bias'].data[3] = NaN;
  return memoryFolder('drafter', {
    'config.json': JSON.stringify({ model_type: 'mdlm', vocab_size: V + 1, hidden_dim: D, n_blocks: 2, n_heads: 2, cond_dim: C, model_length: 64, time_conditioning: false, block_causal: true, ...(draftHead ? { draft_head: true } : {}) }),
    'model.safetensors': writeSafetensors(tensors),
  });
};
const PROMPT = [1, 2, 3];
const opts = { method: 'specdiff', temperature: 0, maxNewTokens: 16, stopAtEos: false } as const;

describe('loadPipeline with deferDrafters', async () => {
  const dev = await getDevice();

  it('loads the target alone; a generation without draftWhen asks for loadDrafters(), and after it drafts', async () => {
    const pipe = await loadPipeline(dev, { target: target(), diffusionDrafter: drafter() }, { deferDrafters: true });
    expect(pipe.diffusionDrafter).toBeNull();
    expect(() => pipe.generate(PROMPT, opts)).toThrow("method 'specdiff' needs a diffusion drafter: load one with the pipeline (loadPipeline deferred the drafters: await pipe.loadDrafters() first)");
    await pipe.loadDrafters();
    expect(pipe.diffusionDrafter).not.toBeNull();
    const r = await pipe.generate(PROMPT, opts).result();
    expect(r.stats.draftedTokens).toBeGreaterThan(0);
    pipe.dispose();
  });

  it('a staged start: plain steps, the drafter loading after the first token, then drafts; the tokens of a pipeline loaded whole', async () => {
    const pipe = await loadPipeline(dev, { target: target(), diffusionDrafter: drafter() }, { deferDrafters: true });
    const staged = await pipe.warmupStaged({ ...opts, prompt: PROMPT });
    let loadedAtFirstToken: boolean | undefined;
    const run = pipe.generate(PROMPT, { ...opts, draftWhen: staged.drafting });
    for await (const chunk of run) {
      if (loadedAtFirstToken !== undefined) continue;
      loadedAtFirstToken = pipe.diffusionDrafter !== null;
      // Holds the stream until the second stage is done, so that the rest is drafted whatever the machine's speed.
      await staged.drafting();
      void chunk;
    }
    const r = await run.result();
    await staged.stop();
    expect(loadedAtFirstToken).toBe(false);
    expect(r.stats.stepsBeforeDrafting).toBeGreaterThan(0);
    expect(r.stats.draftedTokens).toBeGreaterThan(0);
    const whole = await loadPipeline(dev, { target: target(), diffusionDrafter: drafter() });
    expect(r.tokens).toEqual((await whole.generate(PROMPT, opts).result()).tokens);
    whole.dispose();
    pipe.dispose();
  });

  it("a deferred load hands the draft head's fold kernels to warmupInBackground, to compile beside decoding, and drafts as a pipeline loaded whole", async () => {
    const handed: string[][] = [];
    const spy = vi.spyOn(dev, 'warmupInBackground').mockImplementation(async (kernels) => {
      handed.push([...kernels].map((k) => k.key));
      return { compiled: 0, launched: 0, helperDevices: 0 };
    });
    const pipe = await loadPipeline(dev, { target: target(), diffusionDrafter: drafter(false, true) }, { deferDrafters: true });
    await pipe.loadDrafters();
    spy.mockRestore();
    expect(handed).toHaveLength(1);
    expect(handed[0].some((key) => key.startsWith('matmul_'))).toBe(true);
    const whole = await loadPipeline(dev, { target: target(), diffusionDrafter: drafter(false, true) });
    const r = await pipe.generate(PROMPT, opts).result();
    expect(r.stats.draftHeadSteps).toBeGreaterThan(0);
    expect(r.tokens).toEqual((await whole.generate(PROMPT, opts).result()).tokens);
    whole.dispose();
    pipe.dispose();
  });

  it("a fold whose compile beside decoding fails still loads: its first run compiles it", async () => {
    const spy = vi.spyOn(dev, 'warmupInBackground').mockRejectedValue(new Error('no helper device'));
    const pipe = await loadPipeline(dev, { target: target(), diffusionDrafter: drafter(false, true) }, { deferDrafters: true });
    await pipe.loadDrafters();
    spy.mockRestore();
    const whole = await loadPipeline(dev, { target: target(), diffusionDrafter: drafter(false, true) });
    expect((await pipe.generate(PROMPT, opts).result()).tokens).toEqual((await whole.generate(PROMPT, opts).result()).tokens);
    whole.dispose();
    pipe.dispose();
  });

  it('a drafter that fails its deferred load fails the generation with its error and leaves no GPU memory behind', async () => {
    const before = dev.memoryStats().liveBytes;
    const pipe = await loadPipeline(dev, { target: target(), diffusionDrafter: drafter(true) }, { deferDrafters: true });
    const staged = await pipe.warmupStaged({ ...opts, prompt: PROMPT });
    await expect(pipe.generate(PROMPT, { ...opts, draftWhen: staged.drafting }).result()).rejects.toBeInstanceOf(WeightError);
    await staged.stop();
    pipe.dispose();
    expect(dev.memoryStats().liveBytes).toBe(before);
  });

  it('a pipeline disposed while its drafters load frees them as they arrive', async () => {
    const before = dev.memoryStats().liveBytes;
    const pipe = await loadPipeline(dev, { target: target(), diffusionDrafter: drafter() }, { deferDrafters: true });
    const loading = pipe.loadDrafters();
    pipe.dispose();
    await expect(loading).rejects.toThrow('the pipeline was disposed while its drafters loaded');
    expect(dev.memoryStats().liveBytes).toBe(before);
  });
});
