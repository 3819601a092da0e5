import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor/tensor.js';
import { argmax, argmaxProb, embeddingAddLayerNorm, layerNorm, logSoftmax, softmax } from '../src/tensor/ops/rowwise.js';
import { ShapeError } from '../src/tensor/errors.js';
import { getDevice } from './helpers/device.js';
import { argmaxRef, expectClose, layerNormRef, randn, softmaxRef } from './helpers/reference.js';

const sum = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0);

// [rows, D]: one element, D not a multiple of 4 or of the 64/256-wide workgroups, GPT-2 width,
// and rows wider than 2048 (LayerNorm's wider workgroup).
const SHAPES: Array<[number, number]> = [
  [1, 1],
  [4, 3],
  [3, 257],
  [2, 1000],
  [1, 768],
  [2, 4099],
];

describe('layerNorm', () => {
  it('without weight or bias normalises each row to zero mean and unit variance', async () => {
    const dev = await getDevice();
    for (const [rows, D] of SHAPES) {
      const x = randn(rows * D, D, 2);
      const out = layerNorm(Tensor.from(dev, x, [rows, D]));
      expectClose(await out.read(), layerNormRef(x, D), 1e-5, 1e-5);
    }
  });

  it('applies an f32 weight and bias per column', async () => {
    const dev = await getDevice();
    for (const [rows, D] of SHAPES) {
      const x = randn(rows * D, D + 1);
      const w = randn(D, D + 2);
      const b = randn(D, D + 3);
      const out = layerNorm(Tensor.from(dev, x, [rows, D]), { weight: Tensor.from(dev, w, [D]), bias: Tensor.from(dev, b, [D]) });
      expectClose(await out.read(), layerNormRef(x, D, w, b), 1e-5, 1e-5);
    }
  });

  it('applies a weight alone when there is no bias', async () => {
    const dev = await getDevice();
    const [rows, D] = [3, 257];
    const x = randn(rows * D, 7);
    const w = randn(D, 8);
    const out = layerNorm(Tensor.from(dev, x, [rows, D]), { weight: Tensor.from(dev, w, [D]) });
    expectClose(await out.read(), layerNormRef(x, D, w), 1e-5, 1e-5);
  });

  it('reads an f16 weight and bias, with or without shader-f16 (packed words)', async () => {
    const dev = await getDevice();
    const [rows, D] = [3, 257];
    const x = randn(rows * D, 9);
    const wt = Tensor.from(dev, randn(D, 10), [D], 'f16');
    const bt = Tensor.from(dev, randn(D, 11), [D], 'f16');
    const [w16, b16] = [await wt.read(), await bt.read()];
    const out = layerNorm(Tensor.from(dev, x, [rows, D]), { weight: wt, bias: bt });
    expectClose(await out.read(), layerNormRef(x, D, w16, b16), 1e-5, 1e-5);
  });

  it('uses the given eps', async () => {
    const dev = await getDevice();
    const x = randn(2 * 5, 12, 0.1);
    const out = layerNorm(Tensor.from(dev, x, [2, 5]), { eps: 0.5 });
    expectClose(await out.read(), layerNormRef(x, 5, undefined, undefined, 0.5), 1e-5, 1e-6);
  });

  it('stays accurate for rows with a large mean (two-pass statistics)', async () => {
    const dev = await getDevice();
    const D = 1000;
    const x = randn(D, 13).map((v) => 1000 + v);
    const out = layerNorm(Tensor.from(dev, x, [1, D]));
    // x itself is rounded to f32 around 1000 (ulp 6e-5), so the reference sees the same inputs.
    expectClose(await out.read(), layerNormRef(x, D), 1e-4, 1e-4);
  });

  it('rejects a weight whose size is not the row length', async () => {
    const dev = await getDevice();
    const x = Tensor.from(dev, new Float32Array(6), [2, 3]);
    expect(() => layerNorm(x, { weight: Tensor.from(dev, new Float32Array(2), [2]) })).toThrow(/must have 3 elements/);
  });
});

describe('embeddingAddLayerNorm', () => {
  /** table[ids] + residual rows (one row for all when residual has one), and its LayerNorm, on the CPU. */
  function reference(table: Float32Array, D: number, ids: number[], residual: Float32Array, w?: Float32Array, b?: Float32Array) {
    const rows = table.length / D;
    const sum = new Float32Array(ids.length * D);
    ids.forEach((id, r) => {
      const res = residual.length === D ? 0 : r * D;
      for (let i = 0; i < D; i++) sum[r * D + i] = (id >= 0 && id < rows ? table[id * D + i] : 0) + residual[res + i];
    });
    return { sum, normed: layerNormRef(sum, D, w, b) };
  }

  it('gives table rows plus residual rows and their LayerNorm, for every width LayerNorm runs', async () => {
    const dev = await getDevice();
    for (const [n, D] of [[1, 1], [3, 257], [2, 1000]] as const) {
      const table = randn(5 * D, 21);
      const residual = randn(n * D, 22);
      const [w, b] = [randn(D, 23), randn(D, 24)];
      const ids = Array.from({ length: n }, (_, i) => (3 * i + 1) % 5);
      const out = embeddingAddLayerNorm(Tensor.from(dev, table, [5, D]), Tensor.from(dev, Int32Array.from(ids), [n]), Tensor.from(dev, residual, [n, D]), {
        weight: Tensor.from(dev, w, [D]),
        bias: Tensor.from(dev, b, [D]),
      });
      const want = reference(table, D, ids, residual, w, b);
      expectClose(await out.sum.read(), want.sum, 1e-6, 1e-6);
      expectClose(await out.normed.read(), want.normed, 1e-5, 1e-5);
    }
  });

  it('adds a one-row residual to every row, reads ids in place from rows of a larger tensor, and an id outside the table reads zeros', async () => {
    const dev = await getDevice();
    const D = 64;
    const table = randn(4 * D, 25);
    const residual = randn(D, 26);
    // ids 2, 7 (outside), 0 at rows 1, 3, 5 of a [6] tensor.
    const all = Int32Array.of(9, 2, 9, 7, 9, 0);
    const out = embeddingAddLayerNorm(Tensor.from(dev, table, [4, D]), { tensor: Tensor.from(dev, all, [6]), row: 1, stride: 2, count: 3 }, Tensor.from(dev, residual, [1, D]));
    const want = reference(table, D, [2, 7, 0], residual);
    expectClose(await out.sum.read(), want.sum, 1e-6, 1e-6);
    expectClose(await out.normed.read(), want.normed, 1e-5, 1e-5);
  });

  it("reads an f16 table (as the backbone's token embedding) and residual rows from residualRow on (its learned positions)", async () => {
    const dev = await getDevice();
    const [n, D, rows] = [3, 96, 7];
    const table = Tensor.from(dev, randn(rows * D, 27), [rows, D], 'f16');
    const halves = (await table.read()) as Float32Array;
    const positions = randn(10 * D, 28);
    const ids = [6, 0, 3];
    const out = embeddingAddLayerNorm(table, Tensor.from(dev, Int32Array.from(ids), [n]), Tensor.from(dev, positions, [10, D]), { residualRow: 4 });
    const want = reference(halves, D, ids, positions.subarray(4 * D, 7 * D));
    expectClose(await out.sum.read(), want.sum, 1e-6, 1e-6);
    expectClose(await out.normed.read(), want.normed, 1e-5, 1e-5);
  });

  it('rejects an i32 table and residual rows past the residual with typed errors naming them', async () => {
    const dev = await getDevice();
    const ids = Tensor.from(dev, Int32Array.of(0, 1), [2]);
    const residual = Tensor.from(dev, new Float32Array(16), [2, 8]);
    expect(() => embeddingAddLayerNorm(Tensor.from(dev, new Int32Array(32), [4, 8], 'i32'), ids, residual)).toThrow(ShapeError);
    expect(() => embeddingAddLayerNorm(Tensor.from(dev, new Float32Array(32), [4, 8]), ids, Tensor.from(dev, new Float32Array(24), [3, 8]), { residualRow: 2 })).toThrow(/residual must be f32 rows of 8 holding rows 2..3/);
  });
});

describe('softmax and logSoftmax', () => {
  it('softmax matches the reference for every shape (rtol 1e-5: exp)', async () => {
    const dev = await getDevice();
    for (const [rows, D] of SHAPES) {
      const x = randn(rows * D, 20 + D, 3);
      expectClose(await softmax(Tensor.from(dev, x, [rows, D])).read(), softmaxRef(x, D), 1e-5, 1e-8);
    }
  });

  it('softmax applies alpha before the exponential, including a negative alpha', async () => {
    const dev = await getDevice();
    const [rows, D] = [3, 257];
    const x = randn(rows * D, 21, 3);
    for (const alpha of [0.125, 2.5, -1]) {
      expectClose(await softmax(Tensor.from(dev, x, [rows, D]), alpha).read(), softmaxRef(x, D, alpha), 1e-5, 1e-8);
    }
  });

  it('softmax of logits in the thousands neither overflows nor underflows to NaN', async () => {
    const dev = await getDevice();
    const D = 1000;
    const x = randn(D, 22, 3000);
    const out = await softmax(Tensor.from(dev, x, [1, D])).read();
    expectClose(out, softmaxRef(x, D), 1e-5, 1e-8);
    expect(sum(out)).toBeCloseTo(1, 5);
  });

  it('softmax of a 50257-wide row sums to one and matches the reference', async () => {
    const dev = await getDevice();
    const V = 50257;
    const x = randn(V, 23, 4);
    const out = await softmax(Tensor.from(dev, x, [1, V])).read();
    expectClose(out, softmaxRef(x, V), 1e-5, 1e-10);
    expect(sum(out)).toBeCloseTo(1, 5);
  });

  it('logSoftmax matches the reference for every shape and alpha (atol 1e-5: log of a sum)', async () => {
    const dev = await getDevice();
    for (const [rows, D] of SHAPES) {
      const x = randn(rows * D, 30 + D, 3);
      for (const alpha of [1, 0.5, -2]) {
        expectClose(await logSoftmax(Tensor.from(dev, x, [rows, D]), alpha).read(), softmaxRef(x, D, alpha, true), 1e-5, 1e-5);
      }
    }
  });

  it('logSoftmax stays finite for logits far below the maximum', async () => {
    const dev = await getDevice();
    const x = Float32Array.of(0, -1e4, 5e3, -3e4, 1);
    expectClose(await logSoftmax(Tensor.from(dev, x, [1, 5])).read(), softmaxRef(x, 5, 1, true), 1e-6, 1e-5);
  });
});

describe('argmax', () => {
  it('matches the reference for every shape, as i32 with the last axis dropped', async () => {
    const dev = await getDevice();
    for (const [rows, D] of [...SHAPES, [1, 50257] as [number, number]]) {
      const x = randn(rows * D, 40 + D);
      const out = argmax(Tensor.from(dev, x, [rows, D]));
      expect(out.shape).toEqual([rows]);
      expect(out.dtype).toBe('i32');
      expect(Array.from(await out.read())).toEqual(Array.from(argmaxRef(x, D)));
    }
  });

  it('returns the first index among tied maxima, also when ties are in different invocations\' strides', async () => {
    const dev = await getDevice();
    const D = 1000;
    const rows = [
      [999, 3], // invocation 231 holds 999, invocation 3 holds 3
      [700, 444, 188], // all three in invocation 188's stride
      [600, 89], // the later index in a lower invocation (88), the earlier in a higher one (89)
      [5, 261], // both in invocation 5's stride
    ];
    const x = new Float32Array(rows.length * D).fill(-1);
    rows.forEach((idx, r) => idx.forEach((i) => (x[r * D + i] = 2)));
    const out = await argmax(Tensor.from(dev, x, [rows.length, D])).read();
    expect(Array.from(out)).toEqual([3, 188, 89, 5]);
  });

  it('returns 0 for a row of equal values and for negative rows', async () => {
    const dev = await getDevice();
    const x = Float32Array.from([...new Array(257).fill(-7), ...new Array(257).fill(-3e38)]);
    expect(Array.from(await argmax(Tensor.from(dev, x, [2, 257])).read())).toEqual([0, 0]);
  });

  it('argmaxProb gives the same ids and the softmax probability of each row\'s maximum', async () => {
    const dev = await getDevice();
    for (const [rows, D] of [...SHAPES, [6, 8193] as [number, number]]) {
      const x = randn(rows * D, 70 + D).map((v) => 4 * v);
      x[D - 1] = -1e30; // a masked-out column, as SUBS gives the MDLM's mask token
      const { ids, prob } = argmaxProb(Tensor.from(dev, x, [rows, D]));
      expect(prob.shape).toEqual([rows]);
      const expectedIds = argmaxRef(x, D);
      expect(Array.from(await ids.read())).toEqual(Array.from(expectedIds));
      const sm = softmaxRef(x, D, 1, false);
      const expected = Float32Array.from(expectedIds, (i, r) => sm[r * D + i]);
      expectClose(await prob.read(), expected, 1e-6, 1e-5);
    }
  });

  it('argmaxProb gives 1 / D for a row of equal values', async () => {
    const dev = await getDevice();
    const { prob } = argmaxProb(Tensor.from(dev, new Float32Array(300).fill(2), [1, 300]));
    expectClose(await prob.read(), Float32Array.of(1 / 300), 1e-7, 1e-5);
  });

  it('handles more than 65535 rows (grid folded into two dimensions)', async () => {
    const dev = await getDevice();
    const rows = 70000;
    const x = new Float32Array(rows * 3);
    for (let r = 0; r < rows; r++) x[r * 3 + (r % 3)] = 1;
    const out = await argmax(Tensor.from(dev, x, [rows, 3])).read();
    for (let r = 0; r < rows; r++) if (out[r] !== r % 3) throw new Error(`row ${r}: got ${out[r]}, expected ${r % 3}`);
  });
});
