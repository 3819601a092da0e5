import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor/tensor.js';
import { checkSearch, filteredProbs, gather2d, pickPerRow, residualChain, residualDraws, sampleRows } from '../src/tensor/ops/sample.js';
import { thresholdSearchBytes, type ThresholdSearch } from '../src/shaders/sample.js';
import { getDevice } from './helpers/device.js';
import { expectClose, filteredProbsRef, randn, rng, sampleRef } from './helpers/reference.js';

const GPT2_V = 50257;

/** Indices of the non-zero entries of a row. */
const kept = (p: ArrayLike<number>) => Array.from(p, (v, i) => (v > 0 ? i : -1)).filter((i) => i >= 0);

/** A top-p strictly between the cumulative masses of the j-th and (j+1)-th most likely tokens of softmax(x / T). */
function topPBetween(x: ArrayLike<number>, T: number, j: number): number {
  const p = Array.from(filteredProbsRef(x, x.length, { temperature: T })).sort((a, b) => b - a);
  let c = 0;
  for (let i = 0; i < j; i++) c += p[i];
  return c + p[j] / 2;
}

/** Pearson's chi-square of `draws` against the distribution proportional to `w`; no index of weight 0 may be drawn. */
function chiSquare(draws: ArrayLike<number>, w: ArrayLike<number>): number {
  const counts = new Array(w.length).fill(0);
  for (let i = 0; i < draws.length; i++) counts[draws[i]]++;
  const total = Array.from(w).reduce((a, b) => a + b, 0);
  let chi2 = 0;
  for (let i = 0; i < w.length; i++) {
    const expected = (draws.length * w[i]) / total;
    if (w[i] === 0) expect(counts[i], `draws of index ${i}, of weight 0`).toBe(0);
    else chi2 += (counts[i] - expected) ** 2 / expected;
  }
  return chi2;
}

describe('filteredProbs', () => {
  it('with temperature only is softmax(logits / T) for V = 1, 3, 257, 1000, 50257 (rtol 1e-5: exp)', async () => {
    const dev = await getDevice();
    for (const V of [1, 3, 257, 1000, GPT2_V]) {
      for (const temperature of [1, 0.7]) {
        const x = randn(2 * V, V, 3);
        const out = await filteredProbs(Tensor.from(dev, x, [2, V]), { temperature }).read();
        expectClose(out, filteredProbsRef(x, V, { temperature }), 1e-5, 1e-9);
      }
    }
  });

  it('stays finite for logits in the thousands and a low temperature', async () => {
    const dev = await getDevice();
    const x = randn(1000, 1, 5000);
    const out = await filteredProbs(Tensor.from(dev, x, [1, 1000]), { temperature: 0.1 }).read();
    expectClose(out, filteredProbsRef(x, 1000, { temperature: 0.1 }), 1e-5, 1e-9);
  });

  it('top-k keeps exactly the k most likely tokens, renormalised', async () => {
    const dev = await getDevice();
    for (const [V, k] of [[3, 2], [257, 1], [1000, 40], [GPT2_V, 50]] as const) {
      const x = randn(V, 10 + V, 2);
      const f = { temperature: 0.9, topK: k };
      const out = await filteredProbs(Tensor.from(dev, x, [1, V]), f).read();
      expect(kept(out).length).toBe(k);
      expectClose(out, filteredProbsRef(x, V, f), 1e-5, 1e-9);
    }
  });

  it('top-k keeps every token tied with the k-th (by design)', async () => {
    const dev = await getDevice();
    const x = Float32Array.of(1, 5, 3, 3, 0, 3, 4);
    const out = await filteredProbs(Tensor.from(dev, x, [1, 7]), { temperature: 1, topK: 3 }).read();
    expect(kept(out)).toEqual([1, 2, 3, 5, 6]);
    expectClose(out, filteredProbsRef(x, 7, { temperature: 1, topK: 3 }), 1e-6, 1e-9);
  });

  it('top-k treats −0 and +0 as the same value (both kept when tied with the k-th)', async () => {
    const dev = await getDevice();
    const x = Float32Array.of(-1, -0, 0, -2);
    const out = await filteredProbs(Tensor.from(dev, x, [1, 4]), { temperature: 1, topK: 1 }).read();
    expect(kept(out)).toEqual([1, 2]);
    expectClose(out, [0, 0.5, 0.5, 0], 1e-6, 0);
  });

  it('top-k finds the same tokens whether it searches the tokens at or above its bound or, when more than it gathers tie at the top, the whole row', async () => {
    const dev = await getDevice();
    const V = 8192;
    // The 60 largest all in one invocation's stride (every 64th token): the other invocations' maxima bound them loosely.
    const strided = randn(V, 7, 1);
    for (let j = 0; j < 60; j++) strided[j * 64] = 10 + j / 8;
    // More tokens tied at the top than the search gathers (TOPK_GATHER_CAPACITY): all of them are kept.
    const tied = randn(V, 8, 1);
    for (let i = 0; i < 3000; i++) tied[(i * 7919) % V] = 6;
    // -Infinity logits (masked tokens) below everything kept.
    const masked = randn(V, 9, 2).map((v, i) => (i % 3 === 0 ? -Infinity : v));
    for (const [x, k, keep] of [[strided, 50, 50], [tied, 50, 3000], [masked, 50, 50], [strided, 100, 100]] as const) {
      const f = { temperature: 0.8, topK: k };
      const out = await filteredProbs(Tensor.from(dev, x, [1, V]), f).read();
      expect(kept(out).length).toBe(keep);
      expectClose(out, filteredProbsRef(x, V, f), 1e-5, 1e-9);
    }
  });

  it('top-k of 0 or at least V keeps every token', async () => {
    const dev = await getDevice();
    const x = randn(257, 11);
    for (const topK of [0, 257, 1000]) {
      const out = await filteredProbs(Tensor.from(dev, x, [1, 257]), { temperature: 1, topK }).read();
      expectClose(out, filteredProbsRef(x, 257, { temperature: 1 }), 1e-5, 1e-9);
    }
  });

  it('top-p keeps the smallest set of most likely tokens whose mass reaches p', async () => {
    const dev = await getDevice();
    for (const [V, j] of [[3, 1], [257, 10], [1000, 0], [GPT2_V, 300]] as const) {
      const x = randn(V, 20 + V, 2);
      const topP = topPBetween(x, 1.2, j);
      const f = { temperature: 1.2, topP };
      const out = await filteredProbs(Tensor.from(dev, x, [1, V]), f).read();
      expect(kept(out).length).toBe(j + 1);
      expectClose(out, filteredProbsRef(x, V, f), 1e-5, 1e-9);
    }
  });

  it('top-p keeps every token tied with the last one of the nucleus (by design)', async () => {
    const dev = await getDevice();
    // probabilities ∝ e^2, e^1, e^1, e^1, e^0: p = 0.5 is reached inside the tie.
    const x = Float32Array.of(1, 2, 1, 0, 1);
    const out = await filteredProbs(Tensor.from(dev, x, [1, 5]), { temperature: 1, topP: 0.5 }).read();
    expect(kept(out)).toEqual([0, 1, 2, 4]);
    expectClose(out, filteredProbsRef(x, 5, { temperature: 1, topP: 0.5 }), 1e-6, 1e-9);
  });

  it('top-k and top-p together: top-p applies to the renormalised top-k set', async () => {
    const dev = await getDevice();
    const V = 1000;
    const x = randn(V, 30, 2);
    // Mass of the first 6 of the top-40 tokens, renormalised over those 40.
    const top40 = Array.from(filteredProbsRef(x, V, { temperature: 1, topK: 40 })).sort((a, b) => b - a);
    const topP = top40.slice(0, 6).reduce((a, b) => a + b, 0) + top40[6] / 2;
    const f = { temperature: 1, topK: 40, topP };
    const out = await filteredProbs(Tensor.from(dev, x, [1, V]), f).read();
    expect(kept(out).length).toBe(7);
    expectClose(out, filteredProbsRef(x, V, f), 1e-5, 1e-9);
  });

  it('compiles only the filters a dispatch applies: one kernel per combination of top-k and top-p', async () => {
    const dev = await getDevice();
    const x = Tensor.from(dev, randn(300, 47, 2), [1, 300]);
    const keys = (f: Parameters<typeof filteredProbs>[1]) => dev.collectKernels(() => filteredProbs(x, f)).map((k) => k.key);
    const none = keys({ temperature: 1 });
    const topK = keys({ temperature: 1, topK: 5 });
    const topP = keys({ temperature: 1, topP: 0.5 });
    const both = keys({ temperature: 1, topK: 5, topP: 0.5 });
    expect(new Set([...none, ...topK, ...topP, ...both]).size).toBe(4);
    expect(keys({ temperature: 0.7, topK: 300 })).toEqual(none); // k >= V keeps every token: no search
    expect(keys({ temperature: 1, topK: 0, topP: 1 })).toEqual(none);
  });

  it('filters each row independently', async () => {
    const dev = await getDevice();
    const V = 257;
    const x = randn(3 * V, 31, 2);
    x.fill(0, V, 2 * V); // a flat row: every token tied
    const f = { temperature: 1, topK: 5 };
    const out = await filteredProbs(Tensor.from(dev, x, [3, V]), f).read();
    expect(kept(out.subarray(V, 2 * V)).length).toBe(V);
    expectClose(out, filteredProbsRef(x, V, f), 1e-5, 1e-9);
  });

  it('every threshold search (1, 2 or 4 bits per pass, workgroups of 32 to 256) keeps what the reference keeps', async () => {
    const dev = await getDevice();
    const V = 5000;
    const x = randn(2 * V, 41, 2);
    x.fill(0.75, V, V + 300); // the second row: 300 tokens tied at its top
    const ties = Float32Array.of(1, 5, 3, 3, 0, 3, 4);
    const searches: ThresholdSearch[] = [1, 2, 4].flatMap((digitBits) => [32, 64, 128, 256].map((wg) => ({ digitBits, wg }) as ThresholdSearch));
    for (const search of searches.filter((s) => thresholdSearchBytes(s) <= dev.limits.maxComputeWorkgroupStorageSize)) {
      // Top-k and top-p each exercise one search (the kernel that applies both is tested above with the default one).
      for (const f of [{ temperature: 0.8, topK: 50 }, { temperature: 0.8, topK: 301 }, { temperature: 1.1, topP: 0.6 }]) {
        const out = await filteredProbs(Tensor.from(dev, x, [2, V]), f, search).read();
        expectClose(out, filteredProbsRef(x, V, f), 1e-5, 1e-9);
      }
      const tied = await filteredProbs(Tensor.from(dev, ties, [1, 7]), { temperature: 1, topK: 3 }, search).read();
      expect(kept(tied), JSON.stringify(search)).toEqual([1, 2, 3, 5, 6]);
    }
  });

  it('with a draw, also draws from each row it writes the index sampleRows would draw, in the same dispatch, in workgroups of 32 to 256', async () => {
    const dev = await getDevice();
    const [rows, V] = [3, 5000];
    const x = randn(rows * V, 43, 2);
    const r = rng(44);
    const u = Float32Array.from({ length: rows }, () => r());
    // The draw's code depends on the workgroup size only: every size with top-k, the default search with the other filters.
    const sizes = ([32, 64, 128, 256] as const).map((wg) => [{ digitBits: 2, wg } as ThresholdSearch, { temperature: 0.8, topK: 50 }] as const);
    const filters = [{ temperature: 1 }, { temperature: 1.1, topP: 0.6 }].map((f) => [dev.tuning.thresholdSearch, f] as const);
    for (const [search, f] of [...sizes, ...filters]) {
      if (thresholdSearchBytes(search) > dev.limits.maxComputeWorkgroupStorageSize) continue;
      // Rows 1, 3, 5 of q and of the ids.
      const q = Tensor.empty(dev, [2 * rows, V]);
      const ids = Tensor.from(dev, new Int32Array(2 * rows).fill(-7), [2 * rows]);
      const before = dev.dispatchCount;
      filteredProbs(Tensor.from(dev, x, [rows, V]), f, search, { into: { tensor: q, row: 1, stride: 2 }, draw: { uniforms: Tensor.from(dev, u, [rows]), ids: { tensor: ids, row: 1, stride: 2 } } });
      expect(dev.dispatchCount - before).toBe(1);
      const [probs, drawn] = [await q.read(), await ids.read()];
      const want = filteredProbsRef(x, V, f);
      for (let i = 0; i < rows; i++) {
        const row = probs.subarray((2 * i + 1) * V, (2 * i + 2) * V);
        expectClose(row, want.subarray(i * V, (i + 1) * V), 1e-5, 1e-9);
        expect(drawn[2 * i + 1], JSON.stringify({ search, f, i })).toBe(sampleRef(row, u[i]));
        expect(drawn[2 * i]).toBe(-7);
      }
    }
  });

  it('with a draw, draws follow the filtered distribution: 20000 draws pass a chi-square test, and no filtered-out token is drawn', async () => {
    const dev = await getDevice();
    const logits = Float32Array.of(0.5, 2, -1, 1.5, 0.1, 1, -3, 0.7, 1.2);
    const V = logits.length;
    const N = 20000;
    const x = new Float32Array(N * V);
    for (let i = 0; i < N; i++) x.set(logits, i * V);
    const r = rng(45);
    const u = Float32Array.from({ length: N }, () => r());
    const f = { temperature: 0.9, topK: 5 };
    const ids = Tensor.empty(dev, [N], 'i32');
    filteredProbs(Tensor.from(dev, x, [N, V]), f, undefined, { draw: { uniforms: Tensor.from(dev, u, [N]), ids: { tensor: ids, row: 0 } } });
    const chi2 = chiSquare(await ids.read(), filteredProbsRef(logits, V, f));
    // 4 degrees of freedom: P(chi2 > 18.5) = 0.001.
    expect(chi2).toBeLessThan(18.5);
  });

  it('with a draw, rejects a uniform count that is not the row count and ids that are not i32 rows inside their tensor', async () => {
    const dev = await getDevice();
    const x = Tensor.from(dev, new Float32Array(8), [2, 4]);
    const ids = { tensor: Tensor.empty(dev, [2], 'i32'), row: 0 };
    expect(() => filteredProbs(x, { temperature: 1 }, undefined, { draw: { uniforms: Tensor.from(dev, [0.5], [1]), ids } })).toThrow(/draw needs 2 f32 uniforms/);
    expect(() => filteredProbs(x, { temperature: 1 }, undefined, { draw: { uniforms: Tensor.from(dev, [0.5, 0.5], [2]), ids: { ...ids, row: 1 } } })).toThrow(/run past/);
    expect(() => filteredProbs(x, { temperature: 1 }, undefined, { draw: { uniforms: Tensor.from(dev, [0.5, 0.5], [2]), ids: { tensor: Tensor.empty(dev, [2]), row: 0 } } })).toThrow(/must be i32/);
  });

  it('refuses a threshold search that does not fit the workgroup memory (naming the bytes) or that it does not have', () => {
    expect(() => checkSearch({ digitBits: 4, wg: 256 }, 16384)).toThrow(/needs 27848 bytes of workgroup memory; this device allows 16384/);
    expect(() => checkSearch({ digitBits: 4, wg: 128 }, 16384)).not.toThrow();
    expect(() => checkSearch({ digitBits: 3 as never, wg: 64 }, 16384)).toThrow(/digitBits must be 1, 2 or 4/);
    expect(() => checkSearch({ digitBits: 2, wg: 48 as never }, 16384)).toThrow(/wg must be/);
  });

  it('rejects a non-positive temperature and a top-p outside (0, 1]', async () => {
    const dev = await getDevice();
    const x = Tensor.from(dev, new Float32Array(4), [1, 4]);
    expect(() => filteredProbs(x, { temperature: 0 })).toThrow(RangeError);
    expect(() => filteredProbs(x, { temperature: 1, topP: 0 })).toThrow(RangeError);
    expect(() => filteredProbs(x, { temperature: 1, topK: -1 })).toThrow(RangeError);
  });
});

describe('sampleRows', () => {
  /** u placing u·total in the middle of index i's interval of the cumulative weights. */
  function uniformFor(w: ArrayLike<number>, i: number): number {
    let before = 0;
    let total = 0;
    for (let j = 0; j < w.length; j++) {
      total += Math.max(w[j], 0);
      if (j < i) before += Math.max(w[j], 0);
    }
    return (before + w[i] / 2) / total;
  }

  it('picks exactly the inverse-CDF index for every index of a row of V = 1, 3, 257, 1000', async () => {
    const dev = await getDevice();
    for (const V of [1, 3, 257, 1000]) {
      const w = randn(V, V).map((v) => Math.abs(v) + 0.01); // sums to about 0.8·V, not 1
      const weights = new Float32Array(V * V);
      for (let r = 0; r < V; r++) weights.set(w, r * V);
      const u = Float32Array.from({ length: V }, (_, i) => uniformFor(w, i));
      const out = await sampleRows(Tensor.from(dev, weights, [V, V]), Tensor.from(dev, u, [V])).read();
      expect(Array.from(out)).toEqual(Array.from({ length: V }, (_, i) => i));
    }
  });

  it('picks the inverse-CDF index in a 50257-wide row', async () => {
    const dev = await getDevice();
    const w = randn(GPT2_V, 2).map((v) => v * v);
    const picks = [0, 1, 255, 256, 20000, GPT2_V - 2, GPT2_V - 1];
    const weights = new Float32Array(picks.length * GPT2_V);
    for (let r = 0; r < picks.length; r++) weights.set(w, r * GPT2_V);
    const u = Float32Array.from(picks, (i) => uniformFor(w, i));
    const out = await sampleRows(Tensor.from(dev, weights, [picks.length, GPT2_V]), Tensor.from(dev, u, [picks.length])).read();
    expect(Array.from(out)).toEqual(picks);
  });

  it('never picks a zero-weight token at the edges of a row: u = 0 gives the first non-zero, u → 1 the last', async () => {
    const dev = await getDevice();
    for (const V of [3, 257, GPT2_V]) {
      const w = new Float32Array(V);
      const [first, last] = V === 3 ? [1, 1] : [Math.floor(V / 3), V - 7];
      for (let i = first; i <= last; i++) w[i] = 0.5 + (i % 7);
      const weights = new Float32Array(3 * V);
      for (let r = 0; r < 3; r++) weights.set(w, r * V);
      const u = Float32Array.of(0, 0.99999994, uniformFor(w, last));
      const out = await sampleRows(Tensor.from(dev, weights, [3, V]), Tensor.from(dev, u, [3])).read();
      expect(Array.from(out)).toEqual([first, last, last]);
    }
  });

  it('picks inside the right span when the element-by-element running sum rounds below the goal', async () => {
    const dev = await getDevice();
    // V = 512: each of the 256 invocations sums a span of 2. Span 1 holds 2^-24 twice: its sum
    // 2^-23 takes the running total past the goal 0.5 · 2 = 1, but 1 + 2^-24 rounds back to 1 on
    // each element. The draw belongs to index 3 (cumulative 1 + 2^-23 > 1), never to the row's
    // last non-zero token 511.
    const w = new Float32Array(512);
    w[0] = 1;
    w[2] = w[3] = 2 ** -24;
    w[511] = 1;
    const out = await sampleRows(Tensor.from(dev, w, [1, 512]), Tensor.from(dev, [0.5], [1])).read();
    expect(Array.from(out)).toEqual([3]);
  });

  it('treats negative weights as zero', async () => {
    const dev = await getDevice();
    const w = Float32Array.of(-5, 1, -1, 1, -2);
    const u = Float32Array.of(0, 0.49, 0.51, 0.99);
    const weights = new Float32Array(4 * 5);
    for (let r = 0; r < 4; r++) weights.set(w, r * 5);
    const out = await sampleRows(Tensor.from(dev, weights, [4, 5]), Tensor.from(dev, u, [4])).read();
    expect(Array.from(out)).toEqual([1, 1, 3, 3]);
  });

  it('matches the reference for random uniforms on random rows', async () => {
    const dev = await getDevice();
    const [rows, V] = [64, 1000];
    const w = randn(rows * V, 3).map((v) => Math.max(v, 0) ** 2); // about half the weights zero
    const r = rng(4);
    const u = Float32Array.from({ length: rows }, () => r());
    const out = await sampleRows(Tensor.from(dev, w, [rows, V]), Tensor.from(dev, u, [rows])).read();
    expect(Array.from(out)).toEqual(Array.from({ length: rows }, (_, i) => sampleRef(w.subarray(i * V, (i + 1) * V), u[i])));
  });

  it('draws follow the distribution: 20000 draws pass a chi-square test', async () => {
    const dev = await getDevice();
    const w = Float32Array.of(0, 3, 1, 0.5, 0, 2, 0.25, 0, 1.25);
    const V = w.length;
    const N = 20000;
    const weights = new Float32Array(N * V);
    for (let r = 0; r < N; r++) weights.set(w, r * V);
    const r = rng(5);
    const u = Float32Array.from({ length: N }, () => r());
    const chi2 = chiSquare(await sampleRows(Tensor.from(dev, weights, [N, V]), Tensor.from(dev, u, [N])).read(), w);
    // 5 degrees of freedom: P(chi2 > 20.5) = 0.001.
    expect(chi2).toBeLessThan(20.5);
  });

  it('rejects a uniform count that is not the row count', async () => {
    const dev = await getDevice();
    const w = Tensor.from(dev, new Float32Array(6), [2, 3]);
    expect(() => sampleRows(w, Tensor.from(dev, [0.5], [1]))).toThrow(/needs 2 f32 uniforms/);
  });
});

describe('residualDraws', () => {
  /** Random distributions [rows, V] (about half the tokens zero). */
  function distributions(rows: number, V: number, seed: number): Float32Array {
    const w = randn(rows * V, seed).map((v) => Math.max(v, 0) ** 2);
    for (let r = 0; r < rows; r++) {
      const row = w.subarray(r * V, (r + 1) * V);
      const total = row.reduce((a, b) => a + b, 0);
      row.forEach((v, i) => (row[i] = v / total));
    }
    return w;
  }

  it("gives each position's p(d) and q(d) and the residual max(0, p − q) draw sampleRows would make, reading γ of p's γ + 1 rows", async () => {
    const dev = await getDevice();
    const [g, V] = [5, 1000];
    const p = distributions(g + 1, V, 51);
    const q = distributions(g, V, 52);
    const draft = Int32Array.from({ length: g }, (_, i) => (97 * i + 13) % V);
    const r = rng(53);
    const u = Float32Array.from({ length: g }, () => r());
    const out = residualDraws(Tensor.from(dev, p, [g + 1, V]), Tensor.from(dev, q, [g, V]), Tensor.from(dev, draft, [g]), Tensor.from(dev, u, [g]));
    const [px, qx, draws] = [await out.px.read(), await out.qx.read(), await out.draws.read()];
    for (let i = 0; i < g; i++) {
      expect(px[i]).toBe(p[i * V + draft[i]]);
      expect(qx[i]).toBe(q[i * V + draft[i]]);
      const residual = Float32Array.from({ length: V }, (_, j) => Math.fround(p[i * V + j] - q[i * V + j]));
      expect(draws[i], `position ${i}`).toBe(sampleRef(residual, u[i]));
    }
  });

  it('never draws a token where q ≥ p: 20000 residual draws pass a chi-square test against norm(max(0, p − q))', async () => {
    const dev = await getDevice();
    const pRow = Float32Array.of(0.3, 0.1, 0.25, 0.05, 0.3);
    const qRow = Float32Array.of(0.1, 0.3, 0.05, 0.05, 0.5);
    const V = pRow.length;
    const N = 20000;
    const [p, q] = [new Float32Array(N * V), new Float32Array(N * V)];
    for (let i = 0; i < N; i++) [p.set(pRow, i * V), q.set(qRow, i * V)];
    const r = rng(54);
    const u = Float32Array.from({ length: N }, () => r());
    const out = residualDraws(Tensor.from(dev, p, [N, V]), Tensor.from(dev, q, [N, V]), Tensor.from(dev, new Int32Array(N), [N]), Tensor.from(dev, u, [N]));
    const chi2 = chiSquare(await out.draws.read(), Array.from(pRow, (v, i) => Math.max(v - qRow[i], 0)));
    // 1 degree of freedom (tokens 0 and 2): P(chi2 > 10.8) = 0.001.
    expect(chi2).toBeLessThan(10.8);
  });

  it("block verification: each row's residual is weighted by its drafted prefix's weight, and its mass is returned", async () => {
    const dev = await getDevice();
    const [g, V] = [6, 700];
    const p = distributions(g + 1, V, 55);
    const q = distributions(g, V, 56);
    // Drafted tokens where q is above p and below it, so that the weights fall below 1 and recover.
    const draft = Int32Array.from({ length: g }, (_, i) => {
      const row = (j: number) => (i % 2 ? p[i * V + j] > 2 * q[i * V + j] : q[i * V + j] > 2 * p[i * V + j] && p[i * V + j] > 0);
      return Array.from({ length: V }, (_, j) => j).find(row)!;
    });
    const r = rng(57);
    const u = Float32Array.from({ length: g }, () => r());
    const out = residualDraws(Tensor.from(dev, p, [g + 1, V]), Tensor.from(dev, q, [g, V]), Tensor.from(dev, draft, [g]), Tensor.from(dev, u, [g]), { block: true });
    const [draws, mass] = [await out.draws.read(), await out.mass!.read()];
    // The kernel's f32 arithmetic: w_i = min(1, w_{i-1} · (p / q)).
    let w = 1;
    const weights: number[] = [];
    for (let i = 0; i < g; i++) {
      weights.push(w);
      w = Math.fround(Math.min(1, Math.fround(w * Math.fround(p[i * V + draft[i]] / q[i * V + draft[i]]))));
    }
    expect(weights.some((v) => v < 0.5), 'a weight below 1/2').toBe(true);
    expect(weights.slice(1).some((v, i) => v > weights[i]), 'a weight that recovers').toBe(true);
    for (let i = 0; i < g; i++) {
      const residual = Float32Array.from({ length: V }, (_, j) => Math.fround(Math.fround(weights[i] * p[i * V + j]) - q[i * V + j]));
      const total = residual.reduce((a, v) => a + Math.max(v, 0), 0);
      expect(mass[i], `position ${i}`).toBeCloseTo(total, 5);
      expect(draws[i], `position ${i}`).toBe(sampleRef(residual, u[i]));
    }
  });

  it('rejects q, p or uniforms that do not match the drafted tokens', async () => {
    const dev = await getDevice();
    const draft = Tensor.from(dev, Int32Array.of(0, 1), [2]);
    const rows = (n: number) => Tensor.from(dev, new Float32Array(n * 4), [n, 4]);
    const u = Tensor.from(dev, [0.5, 0.5], [2]);
    expect(() => residualDraws(rows(3), rows(3), draft, u)).toThrow(/2 i32 drafted tokens need 2 rows of q/);
    expect(() => residualDraws(rows(1), rows(2), draft, u)).toThrow(/at least 2 of p/);
    expect(() => residualDraws(rows(3), rows(2), draft, Tensor.from(dev, [0.5], [1]))).toThrow(/needs 2 f32 uniforms/);
  });
});

describe('gather2d', () => {
  it('picks x[rows[i], cols[i]] from 50257-wide rows', async () => {
    const dev = await getDevice();
    const x = randn(3 * GPT2_V, 6);
    const r = [0, 2, 1, 2, 0];
    const c = [0, GPT2_V - 1, 12345, 256, 50000];
    const out = gather2d(Tensor.from(dev, x, [3, GPT2_V]), Tensor.from(dev, Int32Array.from(r), [5]), Tensor.from(dev, Int32Array.from(c), [5]));
    expect(Array.from(await out.read())).toEqual(r.map((row, i) => x[row * GPT2_V + c[i]]));
  });

  it('pickPerRow takes x[i, cols[i]] from the first cols.size rows', async () => {
    const dev = await getDevice();
    const x = randn(4 * 257, 9);
    const c = [256, 0, 100];
    const out = pickPerRow(Tensor.from(dev, x, [4, 257]), Tensor.from(dev, Int32Array.from(c), [3]));
    expect(Array.from(await out.read())).toEqual(c.map((col, i) => x[i * 257 + col]));
  });

  it('handles more indices than one workgroup (n = 1000)', async () => {
    const dev = await getDevice();
    const x = randn(4 * 257, 7);
    const rr = rng(8);
    const r = Int32Array.from({ length: 1000 }, () => Math.floor(rr() * 4));
    const c = Int32Array.from({ length: 1000 }, () => Math.floor(rr() * 257));
    const out = gather2d(Tensor.from(dev, x, [4, 257]), Tensor.from(dev, r, [1000]), Tensor.from(dev, c, [1000]));
    expect(Array.from(await out.read())).toEqual(Array.from(r, (row, i) => x[row * 257 + c[i]]));
  });
});

describe('residualChain', () => {
  /** Rows of random probabilities (a few zeros, so residuals run out of mass too). */
  function distributions(rows: number, V: number, seed: number): Float32Array {
    const x = randn(rows * V, seed, 2);
    for (let r = 0; r < rows; r++) {
      const row = x.subarray(r * V, (r + 1) * V);
      let s = 0;
      for (let i = 0; i < V; i++) s += row[i] = i % 7 === 3 ? 0 : Math.exp(row[i]);
      for (let i = 0; i < V; i++) row[i] /= s;
    }
    return x;
  }

  // Rows with 0 to 4 candidates, a repeated token among them (its second test after a rejection sees r(x) = 0).
  for (const V of [5, 300, GPT2_V]) {
    it(`gives each candidate's (r(x), q(x)) along its row's chain of residuals, and the last residual, V = ${V}`, async () => {
      const dev = await getDevice();
      const [n, qRows] = [4, 6];
      const p = distributions(n, V, 91);
      const q = distributions(qRows, V, 92);
      const candidates: Array<Array<readonly [number, number]>> = [
        [[0, 1], [3, 1], [5, V - 1]],
        [],
        [[2, 2 % V]],
        [[1, 0], [4, 4 % V], [1, 0], [2, V - 2]],
      ];
      const { probe, residual } = residualChain(Tensor.from(dev, p, [n, V]), Tensor.from(dev, q, [qRows, V]), candidates);
      const [pr, res] = [await probe.read(), await residual.read()];
      const width = pr.length / (2 * n);
      candidates.forEach((list, u) => {
        let r = Array.from(p.subarray(u * V, (u + 1) * V));
        list.forEach(([qRow, x], j) => {
          const qr = q.subarray(qRow * V, (qRow + 1) * V);
          expectClose([pr[2 * (u * width + j)], pr[2 * (u * width + j) + 1]], [r[x], qr[x]], 1e-4, 1e-6);
          const next = r.map((v, i) => Math.max(0, v - qr[i]));
          const s = next.reduce((a, b) => a + b, 0);
          r = next.map((v) => (s > 0 ? v / s : 0));
        });
        const got = res.subarray(u * V, (u + 1) * V);
        const total = Array.from(got).reduce((a, b) => a + b, 0);
        expectClose(Array.from(got, (v) => v / total), r, 1e-3, 1e-6);
      });
    });
  }

  it('refuses a candidate outside q\'s rows or the vocabulary, and a list per row that does not match', async () => {
    const dev = await getDevice();
    const p = Tensor.from(dev, new Float32Array(2 * 8), [2, 8]);
    const q = Tensor.from(dev, new Float32Array(3 * 8), [3, 8]);
    expect(() => residualChain(p, q, [[[3, 0]], []])).toThrow(/q row 3 of 3/);
    expect(() => residualChain(p, q, [[[0, 8]], []])).toThrow(/token 8 of 8/);
    expect(() => residualChain(p, q, [[]])).toThrow(/one list per row/);
  });
});
