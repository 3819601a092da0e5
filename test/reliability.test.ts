// Careless use and hostile checkpoints on the GPU: nothing leaks, nothing hangs, nothing fails silently.
import { describe, expect, it } from 'vitest';
import { generate, Generation, VocabularyMismatchError } from '../src/decode/generate.js';
import { ARDrafter } from '../src/decode/ar-drafter.js';
import { GPT2 } from '../src/models/gpt2.js';
import { MDLM } from '../src/models/mdlm.js';
import { ConfigError, parseGPT2Config, parseMDLMConfig } from '../src/models/config.js';
import { ContextError, NumericalError } from '../src/models/errors.js';
import { WeightError } from '../src/models/weights.js';
import { SafetensorsError, memorySource, openSafetensors, writeSafetensors, type TensorToWrite } from '../src/models/safetensors.js';
import { loadPipeline } from '../src/pipeline.js';
import type { Device } from '../src/tensor/device.js';
import { getDevice } from './helpers/device.js';
import { draftHeadShapes, gpt2Shapes, mdlmShapes, randomTensors } from './helpers/tiny-models.js';
import { memoryFolder } from './helpers/memory-folder.js';

const V = 16;
const D = 32; // 2 heads of 16: 1/√16 is exact
type Tensors = Record<string, TensorToWrite & { data: Float32Array }>;

function gpt2Tensors(seed = 1, layers = 2): Tensors {
  return randomTensors(gpt2Shapes(V, D, layers, 32), seed, 0.3, (n) => /ln_.*weight$/.test(n));
}

function gpt2Json(extra: Record<string, unknown> = {}, layers = 2): Record<string, unknown> {
  return { model_type: 'gpt2', vocab_size: V, n_positions: 32, n_embd: D, n_layer: layers, n_head: 2, ...extra };
}

async function gpt2(dev: Device, tensors: Tensors, extra: Record<string, unknown> = {}, layers = 2): Promise<GPT2> {
  const ckpt = await openSafetensors(memorySource(writeSafetensors(tensors), 'tiny.safetensors'));
  return GPT2.load(dev, ckpt, parseGPT2Config(gpt2Json(extra, layers)), { dtype: 'f32' });
}

async function logits(model: GPT2, ids = [1, 5, 3, 7]): Promise<Float32Array> {
  const cache = model.createCache();
  const out = model.forward(ids, cache, ids.length);
  const data = (await out.read()) as Float32Array;
  out.dispose();
  cache.dispose();
  return data;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

const scaled = (t: TensorToWrite & { data: Float32Array }, f: (v: number, i: number) => number) => ({ ...t, data: t.data.map(f) });

async function rejection(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(Error);
  return e as Error;
}

describe('leaving a stream early', async () => {
  const dev = await getDevice();
  const target = await gpt2(dev, gpt2Tensors());
  const within = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('result() did not settle')), 5000))]);

  it('break frees the KV cache and result() resolves with the tokens so far, stopReason closed', async () => {
    const before = dev.memoryStats().liveBytes;
    const run = generate(target, null, { prompt: [1, 2], maxNewTokens: 20, temperature: 0, stopAtEos: false });
    const seen: number[] = [];
    for await (const chunk of run) {
      seen.push(...chunk.tokens);
      if (seen.length >= 3) break;
    }
    expect(dev.memoryStats().liveBytes).toBe(before);
    const r = await within(run.result());
    expect(r.stats.stopReason).toBe('closed');
    expect(r.tokens).toEqual(seen);
  });

  it('a throw inside the loop frees the KV cache and result() settles', async () => {
    const before = dev.memoryStats().liveBytes;
    const run = generate(target, null, { prompt: [1], maxNewTokens: 20, temperature: 0.8, stopAtEos: false });
    await expect((async () => {
      for await (const _ of run) throw new Error('consumer failed');
    })()).rejects.toThrow('consumer failed');
    expect(dev.memoryStats().liveBytes).toBe(before);
    expect((await within(run.result())).stats.stopReason).toBe('closed');
  });

  it('an iterator closed before its first chunk settles result() with no tokens', async () => {
    const run = generate(target, null, { prompt: [1], maxNewTokens: 5 });
    await run[Symbol.asyncIterator]().return?.();
    const r = await within(run.result());
    expect([r.tokens, r.stats.stopReason]).toEqual([[], 'closed']);
  });

  it('a Generation is still iterable once only', async () => {
    const run: Generation = generate(target, null, { prompt: [1], maxNewTokens: 2 });
    await run.result();
    await expect((async () => {
      for await (const _ of run) void _;
    })()).rejects.toThrow('iterated once');
  });
});

describe('errors inside a device scope', async () => {
  const dev = await getDevice();

  it('a scope that throws frees the tensors it created', async () => {
    const { Tensor } = await import('../src/tensor/tensor.js');
    const before = dev.memoryStats().liveBytes;
    expect(() => dev.scope(() => {
      Tensor.from(dev, new Float32Array(1024), [1024]);
      throw new Error('op failed');
    })).toThrow('op failed');
    expect(dev.memoryStats().liveBytes).toBe(before);
  });
});

describe('a drafter with a short context', async () => {
  const dev = await getDevice();
  const { tinyMDLM } = await import('./helpers/tiny-models.js');
  const { DiffusionDrafter } = await import('../src/decode/diffusion-drafter.js');
  const target = await gpt2(dev, gpt2Tensors());

  it('shrinks the default draft length to fit instead of failing on an option the caller never gave', async () => {
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 2, positions: 3 });
    const r = await generate(target, null, { prompt: [1], method: 'specdiff', drafter: new DiffusionDrafter(mdlm), maxNewTokens: 4, temperature: 0, stopAtEos: false }).result();
    expect([r.tokens.length, r.stats.gamma]).toEqual([4, 2]);
  });

  it('with no room for a draft at all is a ContextError', async () => {
    const mdlm = await tinyMDLM(dev, { vocab: V, seed: 2, positions: 1 });
    expect(() => generate(target, null, { prompt: [1], method: 'specdiff', drafter: new DiffusionDrafter(mdlm) })).toThrow(
      new ContextError("the diffusion drafter's context of 1 positions leaves no room for a draft"),
    );
  });
});

describe('a load that fails part-way frees what it uploaded', async () => {
  const dev = await getDevice();

  it('GPT-2: a wpe shape that contradicts n_positions, found after wte is on the GPU', async () => {
    const before = dev.memoryStats().liveBytes;
    const ckpt = await openSafetensors(memorySource(writeSafetensors(gpt2Tensors()), 'tiny.safetensors'));
    const e = await rejection(GPT2.load(dev, ckpt, parseGPT2Config(gpt2Json({ n_positions: 64 }))));
    expect(e).toBeInstanceOf(WeightError);
    expect(e.message).toContain('tensor "wpe.weight" has shape [32, 32], the config implies [64, 32]');
    expect(dev.memoryStats().liveBytes).toBe(before);
  });

  it('MDLM: a non-finite value in the last tensor read, after every block is on the GPU', async () => {
    const shapes = mdlmShapes(V + 1, D, 2, 16);
    const t = randomTensors(shapes, 3, 0.3, (n) => /norm.*weight$/.test(n));
    t['backbone.output_layer.linear.bias'].data[7] = NaN;
    const ckpt = await openSafetensors(memorySource(writeSafetensors(t), 'mdlm.safetensors'));
    const before = dev.memoryStats().liveBytes;
    const config = parseMDLMConfig({ model_type: 'mdlm', vocab_size: V + 1, hidden_dim: D, n_blocks: 2, n_heads: 2, cond_dim: 16, model_length: 32 });
    const e = await rejection(MDLM.load(dev, ckpt, config));
    expect(e).toBeInstanceOf(WeightError);
    expect(e.message).toBe('mdlm.safetensors: tensor "backbone.output_layer.linear.bias" has NaN at element 7; the weights must be finite');
    expect(dev.memoryStats().liveBytes).toBe(before);
  });

  it('MDLM with a draft head: a non-finite value read while its token table is folded on the GPU (f16)', async () => {
    const shapes = { ...mdlmShapes(V + 1, D, 2, 16), ...draftHeadShapes(V + 1, D, 16) };
    const t = randomTensors(shapes, 3, 0.3, (n) => /norm.*weight$/.test(n));
    t['backbone.draft_head.block.mlp.2.weight'].data[5] = NaN;
    const ckpt = await openSafetensors(memorySource(writeSafetensors(t), 'mdlm.safetensors'));
    const before = dev.memoryStats().liveBytes;
    const config = parseMDLMConfig({ model_type: 'mdlm', vocab_size: V + 1, hidden_dim: D, n_blocks: 2, n_heads: 2, cond_dim: 16, model_length: 32, draft_head: true, block_causal: true });
    const e = await rejection(MDLM.load(dev, ckpt, config, { dtype: 'f16' }));
    expect(e).toBeInstanceOf(WeightError);
    expect(e.message).toBe('mdlm.safetensors: tensor "backbone.draft_head.block.mlp.2.weight" has NaN at element 5; the weights must be finite');
    expect(dev.memoryStats().liveBytes).toBe(before);
  });
});

describe('non-finite weights and logits end in a clear error', async () => {
  const dev = await getDevice();

  it.each([NaN, Infinity, -Infinity])('a weight of %d is refused at load, naming the tensor and the element', async (bad) => {
    const t = gpt2Tensors();
    t['h.1.mlp.c_proj.weight'].data[70] = bad;
    const e = await rejection(gpt2(dev, t));
    expect(e).toBeInstanceOf(WeightError);
    expect(e.message).toBe(`tiny.safetensors: tensor "h.1.mlp.c_proj.weight" has ${bad} at element 70; the weights must be finite`);
  });

  it('an f32 weight past 65504 is refused when it would become Inf in f16', async () => {
    const t = gpt2Tensors();
    t['wte.weight'].data[3] = 1e5;
    const ckpt = await openSafetensors(memorySource(writeSafetensors(t), 'tiny.safetensors'));
    const e = await rejection(GPT2.load(dev, ckpt, parseGPT2Config(gpt2Json()), { dtype: 'f16' }));
    expect(e.message).toContain('tensor "wte.weight" has Infinity at element 3');
  });

  // Finite weights whose logits overflow: ln_f scales every normalised activation by 3e38.
  const overflowing = async () => {
    const t = gpt2Tensors();
    t['ln_f.weight'] = scaled(t['ln_f.weight'], () => 3e38);
    return gpt2(dev, t);
  };

  it.each([0, 0.8])('decoding at temperature %d with overflowing logits is a NumericalError, not token 0 or -1', async (temperature) => {
    const model = await overflowing();
    const run = generate(model, null, { prompt: [1, 2], maxNewTokens: 4, temperature, stopAtEos: false });
    const e = await rejection(run.result());
    expect(e).toBeInstanceOf(NumericalError);
    expect(e.message).toMatch(/^the target's logits are not finite \(NaN or Inf\) at row 0: no token could be chosen/);
    model.dispose();
  });

  it('a prompt of ids with maxNewTokens 1 does not return [-1]', async () => {
    const model = await overflowing();
    await expect(generate(model, null, { prompt: [3], maxNewTokens: 1, temperature: 0.5 }).result()).rejects.toThrow(NumericalError);
    model.dispose();
  });

  it("a drafter whose logits overflow is named as the drafter's", async () => {
    const target = await gpt2(dev, gpt2Tensors(5));
    const drafter = await overflowing();
    const before = dev.memoryStats().liveBytes;
    const run = generate(target, null, { prompt: [1, 2], maxNewTokens: 6, temperature: 0, method: 'speculative', drafter: new ARDrafter(drafter), gamma: 3, stopAtEos: false, disposeDrafter: true });
    await expect(run.result()).rejects.toThrow(/^the drafter's logits are not finite/);
    expect(dev.memoryStats().liveBytes).toBe(before); // the draft's tensors too
    target.dispose();
    drafter.dispose();
  });
});

describe('GPT-2 configs the loader honours', async () => {
  const dev = await getDevice();
  const base = gpt2Tensors(7);
  const reference = await logits(await gpt2(dev, base));

  it('tie_word_embeddings false uses lm_head.weight (here 2·wte: every logit doubles)', async () => {
    const t: Tensors = { ...base, 'lm_head.weight': scaled(base['wte.weight'], (v) => 2 * v) };
    const out = await logits(await gpt2(dev, t, { tie_word_embeddings: false }));
    expect(maxAbsDiff(out, reference.map((v) => 2 * v))).toBeLessThan(1e-5);
  });

  it('tie_word_embeddings false without lm_head.weight names the missing tensor', async () => {
    const e = await rejection(gpt2(dev, base, { tie_word_embeddings: false }));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.message).toContain('1 missing tensor: "lm_head.weight"');
  });

  it('a tied checkpoint that also stores lm_head.weight keeps using wte, as HF ties them', async () => {
    const t: Tensors = { ...base, 'lm_head.weight': scaled(base['wte.weight'], () => 0) };
    expect(maxAbsDiff(await logits(await gpt2(dev, t)), reference)).toBe(0);
  });

  // Query columns of c_attn ([in, 3d] Conv1D): the first d outputs, weight and bias.
  const scaleQuery = (t: Tensors, layer: number, f: number): Tensors => ({
    ...t,
    [`h.${layer}.attn.c_attn.weight`]: scaled(t[`h.${layer}.attn.c_attn.weight`], (v, i) => (i % (3 * D) < D ? v * f : v)),
    [`h.${layer}.attn.c_attn.bias`]: scaled(t[`h.${layer}.attn.c_attn.bias`], (v, i) => (i < D ? v * f : v)),
  });

  it('scale_attn_weights false leaves scores unscaled: the same as queries scaled by 1/√16 under the default', async () => {
    const unscaled = await logits(await gpt2(dev, base, { scale_attn_weights: false }));
    const folded = await logits(await gpt2(dev, scaleQuery(scaleQuery(base, 0, 4), 1, 4)));
    expect(maxAbsDiff(unscaled, reference)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(unscaled, folded)).toBeLessThan(1e-5);
  });

  it('scale_attn_by_inverse_layer_idx divides layer i by i + 1: the same as its queries scaled by 1/(i + 1)', async () => {
    const inverse = await logits(await gpt2(dev, base, { scale_attn_by_inverse_layer_idx: true }));
    const folded = await logits(await gpt2(dev, scaleQuery(base, 1, 0.5)));
    expect(maxAbsDiff(inverse, reference)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(inverse, folded)).toBeLessThan(1e-5);
  });

  it.each(['tie_word_embeddings', 'scale_attn_weights', 'scale_attn_by_inverse_layer_idx'])('%s that is not a boolean is a ConfigError', (key) => {
    expect(() => parseGPT2Config(gpt2Json({ [key]: 'yes' }))).toThrow(new ConfigError(`config.json: "${key}" must be true or false, got "yes"`));
  });
});

describe('generate compares the tokenizer with the target', async () => {
  const dev = await getDevice();
  const target = await gpt2(dev, gpt2Tensors());

  it('a tokenizer that has no token for some id of the target is a VocabularyMismatchError before decoding', async () => {
    const { Tokenizer } = await import('../src/models/tokenizer.js');
    const vocab = Object.fromEntries(Array.from({ length: V }, (_, i) => [String.fromCharCode(97 + i), i]).filter(([, id]) => id !== 3));
    const tokenizer = Tokenizer.fromVocabMerges(vocab, '');
    expect(tokenizer.vocabSize).toBe(V);
    expect(() => generate(target, tokenizer, { prompt: 'ab' })).toThrow(new VocabularyMismatchError("the tokenizer has no token for id 3 of the target's 16: text could not be decoded"));
  });

  it('a tokenizer with another vocabulary size is a VocabularyMismatchError before decoding', async () => {
    const { Tokenizer } = await import('../src/models/tokenizer.js');
    const tokenizer = Tokenizer.fromVocabMerges(Object.fromEntries(Array.from({ length: V + 4 }, (_, i) => [String.fromCharCode(97 + i), i])), '');
    expect(() => generate(target, tokenizer, { prompt: 'ab' })).toThrow(new VocabularyMismatchError(`the tokenizer has 20 tokens but the target's vocabulary has 16: ids past the smaller one would fail mid-generation`));
  });
});

describe('loadPipeline compares vocabularies before loading weights', async () => {
  const dev = await getDevice();
  const vocab = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', '<|endoftext|>'].map((t, i) => [t, i]));
  const tokenizer = JSON.stringify({ model: { type: 'BPE', vocab, merges: [] } });
  const folder = (config: Record<string, unknown>) =>
    memoryFolder('target', { 'config.json': JSON.stringify(config), 'tokenizer.json': tokenizer, 'model.safetensors': writeSafetensors(gpt2Tensors()) });

  it('a target whose vocab_size differs from its tokenizer is refused at load, not mid-generation', async () => {
    const before = dev.memoryStats().liveBytes;
    const bigger = { ...gpt2Tensors(), 'wte.weight': randomTensors({ w: [V + 1, D] }, 9, 0.3, () => false).w };
    const files = { 'config.json': JSON.stringify(gpt2Json({ vocab_size: V + 1 })), 'tokenizer.json': tokenizer, 'model.safetensors': writeSafetensors(bigger) };
    const e = await rejection(loadPipeline(dev, { target: memoryFolder('target', files) }));
    expect(e).toBeInstanceOf(VocabularyMismatchError);
    expect(e.message).toBe('target/config.json: vocab_size 17 does not match the 16 tokens of the tokenizer in target');
    expect(dev.memoryStats().liveBytes).toBe(before);
  });

  it('a drafter that fails to load frees the target already loaded', async () => {
    const before = dev.memoryStats().liveBytes;
    const drafter = memoryFolder('drafter', { 'config.json': JSON.stringify({ model_type: 'mdlm', vocab_size: V + 1, hidden_dim: D, n_blocks: 1, n_heads: 2, cond_dim: 16, model_length: 32 }) });
    const e = await rejection(loadPipeline(dev, { target: folder(gpt2Json()), diffusionDrafter: drafter }));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(dev.memoryStats().liveBytes).toBe(before);
  });
});
