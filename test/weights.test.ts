import { describe, expect, it } from 'vitest';
import { WeightError, WeightReader } from '../src/models/weights.js';
import { memorySource, openSafetensors, writeSafetensors } from '../src/models/safetensors.js';
import { f16BitsToF32Array, f32ArrayToF16Bits } from '../src/tensor/half.js';
import { getDevice } from './helpers/device.js';

// Not multiples of the transpose's 32-wide tiles, so that partial tiles at both edges are covered.
const ROWS = 37;
const COLS = 70;

function matrix(): Float32Array {
  return Float32Array.from({ length: ROWS * COLS }, (_, i) => ((i * 7919) % 1000) / 250 - 2);
}

function naiveTranspose(a: ArrayLike<number>): number[] {
  const out = new Array<number>(a.length);
  for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) out[c * ROWS + r] = a[r * COLS + c];
  return out;
}

async function reader(data: Float32Array, dtype: 'F32' | 'F16'): Promise<WeightReader> {
  const t = { 'w': dtype === 'F32' ? { dtype, shape: [ROWS, COLS], data } : { dtype, shape: [ROWS, COLS], data: f32ArrayToF16Bits(data) } };
  return new WeightReader(await openSafetensors(memorySource(writeSafetensors(t), 'w.safetensors')), '');
}

describe('WeightReader.gpuTransposed', async () => {
  const dev = await getDevice();

  it('stores an f32 [rows, cols] weight as [cols, rows], every value in place', async () => {
    const data = matrix();
    const t = await (await reader(data, 'F32')).gpuTransposed(dev, 'w', [ROWS, COLS], 'f32');
    expect(t.shape).toEqual([COLS, ROWS]);
    expect(Array.from((await t.read()) as Float32Array)).toEqual(naiveTranspose(data));
    t.dispose();
  });

  it('moves f16 weights as their bits: the same values as the file holds, transposed', async () => {
    const bits = f32ArrayToF16Bits(matrix());
    const t = await (await reader(matrix(), 'F16')).gpuTransposed(dev, 'w', [ROWS, COLS], 'f16');
    expect([t.shape, t.dtype]).toEqual([[COLS, ROWS], 'f16']);
    expect(Array.from((await t.read()) as Float32Array)).toEqual(naiveTranspose(f16BitsToF32Array(bits)));
    t.dispose();
  });

  it('refuses a non-finite value before uploading, naming the element in the file', async () => {
    const data = matrix();
    data[ROWS * COLS - 3] = Infinity;
    const before = dev.memoryStats().liveBytes;
    const e = await (await reader(data, 'F16')).gpuTransposed(dev, 'w', [ROWS, COLS], 'f16').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(WeightError);
    expect((e as Error).message).toBe(`w.safetensors: tensor "w" has Infinity at element ${ROWS * COLS - 3}; the weights must be finite`);
    expect(dev.memoryStats().liveBytes).toBe(before);
  });
});
