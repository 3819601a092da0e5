import { describe, expect, it } from 'vitest';
import { createNodeDevice } from '../src/node.js';
import { Tensor } from '../src/tensor/tensor.js';
import { TuningError } from '../src/tensor/errors.js';
import { DEFAULT_TUNING } from '../src/tensor/tuning.js';
import { attention, KVCache } from '../src/tensor/ops/attention.js';
import { matmul, getMatmulChoice, setMatmulChoice, tuneKey, tunedMatmulChoice } from '../src/tensor/ops/matmul.js';
import { argmax, layerNorm, softmax } from '../src/tensor/ops/rowwise.js';
import type { Device, KernelSpec } from '../src/tensor/device.js';
import { getDevice } from './helpers/device.js';
import { expectClose, randn } from './helpers/reference.js';

/** The keys of the kernels fn dispatches. */
function kernelKeys(dev: Device, fn: () => void): string[] {
  return dev.collectKernels(fn).map((s: KernelSpec) => s.key);
}

describe('kernel tuning', () => {
  it('a device starts from DEFAULT_TUNING', async () => {
    const dev = await getDevice();
    expect(dev.tuning).toEqual(expect.objectContaining({ ...DEFAULT_TUNING, matmulChoices: expect.any(Object) }));
  });

  it('rejects a value out of range when the device is created, with a TuningError naming the field and its range', async () => {
    const err = await createNodeDevice({ tuning: { attentionRows: 0 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TuningError);
    expect((err as TuningError).field).toBe('attentionRows');
    expect((err as Error).message).toBe('tuning.attentionRows must be an integer in 1..16, got 0');
  });

  it.each([
    [{ gemvRowBuckets: [1, 4, 2] }, 'gemvRowBuckets', /ascending integers in 1..16/],
    [{ gemvMaxRows: 8, gemvRowBuckets: [1, 16] }, 'gemvRowBuckets', /in 1..8 \(gemvMaxRows\)/],
    [{ gemvDefaults: [{ fromRows: 2, group: 4, wide: false }] }, 'gemvDefaults', /the first 1/],
    [{ gemvThreads: 48 }, 'gemvThreads', /one of 16, 32, 64, got 48/],
    [{ thresholdSearch: { digitBits: 3, wg: 64 } as never }, 'thresholdSearch.digitBits', /one of 1, 2, 4, got 3/],
    [{ rowWorkgroup: 100 }, 'rowWorkgroup', /one of 64, 128, 256, got 100/],
    [{ napFraction: 2 }, 'napFraction', /a number in \[0, 1\], got 2/],
    [{ matmulChoices: { k: { family: 'gemv' as const, split: 3 } } }, "matmulChoices['k'].split", /a power of two in 1..64, got 3/],
  ])('rejects %j, naming %s', async (tuning, field, message) => {
    const err = await createNodeDevice({ tuning }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TuningError);
    expect((err as TuningError).field).toBe(field);
    expect((err as Error).message).toMatch(message);
  });

  it("rejects a value beyond the device's limits, naming them", async () => {
    const err = await createNodeDevice({ limits: 'default', tuning: { thresholdSearch: { digitBits: 4, wg: 256 } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TuningError);
    expect((err as Error).message).toMatch(/^tuning.thresholdSearch must be a search within 16384 bytes of workgroup memory/);
  });

  it('DEFAULT_TUNING cannot be changed, down to its nested values', () => {
    expect(() => ((DEFAULT_TUNING.thresholdSearch as { wg: number }).wg = 32)).toThrow(TypeError);
    expect(() => (DEFAULT_TUNING.gemvRowBuckets as number[]).push(32)).toThrow(TypeError);
  });

  it('tune() changes nothing when a value is out of range', async () => {
    const dev = await getDevice();
    const before = dev.tuning;
    expect(() => dev.tune({ attentionRows: 4, gemvMinWorkgroups: 0 })).toThrow(TuningError);
    expect(dev.tuning).toBe(before);
  });

  it("kernels are generated with the device's tuning, and their keys name it", async () => {
    const dev = await createNodeDevice({ tuning: { rowWorkgroup: 256, layerNormMaxWidth: 0, attentionRows: 2, streamedMaxRows: 0 } });
    const x = Tensor.from(dev, randn(3 * 40, 1), [3, 40]);
    const w = Tensor.from(dev, randn(40 * 8, 2), [40, 8]);
    const cache = new KVCache(dev, 2, 8, 20);
    cache.length = 6;
    const q = Tensor.from(dev, randn(3 * 40, 3), [3, 40]);
    const keys = kernelKeys(dev, () => {
      softmax(x);
      argmax(x);
      layerNorm(x);
      matmul(x, w);
      attention(q, cache);
    });
    expect(keys).toEqual(['softmax_wg256', 'argmax_wg256', 'layernorm__f32_wg256', expect.stringMatching(/^matmul_tiled_/), 'attention_hd20_r2_causal']);
    // The default device's kernels for the same ops are others.
    const base = await getDevice();
    const baseKeys = kernelKeys(base, () => {
      const y = Tensor.from(base, randn(3 * 40, 1), [3, 40]);
      softmax(y);
      argmax(y);
    });
    expect(baseKeys).toEqual(['softmax_wg64', 'argmax_wg64']);
    cache.dispose();
    dev.destroy();
  });

  it('row kernels with another workgroup size compute the same', async () => {
    const dev = await createNodeDevice({ tuning: { rowWorkgroup: 256 } });
    const base = await getDevice();
    const data = randn(4 * 1000, 7);
    const [ours, ref] = await Promise.all([softmax(Tensor.from(dev, data, [4, 1000])).read(), softmax(Tensor.from(base, data, [4, 1000])).read()]);
    expectClose(ours, ref, 1e-6, 1e-5);
    expect(await argmax(Tensor.from(dev, data, [4, 1000])).read()).toEqual(await argmax(Tensor.from(base, data, [4, 1000])).read());
    dev.destroy();
  });

  it("a matmul choice set on a device is in that device's tuning and no other's", async () => {
    const dev = await createNodeDevice();
    const key = tuneKey('nk', 'f32', 3, 20, 40);
    setMatmulChoice(dev, key, { family: 'gemv-split', split: 4 });
    expect(dev.tuning.matmulChoices[key]).toEqual({ family: 'gemv-split', split: 4 });
    expect(getMatmulChoice(await getDevice(), key)).toBeUndefined();
    dev.destroy();
  });

  it('an untuned matmul runs the kernel tuned for the same weight at the nearest row count, and computes the same', async () => {
    const dev = await createNodeDevice();
    setMatmulChoice(dev, tuneKey('nk', 'f32', 4, 20, 40), { family: 'gemv-split', split: 4 });
    setMatmulChoice(dev, tuneKey('nk', 'f32', 12, 20, 40), { family: 'gemv', split: 1 });
    expect(tunedMatmulChoice(dev, 'nk', 'f32', 3, 20, 40)).toEqual({ family: 'gemv-split', split: 4 });
    expect(tunedMatmulChoice(dev, 'nk', 'f32', 10, 20, 40)).toEqual({ family: 'gemv', split: 1 });
    const a = randn(3 * 20, 1);
    const w = randn(40 * 20, 2);
    const aT = Tensor.from(dev, a, [3, 20]);
    const wT = Tensor.from(dev, w, [40, 20]);
    expect(kernelKeys(dev, () => matmul(aT, wT, { layout: 'nk' })).some((k) => k.includes('gemv-split'))).toBe(true);
    const want = new Float32Array(3 * 40);
    for (let i = 0; i < 3; i++) for (let n = 0; n < 40; n++) for (let k = 0; k < 20; k++) want[i * 40 + n] += a[i * 20 + k] * w[n * 20 + k];
    expectClose(await matmul(aT, wT, { layout: 'nk' }).read(), want, 1e-4);
    dev.destroy();
  });

  it('a choice tuned for this exact shape wins over a nearer one, and another weight borrows nothing', async () => {
    const dev = await createNodeDevice();
    setMatmulChoice(dev, tuneKey('nk', 'f32', 3, 20, 40), { family: 'gemv', split: 1 });
    setMatmulChoice(dev, tuneKey('nk', 'f32', 4, 20, 40), { family: 'gemv-split', split: 4 });
    expect(tunedMatmulChoice(dev, 'nk', 'f32', 3, 20, 40)).toEqual({ family: 'gemv', split: 1 });
    expect(tunedMatmulChoice(dev, 'nk', 'f32', 3, 24, 40)).toBeUndefined();
    expect(tunedMatmulChoice(dev, 'nk', 'f16', 3, 20, 40)).toBeUndefined();
    dev.destroy();
  });

  it("a single row never borrows 'tiled', which autotuning never times for one row", async () => {
    const dev = await createNodeDevice();
    setMatmulChoice(dev, tuneKey('nk', 'f32', 2, 20, 40), { family: 'tiled', split: 1 });
    expect(tunedMatmulChoice(dev, 'nk', 'f32', 1, 20, 40)).toBeUndefined();
    expect(tunedMatmulChoice(dev, 'nk', 'f32', 3, 20, 40)).toEqual({ family: 'tiled', split: 1 });
    dev.destroy();
  });
});
