import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor/tensor.js';
import { ShapeError } from '../src/tensor/errors.js';
import { add, binary, gelu, mul, scale, silu, sub } from '../src/tensor/ops/elementwise.js';
import { getDevice } from './helpers/device.js';
import { expectClose, geluRef, randn, siluRef } from './helpers/reference.js';

// Sizes that are not multiples of 4 or of the 256-wide workgroup.
const SIZES = [1, 3, 257, 1000];

const BINARY_REF = {
  add: (a: number, b: number) => a + b,
  sub: (a: number, b: number) => a - b,
  mul: (a: number, b: number) => a * b,
  subRelu: (a: number, b: number) => Math.max(a - b, 0),
} as const;

/** a op b with b repeating over a's leading axes. */
function broadcastRef(op: keyof typeof BINARY_REF, a: Float32Array, b: Float32Array): Float32Array {
  return a.map((x, i) => BINARY_REF[op](x, b[i % b.length]));
}

describe('binary ops', () => {
  for (const op of Object.keys(BINARY_REF) as Array<keyof typeof BINARY_REF>) {
    it(`${op} of two same-shape tensors matches the reference at n = ${SIZES.join(', ')}`, async () => {
      const dev = await getDevice();
      for (const n of SIZES) {
        const a = randn(n, n);
        const b = randn(n, n + 1);
        const out = binary(op, Tensor.from(dev, a, [n]), Tensor.from(dev, b, [n]));
        expectClose(await out.read(), broadcastRef(op, a, b), 1e-6, 0);
      }
    });

    it(`${op} broadcasts a row vector over every row`, async () => {
      const dev = await getDevice();
      const [rows, D] = [5, 257];
      const a = randn(rows * D, 1);
      const b = randn(D, 2);
      const out = binary(op, Tensor.from(dev, a, [rows, D]), Tensor.from(dev, b, [D]));
      expect(out.shape).toEqual([rows, D]);
      expectClose(await out.read(), broadcastRef(op, a, b), 1e-6, 0);
    });

    it(`${op} broadcasts a scalar over every element`, async () => {
      const dev = await getDevice();
      const a = randn(3 * 7, 3);
      const b = Float32Array.of(0.75);
      const out = binary(op, Tensor.from(dev, a, [3, 7]), Tensor.from(dev, b, [1]));
      expectClose(await out.read(), broadcastRef(op, a, b), 1e-6, 0);
    });
  }

  it('broadcasts b over the leading axis when b has a 3-D tensor\'s last two dimensions', async () => {
    const dev = await getDevice();
    const a = randn(2 * 3 * 7, 4);
    const b = randn(3 * 7, 5);
    const out = add(Tensor.from(dev, a, [2, 3, 7]), Tensor.from(dev, b, [3, 7]));
    expectClose(await out.read(), broadcastRef('add', a, b), 1e-6, 0);
  });

  it('sub computes a − b, not b − a, and mul by a scalar scales exactly', async () => {
    const dev = await getDevice();
    const a = Tensor.from(dev, [5, 8], [2]);
    const b = Tensor.from(dev, [2, 3], [2]);
    expect(Array.from(await sub(a, b).read())).toEqual([3, 5]);
    expect(Array.from(await mul(a, Tensor.from(dev, [0.5], [1])).read())).toEqual([2.5, 4]);
  });

  it('broadcasts a [1, D] row vector like a [D] one (leading 1s ignored)', async () => {
    const dev = await getDevice();
    const a = randn(4 * 3, 6);
    const b = randn(3, 7);
    const out = add(Tensor.from(dev, a, [4, 3]), Tensor.from(dev, b, [1, 3]));
    expectClose(await out.read(), broadcastRef('add', a, b), 1e-6, 0);
  });

  it('rejects a second operand of higher rank whose leading axis happens to match ([6] with [6, 5])', async () => {
    const dev = await getDevice();
    const a = Tensor.from(dev, new Float32Array(6), [6]);
    const b = Tensor.from(dev, new Float32Array(30), [6, 5]);
    expect(() => add(a, b)).toThrow(/cannot broadcast \[6, 5\] over \[6\]/);
  });

  it('rejects a second operand that is not a trailing sub-shape, naming both shapes', async () => {
    const dev = await getDevice();
    const a = Tensor.from(dev, new Float32Array(6), [2, 3]);
    const b = Tensor.from(dev, new Float32Array(2), [2]);
    expect(() => add(a, b)).toThrow(ShapeError);
    expect(() => add(a, b)).toThrow(/\[2\] over \[2, 3\]/);
  });
});

describe('unary ops', () => {
  // Includes large magnitudes, where tanh/exp saturate.
  const inputs = (n: number, seed: number) => {
    const x = randn(n, seed, 3);
    const edges = [0, -0.5, 0.5, -8, 8, -20, 20, -100, 100];
    for (let i = 0; i < Math.min(n, edges.length); i++) x[i] = edges[i];
    return x;
  };

  it('gelu (tanh approximation) matches the reference at n = 1, 3, 257, 1000, including ±100 (rtol 1e-5, atol 1e-6: tanh)', async () => {
    const dev = await getDevice();
    for (const n of SIZES) {
      const x = inputs(n, 10 + n);
      const out = gelu(Tensor.from(dev, x, [n]));
      expectClose(await out.read(), Array.from(x, geluRef), 1e-5, 1e-6);
    }
  });

  it('silu matches x·sigmoid(x) at n = 1, 3, 257, 1000, including ±100 (rtol 1e-5, atol 1e-6: exp)', async () => {
    const dev = await getDevice();
    for (const n of SIZES) {
      const x = inputs(n, 20 + n);
      const out = silu(Tensor.from(dev, x, [n]));
      expectClose(await out.read(), Array.from(x, siluRef), 1e-5, 1e-6);
    }
  });

  it('scale multiplies by alpha, including negative and zero alpha', async () => {
    const dev = await getDevice();
    const x = randn(257, 30);
    for (const alpha of [0.125, -3, 0]) {
      const out = scale(Tensor.from(dev, x, [257]), alpha);
      expectClose(await out.read(), Array.from(x, (v) => v * alpha), 1e-6, 0);
    }
  });

  it('covers a tensor of more than 65535 workgroups (grid folded into two dimensions)', async () => {
    const dev = await getDevice();
    const n = 65535 * 256 + 1000; // one workgroup per 256 elements: 65539 workgroups
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = i % 1021;
    const out = await scale(Tensor.from(dev, x, [n]), 2).read();
    for (let i = 0; i < n; i++) {
      if (out[i] !== 2 * (i % 1021)) throw new Error(`element ${i}: got ${out[i]}, expected ${2 * (i % 1021)}`);
    }
  });

  it('keeps the input shape', async () => {
    const dev = await getDevice();
    const out = silu(Tensor.from(dev, new Float32Array(12), [2, 3, 2]));
    expect(out.shape).toEqual([2, 3, 2]);
  });
});
