import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor/tensor.js';
import { ShapeError } from '../src/tensor/errors.js';
import { concat, copy2d, embedding, slice } from '../src/tensor/ops/gather.js';
import { getDevice } from './helpers/device.js';
import { expectClose, randn } from './helpers/reference.js';

function embeddingRef(table: ArrayLike<number>, rows: number, D: number, ids: number[]): Float32Array {
  const out = new Float32Array(ids.length * D);
  ids.forEach((id, i) => {
    if (id >= 0 && id < rows) for (let d = 0; d < D; d++) out[i * D + d] = table[id * D + d];
  });
  return out;
}

/** x[..., start:end] of a row-major [rows, D] array along the last axis. */
function sliceLastRef(x: ArrayLike<number>, D: number, start: number, end: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / D; r++) for (let c = start; c < end; c++) out.push(x[r * D + c]);
  return out;
}

describe('embedding', () => {
  it('gathers f32 rows, repeated ids included, for D = 3 and 257', async () => {
    const dev = await getDevice();
    for (const [rows, D] of [[10, 3], [50, 257]]) {
      const table = randn(rows * D, D);
      const ids = [0, rows - 1, 3, 3, 1];
      const out = embedding(Tensor.from(dev, table, [rows, D]), Tensor.from(dev, Int32Array.from(ids), [ids.length]));
      expect(out.shape).toEqual([ids.length, D]);
      expect(Array.from(await out.read())).toEqual(Array.from(embeddingRef(table, rows, D, ids)));
    }
  });

  it('gathers a single id', async () => {
    const dev = await getDevice();
    const table = randn(7 * 5, 1);
    const out = embedding(Tensor.from(dev, table, [7, 5]), Tensor.from(dev, Int32Array.of(6), [1]));
    expect(Array.from(await out.read())).toEqual(Array.from(table.subarray(30, 35)));
  });

  it('keeps the shape of the ids: [2, 3] ids give [2, 3, D]', async () => {
    const dev = await getDevice();
    const table = randn(9 * 4, 2);
    const ids = [8, 0, 1, 2, 3, 7];
    const out = embedding(Tensor.from(dev, table, [9, 4]), Tensor.from(dev, Int32Array.from(ids), [2, 3]));
    expect(out.shape).toEqual([2, 3, 4]);
    expect(Array.from(await out.read())).toEqual(Array.from(embeddingRef(table, 9, 4, ids)));
  });

  it('reads an f16 table, with or without shader-f16 (packed words)', async () => {
    const dev = await getDevice();
    const [rows, D] = [11, 257];
    const t = Tensor.from(dev, randn(rows * D, 3), [rows, D], 'f16');
    const t16 = await t.read();
    const ids = [10, 0, 5, 5];
    const out = embedding(t, Tensor.from(dev, Int32Array.from(ids), [ids.length]));
    expect(Array.from(await out.read())).toEqual(Array.from(embeddingRef(t16, rows, D, ids)));
  });

  it('gives zero rows for out-of-range ids, even in a recycled buffer that held other data', async () => {
    const dev = await getDevice();
    const [rows, D] = [6, 5];
    const ids = [-1, 2, rows, 2 ** 31 - 1, -(2 ** 31), 5];
    // Leave non-zero data in the pool bucket the output will come from.
    Tensor.from(dev, new Float32Array(ids.length * D).fill(9), [ids.length, D]).dispose();
    const table = randn(rows * D, 4);
    const out = embedding(Tensor.from(dev, table, [rows, D]), Tensor.from(dev, Int32Array.from(ids), [ids.length]));
    expect(Array.from(await out.read())).toEqual(Array.from(embeddingRef(table, rows, D, ids)));
  });

  it('rejects ids that are not i32', async () => {
    const dev = await getDevice();
    const t = Tensor.from(dev, new Float32Array(4), [2, 2]);
    expect(() => embedding(t, Tensor.from(dev, [0, 1], [2]))).toThrow(/ids must be i32/);
  });
});

describe('slice', () => {
  it('takes columns along the last axis of a 2-D tensor', async () => {
    const dev = await getDevice();
    const x = randn(3 * 257, 5);
    const out = slice(Tensor.from(dev, x, [3, 257]), 5, 200);
    expect(out.shape).toEqual([3, 195]);
    expect(Array.from(await out.read())).toEqual(sliceLastRef(x, 257, 5, 200));
  });

  it('takes a range of a 1-D tensor, and a single column of a 3-D tensor', async () => {
    const dev = await getDevice();
    const x = randn(1000, 6);
    expect(Array.from(await slice(Tensor.from(dev, x, [1000]), 997, 1000).read())).toEqual(Array.from(x.subarray(997)));
    const y = randn(2 * 3 * 7, 7);
    const col = slice(Tensor.from(dev, y, [2, 3, 7]), 6, 7);
    expect(col.shape).toEqual([2, 3, 1]);
    expect(Array.from(await col.read())).toEqual(sliceLastRef(y, 7, 6, 7));
  });

  it('takes rows along axis 0', async () => {
    const dev = await getDevice();
    const x = randn(7 * 3, 8);
    const out = slice(Tensor.from(dev, x, [7, 3]), 2, 5, 0);
    expect(out.shape).toEqual([3, 3]);
    expect(Array.from(await out.read())).toEqual(Array.from(x.subarray(6, 15)));
  });

  it('slices i32 tensors bit-exactly', async () => {
    const dev = await getDevice();
    const x = Int32Array.from({ length: 12 }, (_, i) => (i % 2 ? -i : i * 1e8));
    expect(Array.from(await slice(Tensor.from(dev, x, [3, 4]), 1, 3).read())).toEqual(sliceLastRef(x, 4, 1, 3));
  });

  it('returns an empty tensor for an empty range and rejects a range past the axis', async () => {
    const dev = await getDevice();
    const x = Tensor.from(dev, randn(6, 9), [2, 3]);
    expect(slice(x, 2, 2).shape).toEqual([2, 0]);
    expect(() => slice(x, 1, 4)).toThrow(ShapeError);
    expect(() => slice(x, 0, 3, 0)).toThrow(/outside axis of size 2/);
  });
});

describe('f16 slices and concatenations along axis 0', () => {
  it('work at 32-bit-aligned offsets', async () => {
    const dev = await getDevice();
    const x = Tensor.from(dev, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [6, 2], 'f16');
    expect(Array.from(await slice(x, 2, 5, 0).read())).toEqual([5, 6, 7, 8, 9, 10]);
    const a = Tensor.from(dev, [1, 2, 3, 4], [2, 2], 'f16');
    const b = Tensor.from(dev, [5, 6, 7], [1, 3], 'f16');
    expect(Array.from(await concat([a.reshape([4]), b.reshape([3])], 0).read())).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('throw a ShapeError at unaligned offsets instead of invalidating the batch', async () => {
    const dev = await getDevice();
    const x = Tensor.from(dev, [1, 2, 3, 4, 5, 6, 7, 8, 9], [3, 3], 'f16');
    const pending = Tensor.from(dev, [1, 2], [2]);
    expect(() => slice(x, 1, 2, 0)).toThrow(/byte 6, not a multiple of 4/);
    const b = Tensor.from(dev, [1, 2, 3], [1, 3], 'f16');
    expect(() => concat([b, b], 0)).toThrow(ShapeError);
    // Work recorded before and after the refused calls is intact.
    expect(Array.from(await pending.read())).toEqual([1, 2]);
  });
});

describe('concat', () => {
  it('joins along the last axis, widths 5, 1 and 257', async () => {
    const dev = await getDevice();
    const widths = [5, 1, 257];
    const parts = widths.map((w, i) => randn(3 * w, 10 + i));
    const out = concat(parts.map((p, i) => Tensor.from(dev, p, [3, widths[i]])));
    expect(out.shape).toEqual([3, 263]);
    const ref: number[] = [];
    for (let r = 0; r < 3; r++) parts.forEach((p, i) => ref.push(...p.subarray(r * widths[i], (r + 1) * widths[i])));
    expect(Array.from(await out.read())).toEqual(ref);
  });

  it('joins along axis 0', async () => {
    const dev = await getDevice();
    const a = randn(2 * 3, 13);
    const b = randn(1 * 3, 14);
    const c = randn(4 * 3, 15);
    const out = concat([Tensor.from(dev, a, [2, 3]), Tensor.from(dev, b, [1, 3]), Tensor.from(dev, c, [4, 3])], 0);
    expect(out.shape).toEqual([7, 3]);
    expect(Array.from(await out.read())).toEqual([...a, ...b, ...c]);
  });

  it('rejects shapes that differ off the concatenation axis', async () => {
    const dev = await getDevice();
    const a = Tensor.from(dev, new Float32Array(6), [2, 3]);
    const b = Tensor.from(dev, new Float32Array(6), [3, 2]);
    expect(() => concat([a, b])).toThrow(/differ off axis 1/);
  });
});

describe('copy2d', () => {
  it('copies a block with source and destination offsets and strides, leaving the rest of dst untouched', async () => {
    const dev = await getDevice();
    const src = randn(10 * 13, 20);
    const dstInit = Float32Array.from({ length: 9 * 11 }, (_, i) => -i);
    const dst = Tensor.from(dev, dstInit, [9, 11]);
    const c = { rows: 4, cols: 5, srcOffset: 7, srcStride: 13, dstOffset: 14, dstStride: 11 };
    copy2d(Tensor.from(dev, src, [10, 13]), dst, c);
    const ref = Array.from(dstInit);
    for (let r = 0; r < c.rows; r++) {
      for (let k = 0; k < c.cols; k++) ref[c.dstOffset + r * c.dstStride + k] = src[c.srcOffset + r * c.srcStride + k];
    }
    expect(Array.from(await dst.read())).toEqual(ref);
  });

  it('copies more than 65535 rows (grid folded into a third dimension)', async () => {
    const dev = await getDevice();
    const rows = 70000;
    const src = Int32Array.from({ length: rows * 2 }, (_, i) => i);
    const dst = Tensor.from(dev, new Int32Array(rows), [rows]);
    copy2d(Tensor.from(dev, src, [rows, 2]), dst, { rows, cols: 1, srcOffset: 1, srcStride: 2, dstOffset: 0, dstStride: 1 });
    const out = await dst.read();
    for (let r = 0; r < rows; r++) if (out[r] !== 2 * r + 1) throw new Error(`row ${r}: got ${out[r]}, expected ${2 * r + 1}`);
  });

  it('rejects a block that runs past either tensor', async () => {
    const dev = await getDevice();
    const a = Tensor.from(dev, new Float32Array(10), [10]);
    const b = Tensor.from(dev, new Float32Array(10), [10]);
    expect(() => copy2d(a, b, { rows: 2, cols: 5, srcOffset: 1, srcStride: 5, dstOffset: 0, dstStride: 5 })).toThrow(/runs past/);
    expect(() => copy2d(a, b, { rows: 3, cols: 2, srcOffset: 0, srcStride: 2, dstOffset: 0, dstStride: 5 })).toThrow(/runs past/);
  });
});

describe('slice and concat round trip', () => {
  it('concat of the slices of a tensor gives the tensor back', async () => {
    const dev = await getDevice();
    const x = randn(4 * 1000, 30);
    const t = Tensor.from(dev, x, [4, 1000]);
    const back = concat([slice(t, 0, 3), slice(t, 3, 700), slice(t, 700, 1000)]);
    expectClose(await back.read(), x, 0, 0);
  });
});
