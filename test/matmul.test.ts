import { describe, expect, it } from 'vitest';
import { Tensor } from '../src/tensor/tensor.js';
import { defaultThreads, matmul, uniformChunkRows, type MatmulChoice, type MatmulOptions } from '../src/tensor/ops/matmul.js';
import { DEFAULT_TUNING } from '../src/tensor/tuning.js';
import { getDevice } from './helpers/device.js';
import { expectClose, geluRef, matmulRef, randn } from './helpers/reference.js';

const families: Array<[string, MatmulChoice]> = [
  ['gemv', { family: 'gemv', split: 1 }],
  ['gemv-split4', { family: 'gemv-split', split: 4 }],
  ['gemv-split16', { family: 'gemv-split', split: 16 }],
  ['gemv-subgroup', { family: 'gemv-subgroup', split: 1 }],
  ['gemv-group8', { family: 'gemv', split: 1, group: 8 }],
  ['gemv-group16', { family: 'gemv', split: 1, group: 16 }],
  ['gemv-uniform', { family: 'gemv-uniform', split: 1, group: 8 }],
];

// Awkward sizes: not multiples of 4 or of the tile, one row, K = 1, long K.
const shapes: Array<[number, number, number]> = [
  [1, 1, 1],
  [1, 7, 5],
  [3, 1, 9],
  [5, 33, 17],
  [16, 64, 128],
  [2, 1000, 3],
  [1, 2049, 70],
];

describe('matmul', () => {
  for (const layout of ['kn', 'nk'] as const) {
    for (const [M, K, N] of shapes) {
      for (const [name, choice] of families) {
        it(`${name} ${layout} M=${M} K=${K} N=${N} matches the reference`, async () => {
          const dev = await getDevice();
          const a = randn(M * K, 1);
          const w = randn(K * N, 2, 0.5);
          const out = matmul(Tensor.from(dev, a, [M, K]), Tensor.from(dev, w, layout === 'kn' ? [K, N] : [N, K]), { layout }, choice);
          expectClose(await out.read(), matmulRef(a, w, M, K, N, layout), 1e-4, 1e-4);
        });
      }
    }
  }

  // More rows than one gemv dispatch takes: row chunks 9 + 8 and 14 + 14 + 12. (Few families: the
  // chunking is shared code, and big split variants take a minute to compile on lavapipe.)
  const chunked: Array<[string, MatmulChoice, 'kn' | 'nk']> = [
    ['gemv', { family: 'gemv', split: 1 }, 'kn'],
    ['gemv', { family: 'gemv', split: 1 }, 'nk'],
    ['gemv-group16', { family: 'gemv', split: 1, group: 16 }, 'nk'],
    ['gemv-uniform', { family: 'gemv-uniform', split: 1, group: 16 }, 'nk'],
  ];
  // Uniform chunks: one binding each, at aligned offsets (K = 20: 80-byte rows, chunks of 16 rows;
  // K = 2048: 8 rows fill a 64 KiB binding).
  for (const [name, choice, layout] of chunked) {
    for (const [M, K, N] of [[17, 13, 9], [40, 33, 17], [40, 20, 11], [17, 2048, 9]] as const) {
      it(`${name} ${layout} M=${M} K=${K} N=${N} (row chunks) matches the reference`, async () => {
        const dev = await getDevice();
        const a = randn(M * K, 11);
        const w = randn(K * N, 12, 0.5);
        const out = matmul(Tensor.from(dev, a, [M, K]), Tensor.from(dev, w, layout === 'kn' ? [K, N] : [N, K]), { layout }, choice);
        expectClose(await out.read(), matmulRef(a, w, M, K, N, layout), 1e-4, 1e-4);
      });
    }
  }

  // Row buckets: each row count runs the smallest compiled bucket at least as large, its extra rows
  // repeating the last; N = 37 also moves the last invocation's group of weight rows back.
  for (const [name, choice] of [
    ['gemv', { family: 'gemv', split: 1, group: 8 }],
    ['gemv-uniform', { family: 'gemv-uniform', split: 1, group: 16 }],
    ['gemv-uniform-wide', { family: 'gemv-uniform', split: 1, group: 8, wide: true }],
  ] as Array<[string, MatmulChoice]>) {
    it(`${name} nk with bias and residual gives the reference for every row count 1..16 (padded buckets)`, async () => {
      const dev = await getDevice();
      const [K, N] = [24, 37];
      const wt = Tensor.from(dev, randn(K * N, 21, 0.5), [N, K], 'f16');
      const w = (await wt.read()) as Float32Array;
      const b = randn(N, 22);
      for (let M = 1; M <= 16; M++) {
        const a = randn(M * K, 20 + M);
        const r = randn(M * N, 40 + M);
        const out = matmul(Tensor.from(dev, a, [M, K]), wt, { layout: 'nk', bias: Tensor.from(dev, b, [N]), residual: Tensor.from(dev, r, [M, N]) }, choice);
        const ref = matmulRef(a, w, M, K, N, 'nk').map((v, i) => v + b[i % N] + r[i]);
        expectClose(await out.read(), ref, 1e-4, 1e-4);
      }
    });
  }

  for (const layout of ['kn', 'nk'] as const) {
    for (const [M, K, N] of [[17, 13, 9], [64, 64, 64], [33, 128, 101], [100, 4, 37]] as const) {
      it(`tiled ${layout} M=${M} K=${K} N=${N} matches the reference`, async () => {
        const dev = await getDevice();
        const a = randn(M * K, 3);
        const w = randn(K * N, 4, 0.5);
        const out = matmul(Tensor.from(dev, a, [M, K]), Tensor.from(dev, w, layout === 'kn' ? [K, N] : [N, K]), { layout }, { family: 'tiled', split: 1 });
        expectClose(await out.read(), matmulRef(a, w, M, K, N, layout), 1e-4, 1e-4);
      });
    }
  }

  it('fuses bias, GELU and residual in that order', async () => {
    const dev = await getDevice();
    const [M, K, N] = [4, 24, 12];
    const a = randn(M * K, 5);
    const w = randn(K * N, 6, 0.3);
    const b = randn(N, 7);
    const r = randn(M * N, 8);
    for (const rows of [M, 40]) {
      const aa = rows === M ? a : randn(rows * K, 9);
      const rr = rows === M ? r : randn(rows * N, 10);
      const out = matmul(Tensor.from(dev, aa, [rows, K]), Tensor.from(dev, w, [K, N]), {
        bias: Tensor.from(dev, b, [N]),
        gelu: true,
        residual: Tensor.from(dev, rr, [rows, N]),
      });
      const ref = matmulRef(aa, w, rows, K, N, 'kn').map((v, i) => geluRef(v + b[i % N]) + rr[i]);
      expectClose(await out.read(), ref, 1e-4, 1e-4);
    }
  });

  // The epilogue's parts are run-time flags: each subset must apply exactly its parts, in every family.
  const parts = ['bias', 'gelu', 'residual'] as const;
  const subsets = Array.from({ length: 8 }, (_, i) => parts.filter((_, b) => i & (1 << b)));
  for (const [name, choice, layout] of [
    ['gemv-uniform', { family: 'gemv-uniform', split: 1, group: 8 }, 'nk'],
    ['gemv', { family: 'gemv', split: 1 }, 'kn'],
    ['tiled', { family: 'tiled', split: 1 }, 'nk'],
  ] as const) {
    it(`${name} ${layout} applies exactly the epilogue parts given, for each of the 8 subsets`, async () => {
      const dev = await getDevice();
      const [M, K, N] = [5, 32, 12];
      const a = randn(M * K, 31);
      const w = randn(K * N, 32, 0.3);
      const b = randn(N, 33);
      const r = randn(M * N, 34);
      for (const subset of subsets) {
        const has = (p: (typeof parts)[number]) => subset.includes(p);
        const out = matmul(Tensor.from(dev, a, [M, K]), Tensor.from(dev, w, layout === 'kn' ? [K, N] : [N, K]), {
          layout,
          bias: has('bias') ? Tensor.from(dev, b, [N]) : undefined,
          gelu: has('gelu'),
          residual: has('residual') ? Tensor.from(dev, r, [M, N]) : undefined,
        }, choice);
        const ref = matmulRef(a, w, M, K, N, layout).map((v, i) => {
          const y = v + (has('bias') ? b[i % N] : 0);
          return (has('gelu') ? geluRef(y) : y) + (has('residual') ? r[i] : 0);
        });
        expectClose(await out.read(), ref, 1e-4, 1e-4);
      }
    });
  }

  it('reads f16 weights', async () => {
    const dev = await getDevice();
    const [M, K, N] = [3, 40, 24];
    const a = randn(M * K, 11);
    const w = randn(K * N, 12, 0.5);
    const wt = Tensor.from(dev, w, [N, K], 'f16');
    const w16 = (await wt.read()) as Float32Array;
    const ref = matmulRef(a, w16, M, K, N, 'nk');
    expectClose(await matmul(Tensor.from(dev, a, [M, K]), wt, { layout: 'nk' }).read(), ref, 1e-4, 1e-4);
    const big = randn(20 * K, 13);
    expectClose(await matmul(Tensor.from(dev, big, [20, K]), wt, { layout: 'nk' }).read(), matmulRef(big, w16, 20, K, N, 'nk'), 1e-4, 1e-4);
  });

  // Wide loads take 8 halves at a time: K = 8 (one load), 40 and 2048 (many); K = 12 falls back.
  for (const [M, K, N] of [[1, 8, 5], [3, 40, 24], [7, 2048, 9], [5, 12, 6]] as const) {
    for (const choice of [{ family: 'gemv-uniform', split: 1, group: 8, wide: true }, { family: 'gemv', split: 1, group: 4, wide: true }] as MatmulChoice[]) {
      it(`${choice.family} wide f16 M=${M} K=${K} N=${N} matches the reference`, async () => {
        const dev = await getDevice();
        const a = randn(M * K, 14);
        const wt = Tensor.from(dev, randn(K * N, 15, 0.5), [N, K], 'f16');
        const ref = matmulRef(a, (await wt.read()) as Float32Array, M, K, N, 'nk');
        const keys: string[] = [];
        const dispatch = dev.dispatch;
        dev.dispatch = (spec, ...rest) => (keys.push(spec.key), dispatch.call(dev, spec, ...rest));
        try {
          expectClose(await matmul(Tensor.from(dev, a, [M, K]), wt, { layout: 'nk' }, choice).read(), ref, 1e-4, 1e-4);
        } finally {
          dev.dispatch = dispatch;
        }
        expect(keys.every((k) => k.endsWith('_w8') === (K % 8 === 0))).toBe(true);
      });
    }
  }

  // Workgroups of 16, 32 and 64 invocations, over several workgroups with a partial last one
  // (N = 700 rows of W at 4 or 8 per invocation); the dispatched kernel must be the one asked for.
  for (const threads of [16, 32, 64]) {
    for (const choice of [{ family: 'gemv-uniform', split: 1, group: 8, threads }, { family: 'gemv', split: 1, group: 4, threads }] as MatmulChoice[]) {
      it(`${choice.family} nk with ${threads} invocations per workgroup matches the reference`, async () => {
        const dev = await getDevice();
        const [M, K, N] = [6, 24, 700];
        const a = randn(M * K, 16);
        const w = randn(K * N, 17, 0.5);
        const keys: string[] = [];
        const dispatch = dev.dispatch;
        dev.dispatch = (spec, ...rest) => (keys.push(spec.key), dispatch.call(dev, spec, ...rest));
        try {
          expectClose(await matmul(Tensor.from(dev, a, [M, K]), Tensor.from(dev, w, [N, K]), { layout: 'nk' }, choice).read(), matmulRef(a, w, M, K, N, 'nk'), 1e-4, 1e-4);
        } finally {
          dev.dispatch = dispatch;
        }
        expect(keys.every((k) => k.includes('_t') === (threads !== 64) && (threads === 64 || k.includes(`_t${threads}`)))).toBe(true);
      });
    }
  }

  it('rejects a workgroup size other than 16, 32 or 64 invocations, naming the value', async () => {
    const dev = await getDevice();
    const a = Tensor.from(dev, new Float32Array(8), [1, 8]);
    const w = Tensor.from(dev, new Float32Array(32), [4, 8]);
    expect(() => matmul(a, w, { layout: 'nk' }, { family: 'gemv', split: 1, threads: 48 })).toThrow(/16, 32 or 64, got 48/);
  });

  it('defaultThreads keeps gemvThreads invocations per workgroup unless that leaves fewer than gemvMinWorkgroups', () => {
    const t = { ...DEFAULT_TUNING, gemvThreads: 64, gemvMinWorkgroups: 4 };
    expect(defaultThreads(t, 8192, 8)).toBe(64);
    expect(defaultThreads(t, 2048, 8)).toBe(64);
    expect(defaultThreads(t, 1536, 8)).toBe(32);
    expect(defaultThreads(t, 512, 8)).toBe(16);
    expect(defaultThreads(t, 512, 4)).toBe(32);
    expect(defaultThreads(t, 5, 4)).toBe(16);
  });

  it('by default one few-row kernel per row bucket serves every K, N and epilogue', async () => {
    const dev = await getDevice();
    const shapes: Array<[number, number]> = [[64, 40], [256, 512], [512, 96], [1024, 8]];
    const epilogues = (N: number, M: number): MatmulOptions[] => [
      {},
      { bias: Tensor.empty(dev, [N]) },
      { bias: Tensor.empty(dev, [N]), gelu: true },
      { residual: Tensor.empty(dev, [M, N]) },
      { bias: Tensor.empty(dev, [N]), residual: Tensor.empty(dev, [M, N]) },
    ];
    for (const M of [1, 6]) {
      const keys = new Set(dev.collectKernels(() => {
        for (const [K, N] of shapes) {
          for (const opts of epilogues(N, M)) matmul(Tensor.empty(dev, [M, K]), Tensor.empty(dev, [N, K]), { layout: 'nk', ...opts });
        }
      }).map((s) => s.key));
      expect([...keys], `${M} rows`).toHaveLength(1);
    }
  });

  it('rejects mismatched inner dimensions with the shapes in the message', async () => {
    const dev = await getDevice();
    const a = Tensor.from(dev, new Float32Array(6), [2, 3]);
    const w = Tensor.from(dev, new Float32Array(8), [4, 2]);
    expect(() => matmul(a, w)).toThrow(/K 3 ≠ 4/);
  });
});

describe('autotuning', () => {
  it('records a measured choice per signature, which matmul then uses with the same results', async () => {
    const { autotuneMatmul } = await import('../src/tensor/tune.js');
    const { getMatmulChoice, tuneKey } = await import('../src/tensor/ops/matmul.js');
    const dev = await getDevice();
    const sig = { layout: 'nk' as const, dtype: 'f32' as const, rows: 3, K: 20, N: 40 };
    const table = await autotuneMatmul(dev, [sig, { ...sig, rows: 65 }], 1);
    const key = tuneKey('nk', 'f32', 3, 20, 40);
    expect(Object.keys(table)).toEqual([key]); // many-row shapes always take the tiled kernel
    expect(getMatmulChoice(dev, key)).toEqual(table[key]);
    const a = randn(3 * 20, 21);
    const w = randn(40 * 20, 22);
    const out = matmul(Tensor.from(dev, a, [3, 20]), Tensor.from(dev, w, [40, 20]), { layout: 'nk' });
    expectClose(await out.read(), matmulRef(a, w, 3, 20, 40, 'nk'), 1e-4, 1e-4);
    expect(await autotuneMatmul(dev, [sig], 1)).toEqual({}); // already tuned
  });
});

describe("autotuning's choice among timed candidates (candidate 0: the untuned kernel)", async () => {
  const { chooseCandidate, TUNE_MIN_GAIN } = await import('../src/tensor/tune.js');
  const untuned = [1.0, 1.0, 1.0, 1.0, 1.0];

  it('keeps the untuned kernel when no candidate beats it by the minimum gain', () => {
    const slightlyFaster = untuned.map((t) => t * (1 - TUNE_MIN_GAIN / 2));
    expect(chooseCandidate([untuned, slightlyFaster])).toBe(0);
  });

  it('takes a candidate whose median beats the untuned kernel by more than the minimum gain', () => {
    const faster = untuned.map((t) => t * (1 - 2 * TUNE_MIN_GAIN));
    expect(chooseCandidate([untuned, [1.2, 1.1, 1.0, 1.05], faster])).toBe(2);
  });

  it('judges by the median batch: one lucky batch does not win', () => {
    const lucky = [0.5, 1.1, 1.2, 1.1, 1.15];
    expect(chooseCandidate([untuned, lucky])).toBe(0);
  });
});

describe('gemv-uniform row chunks', () => {
  // A device's limits only: 64 KiB uniform bindings at 256-byte offsets.
  const dev = { limits: { maxUniformBufferBindingSize: 65536, minUniformBufferOffsetAlignment: 256 }, tuning: DEFAULT_TUNING } as Parameters<typeof uniformChunkRows>[0];

  it('takes all rows in one binding when they fit', () => {
    expect(uniformChunkRows(dev, 'nk', 5, 512)).toBe(5);
    expect(uniformChunkRows(dev, 'nk', 8, 2048)).toBe(8);
  });

  it('splits into equal chunks no larger than a binding or 16 rows', () => {
    expect(uniformChunkRows(dev, 'nk', 40, 64)).toBe(14); // 14 + 14 + 12
    expect(uniformChunkRows(dev, 'nk', 17, 2048)).toBe(6); // 8 KiB rows: 6 + 6 + 5
  });

  it('starts every later chunk at an aligned offset', () => {
    // 80-byte rows: only multiples of 16 rows land on 256-byte boundaries.
    expect(uniformChunkRows(dev, 'nk', 40, 20)).toBe(16);
  });

  it('cannot run [K, N] weights, K not a multiple of 4, or rows larger than a binding', () => {
    expect(uniformChunkRows(dev, 'kn', 5, 512)).toBe(0);
    expect(uniformChunkRows(dev, 'nk', 5, 13)).toBe(0);
    expect(uniformChunkRows(dev, 'nk', 1, 32768)).toBe(0);
  });
});
