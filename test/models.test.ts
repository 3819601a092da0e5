import { describe, expect, it } from 'vitest';
import { dirFolder } from '../src/models/safetensors-node.js';
import { loadGPT2, loadMDLM } from '../src/models/load.js';
import { openSafetensorsFile } from '../src/models/safetensors-node.js';
import { getDevice } from './helpers/device.js';
import { createNodeDevice } from '../src/node.js';
import type { Device } from '../src/tensor/device.js';

const FIX = new URL('./fixtures/', import.meta.url).pathname;

async function golden(dir: string) {
  const g = await openSafetensorsFile(`${FIX}${dir}/golden.safetensors`);
  const get = async (name: string) => (await g.load(name)).data as Float32Array | Int32Array;
  return { get, close: () => g.close() };
}

/** max |a - e| / (1 + |e|) over all elements. */
function maxRelErr(a: ArrayLike<number>, e: ArrayLike<number>, skip?: (i: number) => boolean): number {
  expect(a.length).toBe(e.length);
  let m = 0;
  for (let i = 0; i < e.length; i++) {
    if (skip?.(i)) continue;
    m = Math.max(m, Math.abs(a[i] - e[i]) / (1 + Math.abs(e[i])));
  }
  return m;
}

describe('GPT-2 against the PyTorch reference', () => {
  for (const dir of ['gpt2-tiny', 'gpt2-tiny-prefixed', 'gpt2-tiny-sharded']) {
    it(`${dir}: prefill logits at every position match within 1e-4`, async () => {
      const dev = await getDevice();
      const model = await loadGPT2(dev, dirFolder(FIX + dir), { dtype: 'f32' });
      const g = await golden(dir);
      const ids = Array.from(await g.get('input_ids'));
      const expected = await g.get('logits');
      const cache = model.createCache();
      const logits = await model.forward(ids, cache, ids.length).read();
      expect(maxRelErr(logits, expected)).toBeLessThan(1e-4);
      cache.dispose();
      model.dispose();
      await g.close();
    });
  }

  /** gpt2-tiny on `dev` with its reference: the input ids, the logits at every position, and an empty cache. */
  const withReference = async (dev: Device) => {
    const model = await loadGPT2(dev, dirFolder(FIX + 'gpt2-tiny'), { dtype: 'f32' });
    const g = await golden('gpt2-tiny');
    return { model, g, ids: Array.from(await g.get('input_ids')), expected: await g.get('logits'), V: model.vocabSize, cache: model.createCache() };
  };

  it('decode one token at a time and verify k tokens at once give the prefill logits', async () => {
    const { model, g, ids, expected, V, cache } = await withReference(await getDevice());
    await model.forward(ids.slice(0, 20), cache).read();
    for (let i = 20; i < 24; i++) {
      const row = await model.forward([ids[i]], cache).read();
      expect(maxRelErr(row, expected.subarray(i * V, (i + 1) * V))).toBeLessThan(1e-4);
    }
    const k = 8;
    const rows = await model.forward(ids.slice(24, 24 + k), cache, k).read();
    expect(maxRelErr(rows, expected.subarray(24 * V, (24 + k) * V))).toBeLessThan(1e-4);
    // Roll back the last 5 and verify them again: same logits.
    cache.truncate(27);
    const again = await model.forward(ids.slice(27, 32), cache, 5).read();
    expect(maxRelErr(again, expected.subarray(27 * V, 32 * V))).toBeLessThan(1e-4);
    cache.dispose();
    model.dispose();
    await g.close();
  });

  // Up to tuning.prefillOneRowAttention tokens (default 32) the prefill runs the one-row attention kernel, past it the multi-row one.
  it.each([32, 0])('prefill (prefillOneRowAttention %i), then one-token steps, gives the reference logits', async (oneRowUpTo) => {
    const n = 20;
    const dev = await createNodeDevice({ tuning: { prefillOneRowAttention: oneRowUpTo } });
    const { model, g, ids, expected, V, cache } = await withReference(dev);
    model.prefill(ids.slice(0, n), cache);
    for (let i = n; i < n + 3; i++) {
      const row = await model.forward([ids[i]], cache).read();
      expect(maxRelErr(row, expected.subarray(i * V, (i + 1) * V))).toBeLessThan(1e-4);
    }
    cache.dispose();
    model.dispose();
    await g.close();
    dev.destroy();
  });

  it("writes each position p's final hidden state (ln_f output) to row p + 1 of HiddenStates, row 0 staying zero, also after a rollback", async () => {
    const dev = await getDevice();
    const model = await loadGPT2(dev, dirFolder(FIX + 'gpt2-tiny'), { dtype: 'f32' });
    const g = await golden('gpt2-tiny');
    const ids = Array.from(await g.get('input_ids'));
    const expected = await g.get('hidden_final');
    const d = model.config.nEmbd;
    const cache = model.createCache();
    const states = model.createHiddenStates();
    dev.scope(() => model.forward(ids.slice(0, 20), cache, 1, states).dispose());
    dev.scope(() => model.forward(ids.slice(20, 28), cache, 8, states).dispose());
    cache.truncate(23); // a rejected verify: positions 23.. are written again
    dev.scope(() => model.forward(ids.slice(23, 30), cache, 7, states).dispose());
    const rows = await states.rows.read();
    expect(rows.subarray(0, d).every((v) => v === 0)).toBe(true);
    expect(maxRelErr(rows.subarray(d, 31 * d), expected.subarray(0, 30 * d))).toBeLessThan(1e-4);
    states.dispose();
    cache.dispose();
    model.dispose();
    await g.close();
  });

  it('f16 weights stay within 2e-2 of the f32 reference', async () => {
    const dev = await getDevice();
    const model = await loadGPT2(dev, dirFolder(FIX + 'gpt2-tiny'), { dtype: 'f16' });
    const g = await golden('gpt2-tiny');
    const ids = Array.from(await g.get('input_ids'));
    const logits = await model.forward(ids, model.createCache(), ids.length).read();
    expect(maxRelErr(logits, await g.get('logits'))).toBeLessThan(2e-2);
    await g.close();
  });

  it('without a dtype, weights load as f16 with or without shader-f16, and give the same logits either way', async () => {
    const withF16 = await getDevice();
    const withoutF16 = await createNodeDevice({ disableFeatures: ['shader-f16'] });
    expect(withoutF16.info.features.shaderF16).toBe(false);
    const g = await golden('gpt2-tiny');
    const ids = Array.from(await g.get('input_ids'));
    await g.close();
    const run = async (dev: Device) => {
      const [gpt2, mdlm] = [await loadGPT2(dev, dirFolder(FIX + 'gpt2-tiny')), await loadMDLM(dev, dirFolder(FIX + 'mdlm-tiny'))];
      const dtypes = [gpt2.matmulSignatures(1)[0].dtype, mdlm.matmulSignatures(0, 1)[0].dtype];
      const logits = Array.from(await gpt2.forward(ids, gpt2.createCache(), ids.length).read());
      gpt2.dispose();
      mdlm.dispose();
      return { dtypes, logits };
    };
    const [a, b] = [await run(withF16), await run(withoutF16)];
    expect([a.dtypes, b.dtypes]).toEqual([['f16', 'f16'], ['f16', 'f16']]);
    expect(b.logits).toEqual(a.logits);
    withoutF16.destroy();
  });

  it('a prompt past the context length is a ContextError', async () => {
    const dev = await getDevice();
    const model = await loadGPT2(dev, dirFolder(FIX + 'gpt2-tiny'), { dtype: 'f32' });
    const cache = model.createCache();
    expect(() => model.forward(new Array(129).fill(1), cache)).toThrow(/exceed the context of 128/);
    expect(() => model.forward([1000], cache)).toThrow(/outside the vocabulary/);
  });
});

describe('MDLM against the PyTorch reference', () => {
  it.each([
    ['mdlm-tiny', 'rotary positions, no attention biases (mdlm-owt)'],
    ['mdlm-tiny-ar-layout', 'learned positions and attention biases (config "learned_positions", "attention_bias")'],
  ])('%s, %s: SUBS log-probabilities at every position match within 1e-4', async (fixture) => {
    const dev = await getDevice();
    const model = await loadMDLM(dev, dirFolder(FIX + fixture), { dtype: 'f32' });
    const g = await golden(fixture);
    const ids = Array.from(await g.get('input_ids'));
    const expected = await g.get('log_probs');
    const V = model.vocabSize;
    const all = ids.map((_, i) => i);
    const lp = await model.logProbs(ids, all).read();
    // The mask column sits at −1e6 − lse: compare it loosely, as the reference's float32 grid is 0.0625.
    expect(maxRelErr(lp, expected, (i) => i % V === model.maskTokenId)).toBeLessThan(1e-4);
    for (let r = 0; r < ids.length; r++) expect(lp[r * V + model.maskTokenId]).toBeLessThan(-1e5);
    model.dispose();
    await g.close();
  });

  it('computes the vocabulary projection only at the positions asked for', async () => {
    const dev = await getDevice();
    const model = await loadMDLM(dev, dirFolder(FIX + 'mdlm-tiny'), { dtype: 'f32' });
    const g = await golden('mdlm-tiny');
    const ids = Array.from(await g.get('input_ids'));
    const expected = await g.get('log_probs');
    const V = model.vocabSize;
    const positions = [36, 40, 47, 3];
    const lp = await model.logProbs(ids, positions).read();
    expect(lp.length).toBe(positions.length * V);
    positions.forEach((p, r) => {
      expect(maxRelErr(lp.subarray(r * V, (r + 1) * V), expected.subarray(p * V, (p + 1) * V), (i) => i === model.maskTokenId)).toBeLessThan(1e-4);
    });
    model.dispose();
    await g.close();
  });
});

describe('block-causal MDLM against the PyTorch reference', () => {
  /**
   * Log-softmax of logitsCached at the given rows, through the cache in pieces of the given sizes;
   * the features fixture also feeds each piece its rows of the target features.
   */
  async function blockCausal(pieces: number[], fixture: 'mdlm-tiny' | 'mdlm-tiny-features' | 'mdlm-tiny-ar-layout' = 'mdlm-tiny') {
    const { logSoftmax } = await import('../src/tensor/ops/rowwise.js');
    const { Tensor } = await import('../src/tensor/tensor.js');
    const dev = await getDevice();
    const model = await loadMDLM(dev, dirFolder(FIX + fixture), { dtype: 'f32' });
    const g = await golden(fixture);
    const ids = Array.from(await g.get('input_ids'));
    const P = (await g.get('block_causal_prefix'))[0];
    const expected = await g.get('log_probs_block_causal');
    const F = model.config.targetFeatures;
    const features = F ? ((await g.get('target_features')) as Float32Array) : null;
    const cache = model.createCache();
    const V = model.vocabSize;
    const got = new Float32Array(ids.length * V);
    let at = 0;
    for (const size of [...pieces, ids.length - pieces.reduce((a, b) => a + b, 0)]) {
      const chunk = ids.slice(at, at + size);
      const block = at + size === ids.length ? ids.length - P : 0;
      const lp = dev.scope(() => {
        const f = features ? Tensor.from(dev, features.subarray(at * F, (at + size) * F), [size, F]) : undefined;
        return logSoftmax(model.logitsCached(chunk, cache, block, chunk.map((_, i) => i), f));
      });
      got.set(await lp.read(), at * V);
      lp.dispose();
      expect(cache.length).toBe(Math.min(at + size, P));
      at += size;
    }
    const masked = ids.map((t, i) => (t === model.maskTokenId ? i : -1)).filter((i) => i >= 0);
    expect(masked.filter((i) => i < P).length).toBeGreaterThan(0); // masks inside the causal prefix too
    for (const r of masked) {
      const row = (x: Float32Array | Int32Array) => x.subarray(r * V, (r + 1) * V);
      expect(maxRelErr(row(got), row(expected), (i) => i === model.maskTokenId), `row ${r}`).toBeLessThan(1e-4);
    }
    cache.dispose();
    model.dispose();
    await g.close();
  }

  it('in one pass: causal prefix, bidirectional masked block', () => blockCausal([]));

  it('through the cache: the prefix fed in pieces gives the same log-probabilities', () => blockCausal([1, 16, 19]));

  it('reading target features (config "target_features"), in one pass and through the cache', async () => {
    await blockCausal([], 'mdlm-tiny-features');
    await blockCausal([1, 16, 19], 'mdlm-tiny-features');
  });

  it('with learned positions and attention biases: in one pass, and through the cache at each piece\'s own positions', async () => {
    await blockCausal([], 'mdlm-tiny-ar-layout');
    await blockCausal([1, 16, 19], 'mdlm-tiny-ar-layout');
  });

  it('reading target features, bidirectional: every masked position matches within 1e-4', async () => {
    const { Tensor } = await import('../src/tensor/tensor.js');
    const { logSoftmax } = await import('../src/tensor/ops/rowwise.js');
    const dev = await getDevice();
    const model = await loadMDLM(dev, dirFolder(FIX + 'mdlm-tiny-features'), { dtype: 'f32' });
    const g = await golden('mdlm-tiny-features');
    const ids = Array.from(await g.get('input_ids'));
    const expected = await g.get('log_probs');
    const features = (await g.get('target_features')) as Float32Array;
    const V = model.vocabSize;
    const masked = ids.map((t, i) => (t === model.maskTokenId ? i : -1)).filter((i) => i >= 0);
    const lp = dev.scope(() => logSoftmax(model.logits(ids, masked, Tensor.from(dev, features, [ids.length, model.config.targetFeatures]))));
    const got = await lp.read();
    masked.forEach((p, r) => {
      const e = expected.subarray(p * V, (p + 1) * V);
      expect(maxRelErr(got.subarray(r * V, (r + 1) * V), e, (i) => i === model.maskTokenId), `row ${p}`).toBeLessThan(1e-4);
    });
    lp.dispose();
    model.dispose();
    await g.close();
  });

  it.each([
    ['mdlm-tiny-head', 'the draft head (config "draft_head")'],
    ['mdlm-tiny-head-features', 'a draft head reading the target\'s state at its first position (config "draft_head_features")'],
    ['mdlm-tiny-ar-layout', 'a draft head (rotary) on a backbone with learned positions and attention biases'],
  ])('%s: %s matches the reference at every drafted position, through one block-causal pass', async (fixture) => {
    const { Tensor } = await import('../src/tensor/tensor.js');
    const { logSoftmax } = await import('../src/tensor/ops/rowwise.js');
    const { slice } = await import('../src/tensor/ops/gather.js');
    const dev = await getDevice();
    const model = await loadMDLM(dev, dirFolder(FIX + fixture), { dtype: 'f32' });
    expect(model.config.draftHead).toBe(true);
    const g = await golden(fixture);
    const ids = Array.from(await g.get('input_ids'));
    const P = (await g.get('block_causal_prefix'))[0];
    const previous = Array.from(await g.get('draft_previous'));
    const expected = await g.get('draft_head_log_probs');
    const width = model.config.draftHeadFeatures;
    const feature = width ? Tensor.from(dev, (await g.get('draft_head_feature')) as Float32Array, [1, width]) : undefined;
    const G = ids.length - P;
    const V = model.vocabSize;
    const cache = model.createCache();
    const headCache = model.createDraftHeadCache();
    const hidden = dev.scope(() => model.hiddenStatesCached(ids, cache, G, Array.from({ length: G }, (_, i) => P + i)));
    for (let i = 0; i < G; i++) {
      const lp = dev.scope(() => logSoftmax(model.draftHeadLogits(slice(hidden, i, i + 1, 0), Tensor.from(dev, Int32Array.of(previous[i]), [1]), headCache, i === 0 ? feature : undefined)));
      expect(maxRelErr(await lp.read(), expected.subarray(i * V, (i + 1) * V), (j) => j === model.maskTokenId), `position ${i}`).toBeLessThan(1e-4);
      lp.dispose();
    }
    expect(headCache.length).toBe(G);
    for (const t of [hidden, cache, headCache, model, feature]) t?.dispose();
    await g.close();
  });

  it('refuses a pass past the model length, naming both', async () => {
    const dev = await getDevice();
    const model = await loadMDLM(dev, dirFolder(FIX + 'mdlm-tiny'), { dtype: 'f32' });
    const cache = model.createCache();
    dev.scope(() => model.logitsCached(new Array(100).fill(1), cache, 0, [0]));
    expect(() => model.logitsCached(new Array(29).fill(1), cache, 4, [0])).toThrow(/100 cached \+ 29 new positions exceed the model length of 128/);
    expect(cache.length).toBe(100);
    cache.dispose();
    model.dispose();
  });
});

describe('autotuning signatures', () => {
  it("the MDLM's name every matmul of a draft pass over W context tokens and γ masks", async () => {
    const { createNodeDevice } = await import('../src/node.js');
    const { setMatmulChoice, tuneKey } = await import('../src/tensor/ops/matmul.js');
    const dev = await createNodeDevice(); // its own device: the tuning table below must not reach other tests
    const model = await loadMDLM(dev, dirFolder(FIX + 'mdlm-tiny'), { dtype: 'f32' });
    const [W, gamma] = [5, 3];
    // Tune every signature to a family no default picks: a matmul the list misses keeps its default kernel.
    for (const s of model.matmulSignatures(gamma, W)) setMatmulChoice(dev, tuneKey(s.layout, s.dtype, s.rows, s.K, s.N), { family: 'gemv-split', split: 2 });
    const keys: string[] = [];
    const dispatch = dev.dispatch.bind(dev);
    dev.dispatch = (spec, ...rest) => {
      keys.push(spec.key);
      dispatch(spec, ...rest);
    };
    const ids = [...Array.from({ length: W }, (_, i) => i + 1), ...new Array(gamma).fill(model.maskTokenId)];
    await model.logits(ids, [W, W + 1, W + 2]).read();
    const matmuls = keys.filter((k) => k.startsWith('matmul_'));
    expect(matmuls.length).toBe(4 * model.config.nBlocks + 1);
    for (const k of matmuls) expect(k).toMatch(/^matmul_gemv-split_/);
    model.dispose();
    dev.gpu.destroy();
  });

  it("a block-causal drafter's name every matmul of its drafts after 1..γ + 1 new tokens", async () => {
    const { createNodeDevice } = await import('../src/node.js');
    const { setMatmulChoice, tuneKey } = await import('../src/tensor/ops/matmul.js');
    const { DiffusionDrafter } = await import('../src/decode/diffusion-drafter.js');
    const { Rng } = await import('../src/decode/rng.js');
    const dev = await createNodeDevice(); // its own device: the tuning table below must not reach other tests
    const model = await loadMDLM(dev, dirFolder(FIX + 'mdlm-tiny'), { dtype: 'f32' });
    const drafter = new DiffusionDrafter(model, { attention: 'block-causal' });
    const gamma = 3;
    for (const s of drafter.matmulSignatures(gamma)) setMatmulChoice(dev, tuneKey(s.layout, s.dtype, s.rows, s.K, s.N), { family: 'gemv-split', split: 2 });
    const keys: string[] = [];
    const dispatch = dev.dispatch.bind(dev);
    dev.dispatch = (spec, ...rest) => {
      keys.push(spec.key);
      dispatch(spec, ...rest);
    };
    const greedy = { temperature: 0, topK: 0, topP: 1 };
    const ctx = [1, 2, 3, 4, 5, 6, 7];
    for (let added = 1; added <= gamma + 1; added++) {
      await dev.scope(() => drafter.draft(ctx, gamma, greedy, new Rng(0))).tokens.read(); // the cache holds ctx
      keys.length = 0;
      await dev.scope(() => drafter.draft([...ctx, ...ctx.slice(0, added)], gamma, greedy, new Rng(0))).tokens.read();
      const matmuls = keys.filter((k) => k.startsWith('matmul_'));
      expect(matmuls.length, `${added} added`).toBe(4 * model.config.nBlocks + 1);
      for (const k of matmuls) expect(k, `${added} added`).toMatch(/^matmul_gemv-split_/);
    }
    drafter.dispose();
    model.dispose();
    dev.gpu.destroy();
  });
});

describe('GPT-2 small shape (154 MB tied embedding, past a 128 MiB binding limit)', () => {
  it('gathers and projects through the split embedding: with zeroed blocks, logits = LN(wte[id] + wpe[pos]) · wteᵀ', async () => {
    const { GPT2 } = await import('../src/models/gpt2.js');
    const { parseGPT2Config } = await import('../src/models/config.js');
    const { memorySource, openSafetensors, writeSafetensors } = await import('../src/models/safetensors.js');
    const { randn } = await import('./helpers/reference.js');
    const dev = await getDevice();
    const [V, d, L, P] = [50257, 768, 2, 64];
    const wte = randn(V * d, 31, 0.05);
    const wpe = randn(P * d, 32, 0.05);
    const t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {
      'wte.weight': { dtype: 'F32', shape: [V, d], data: wte },
      'wpe.weight': { dtype: 'F32', shape: [P, d], data: wpe },
      'ln_f.weight': { dtype: 'F32', shape: [d], data: new Float32Array(d).fill(1) },
      'ln_f.bias': { dtype: 'F32', shape: [d], data: new Float32Array(d) },
    };
    const zero = (name: string, shape: number[]) => (t[name] = { dtype: 'F32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    for (let i = 0; i < L; i++) {
      for (const n of ['ln_1', 'ln_2']) {
        t[`h.${i}.${n}.weight`] = { dtype: 'F32', shape: [d], data: new Float32Array(d).fill(1) };
        zero(`h.${i}.${n}.bias`, [d]);
      }
      zero(`h.${i}.attn.c_attn.weight`, [d, 3 * d]);
      zero(`h.${i}.attn.c_attn.bias`, [3 * d]);
      zero(`h.${i}.attn.c_proj.weight`, [d, d]);
      zero(`h.${i}.attn.c_proj.bias`, [d]);
      zero(`h.${i}.mlp.c_fc.weight`, [d, 4 * d]);
      zero(`h.${i}.mlp.c_fc.bias`, [4 * d]);
      zero(`h.${i}.mlp.c_proj.weight`, [4 * d, d]);
      zero(`h.${i}.mlp.c_proj.bias`, [d]);
    }
    const config = parseGPT2Config({ model_type: 'gpt2', vocab_size: V, n_positions: P, n_embd: d, n_layer: L, n_head: 12 });
    const model = await GPT2.load(dev, await openSafetensors(memorySource(writeSafetensors(t))), config, { dtype: 'f32' });
    expect(V * d * 4).toBeGreaterThan(dev.limits.maxStorageBufferBindingSize);
    const ids = [7, 50000, 43690, 50256]; // both sides of the 128 MiB chunk boundary (row 43690)
    const logits = await model.forward(ids, model.createCache(), ids.length).read();
    for (const [row, id] of ids.entries()) {
      const x = Array.from({ length: d }, (_, j) => wte[id * d + j] + wpe[row * d + j]);
      const mean = x.reduce((a, b) => a + b, 0) / d;
      const sd = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / d + 1e-5);
      const h = x.map((v) => (v - mean) / sd);
      for (const v of [0, id, 43689, 43690, V - 1]) {
        let ref = 0;
        for (let j = 0; j < d; j++) ref += h[j] * wte[v * d + j];
        expect(Math.abs(logits[row * V + v] - ref)).toBeLessThan(1e-4 * (1 + Math.abs(ref)));
      }
    }
    model.dispose();
  });
});
