/**
 * Ops that read or write rows of an existing tensor (RowsOf) in place of tensors of their own: what a drafter uses
 * to draw straight into its draft's tokens and q. Each is checked against the same op on a tensor of its own.
 */
import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor/tensor.js';
import { ShapeError } from '../src/tensor/errors.js';
import { filteredProbs, sampleRows } from '../src/tensor/ops/sample.js';
import { argmax } from '../src/tensor/ops/rowwise.js';
import { embedding } from '../src/tensor/ops/gather.js';
import { getDevice } from './helpers/device.js';
import { argmaxRef, expectClose, filteredProbsRef, randn, sampleRef } from './helpers/reference.js';

const SENTINEL = -7;

/** The first `cols` columns of each row of x [rows, width]. */
function firstCols(x: Float32Array, width: number, cols: number): Float32Array {
  const rows = x.length / width;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out.set(x.subarray(r * width, r * width + cols), r * cols);
  return out;
}

describe('rows in place', () => {
  it('filteredProbs with cols and into writes each row\'s filtered first columns at rows row, row + stride, … and nothing else', async () => {
    const dev = await getDevice();
    const [rows, width, V] = [3, 258, 257];
    const x = randn(rows * width, 11, 3);
    const f = { temperature: 0.8, topK: 50, topP: 0.9 };
    const dst = Tensor.from(dev, new Float32Array(8 * V).fill(SENTINEL), [8, V]);
    const out = filteredProbs(Tensor.from(dev, x, [rows, width]), f, undefined, { cols: V, into: { tensor: dst, row: 1, stride: 3 } });
    expect(out).toBe(dst);
    const got = await dst.read();
    const want = filteredProbsRef(firstCols(x, width, V), V, f);
    for (let r = 0; r < 8; r++) {
      const row = got.subarray(r * V, (r + 1) * V);
      const k = (r - 1) / 3;
      if (Number.isInteger(k) && k >= 0 && k < rows) expectClose(row, want.subarray(k * V, (k + 1) * V), 1e-5, 1e-9);
      else expect(row.every((v) => v === SENTINEL)).toBe(true);
    }
  });

  it('sampleRows reads rows row, row + stride, … of the weights and writes each id at its row of into', async () => {
    const dev = await getDevice();
    const V = 1000;
    const w = Float32Array.from(randn(6 * V, 12), Math.abs);
    const u = Float32Array.of(0.1, 0.5, 0.93);
    const ids = Tensor.from(dev, new Int32Array(9).fill(SENTINEL), [9], 'i32');
    sampleRows(Tensor.from(dev, w, [6, V]), Tensor.from(dev, u, [3]), { rows: { row: 1, stride: 2 }, into: { tensor: ids, row: 2, stride: 3 } });
    const want = [1, 3, 5].map((r, k) => sampleRef(w.subarray(r * V, (r + 1) * V), u[k]));
    expect(Array.from(await ids.read())).toEqual([SENTINEL, SENTINEL, want[0], SENTINEL, SENTINEL, want[1], SENTINEL, SENTINEL, want[2]]);
  });

  it('argmax with into writes each row\'s index at its row of an existing i32 tensor', async () => {
    const dev = await getDevice();
    const [rows, D] = [2, 300];
    const x = randn(rows * D, 13);
    const ids = Tensor.from(dev, new Int32Array(5).fill(SENTINEL), [5], 'i32');
    argmax(Tensor.from(dev, x, [rows, D]), { tensor: ids, row: 1, stride: 2 });
    const want = argmaxRef(x, D);
    expect(Array.from(await ids.read())).toEqual([SENTINEL, want[0], SENTINEL, want[1], SENTINEL]);
  });

  it('embedding reads count ids from rows of an i32 tensor, stride apart', async () => {
    const dev = await getDevice();
    const [rows, D] = [10, 70];
    const tableData = randn(rows * D, 14);
    const table = Tensor.from(dev, tableData, [rows, D]);
    const ids = Tensor.from(dev, Int32Array.of(9, 4, 9, 7, 9, 2), [6], 'i32');
    const got = await embedding(table, { tensor: ids, row: 1, stride: 2, count: 3 }).read();
    const want = [4, 7, 2].flatMap((r) => Array.from(tableData.subarray(r * D, (r + 1) * D)));
    expectClose(got, want, 0, 0);
  });

  it('refuses rows that run past the tensor, naming the op, before dispatching anything', async () => {
    const dev = await getDevice();
    const logits = Tensor.from(dev, randn(2 * 5, 15), [2, 5]);
    const q = Tensor.empty(dev, [3, 5]);
    const ids = Tensor.empty(dev, [3], 'i32');
    const before = dev.dispatchCount;
    expect(() => filteredProbs(logits, { temperature: 1 }, undefined, { into: { tensor: q, row: 2 } })).toThrow(ShapeError);
    expect(() => filteredProbs(logits, { temperature: 1 }, undefined, { cols: 6 })).toThrow(/filteredProbs: cols 6/);
    expect(() => sampleRows(q, Tensor.from(dev, new Float32Array(2), [2]), { rows: { row: 0, stride: 3 } })).toThrow(/sampleRows/);
    expect(() => argmax(logits, { tensor: ids, row: 1, stride: 2 })).toThrow(/argmax/);
    expect(() => embedding(logits, { tensor: ids, row: 2, count: 2 })).toThrow(/embedding/);
    expect(dev.dispatchCount).toBe(before);
  });
});
