import { describe, expect, it } from 'vitest';
import type { Device } from '../src/tensor/device.js';
import { Tensor } from '../src/tensor/tensor.js';
import { GPULimitError } from '../src/tensor/errors.js';
import { appendQKV, attention, KVCache, ropeTable, rotary } from '../src/tensor/ops/attention.js';
import { slice } from '../src/tensor/ops/gather.js';
import { createNodeDevice } from '../src/node.js';
import { SUBGROUP_LANES } from '../src/shaders/common.js';
import { fixedSubgroupWidth } from '../src/tensor/limits.js';
import { getDevice } from './helpers/device.js';
import { attentionRef, expectClose, randn, rotaryRef } from './helpers/reference.js';

/** The q, k and v parts of a fused projection [n, 3·d] laid out [q | k | v]. */
function split(qkv: Float32Array, n: number, d: number) {
  const part = (p: number) => {
    const out = new Float32Array(n * d);
    for (let r = 0; r < n; r++) out.set(qkv.subarray(r * 3 * d + p * d, r * 3 * d + (p + 1) * d), r * d);
    return out;
  };
  return { q: part(0), k: part(1), v: part(2) };
}

/** Rows [from, to) of a row-major [*, d] array. */
const rows = (x: Float32Array, d: number, from: number, to: number) => x.subarray(from * d, to * d);

/** Appends qkv [n, 3·H·hd] to the cache and returns the attention output. */
function step(dev: Device, qkv: Float32Array, cache: KVCache, opts: { causal?: boolean; rope?: Tensor } = {}): Tensor {
  const n = qkv.length / (3 * cache.heads * cache.headDim);
  const q = appendQKV(Tensor.from(dev, qkv, [n, 3 * cache.heads * cache.headDim]), cache, opts.rope);
  return attention(q, cache, { causal: opts.causal });
}

/** The reference with rotary applied to q and k at positions 0..L-1 when `rope`. */
function fullRef(qkv: Float32Array, L: number, H: number, hd: number, causal: boolean, rope = false): Float32Array {
  const { q, k, v } = split(qkv, L, H * hd);
  const [rq, rk] = rope ? [rotaryRef(q, L, H, hd), rotaryRef(k, L, H, hd)] : [q, k];
  return attentionRef(rq, rk, v, L, L, H, hd, causal);
}

describe('appendQKV', () => {
  it('returns Q and writes K and V head-major into the cache at its length', async () => {
    const dev = await getDevice();
    const [H, hd, cap] = [3, 16, 10];
    const cache = new KVCache(dev, H, cap, hd);
    const first = randn(2 * 3 * H * hd, 1);
    const second = randn(5 * 3 * H * hd, 2);
    appendQKV(Tensor.from(dev, first, [2, 3 * H * hd]), cache);
    const q = appendQKV(Tensor.from(dev, second, [5, 3 * H * hd]), cache);
    expect(cache.length).toBe(7);
    expect(q.shape).toEqual([5, H * hd]);
    const all = new Float32Array([...first, ...second]);
    const ref = split(all, 7, H * hd);
    expect(Array.from(await q.read())).toEqual(Array.from(rows(ref.q, H * hd, 2, 7)));
    const [kc, vc] = [await cache.k.read(), await cache.v.read()];
    for (const [cached, src, name] of [[kc, ref.k, 'K'], [vc, ref.v, 'V']] as const) {
      for (let h = 0; h < H; h++) {
        for (let p = 0; p < 7; p++) {
          for (let e = 0; e < hd; e++) {
            const got = cached[(h * cap + p) * hd + e];
            const want = src[p * H * hd + h * hd + e];
            if (got !== want) throw new Error(`${name} head ${h} pos ${p} dim ${e}: got ${got}, expected ${want}`);
          }
        }
      }
    }
    cache.dispose();
  });

  it('with a rope table rotates Q and K at their positions (rotate-half) and leaves V alone', async () => {
    const dev = await getDevice();
    const [H, hd, cap] = [2, 64, 40];
    const table = ropeTable(dev, cap, hd);
    const cache = new KVCache(dev, H, cap, hd);
    const prefill = randn(30 * 3 * H * hd, 3);
    appendQKV(Tensor.from(dev, prefill, [30, 3 * H * hd]), cache, table);
    const qkv = randn(3 * 3 * H * hd, 4);
    const q = appendQKV(Tensor.from(dev, qkv, [3, 3 * H * hd]), cache, table);
    const ref = split(qkv, 3, H * hd);
    expectClose(await q.read(), rotaryRef(ref.q, 3, H, hd, 30), 1e-5, 1e-6);
    const [kc, vc] = [await cache.k.read(), await cache.v.read()];
    const rk = rotaryRef(ref.k, 3, H, hd, 30);
    const gotK = new Float32Array(3 * H * hd);
    const gotV = new Float32Array(3 * H * hd);
    for (let p = 0; p < 3; p++) {
      for (let h = 0; h < H; h++) {
        gotK.set(kc.subarray((h * cap + 30 + p) * hd, (h * cap + 31 + p) * hd), (p * H + h) * hd);
        gotV.set(vc.subarray((h * cap + 30 + p) * hd, (h * cap + 31 + p) * hd), (p * H + h) * hd);
      }
    }
    expectClose(gotK, rk, 1e-5, 1e-6);
    expect(Array.from(gotV)).toEqual(Array.from(ref.v));
    cache.dispose();
  });

  it('refuses to append past the cache capacity, naming both', async () => {
    const dev = await getDevice();
    const cache = new KVCache(dev, 1, 4, 16);
    appendQKV(Tensor.from(dev, randn(3 * 48, 5), [3, 48]), cache);
    expect(() => appendQKV(Tensor.from(dev, randn(2 * 48, 6), [2, 48]), cache)).toThrow(GPULimitError);
    expect(() => appendQKV(Tensor.from(dev, randn(2 * 48, 6), [2, 48]), cache)).toThrow(/3 \+ 2 positions exceed its capacity 4/);
    expect(cache.length).toBe(3);
    cache.dispose();
  });
});

describe('attention', () => {
  // [H, hd]: a head count that is not a power of two, the three head sizes (vec4 path), and a
  // head size not divisible by 4 (scalar path).
  const heads: Array<[number, number]> = [[3, 16], [2, 64], [2, 128], [1, 6]];

  for (const causal of [true, false]) {
    for (const [H, hd] of heads) {
      for (const L of [1, 7, 64]) {
        it(`${causal ? 'causal' : 'bidirectional'} H=${H} hd=${hd} L=${L} matches multi-head attention`, async () => {
          const dev = await getDevice();
          const qkv = randn(L * 3 * H * hd, L * hd + H);
          const cache = new KVCache(dev, H, L + 3, hd);
          const out = step(dev, qkv, cache, { causal });
          expectClose(await out.read(), fullRef(qkv, L, H, hd, causal), 1e-5, 1e-5);
          cache.dispose();
        });
      }
    }
  }

  it('block-causal: the last rows of a causal step see every key, the others stay causal', async () => {
    const dev = await getDevice();
    const [H, hd, P, n, tail] = [2, 16, 5, 7, 3];
    const d = H * hd;
    const qkv = randn((P + n) * 3 * d, 77);
    const cache = new KVCache(dev, H, P + n, hd);
    step(dev, qkv.subarray(0, P * 3 * d), cache).dispose(); // a cached causal prefix
    const q = appendQKV(Tensor.from(dev, qkv.subarray(P * 3 * d), [n, 3 * d]), cache);
    const out = await attention(q, cache, { bidirectionalTail: tail }).read();
    const { q: qa, k, v } = split(qkv, P + n, d);
    expectClose(out, attentionRef(rows(qa, d, P, P + n), k, v, n, P + n, H, hd, true, 1 / Math.sqrt(hd), tail), 1e-5, 1e-5);
    // Row n − tail − 1 is causal and row n − tail is not: a check that the test can tell them apart.
    const causalOnly = attentionRef(rows(qa, d, P, P + n), k, v, n, P + n, H, hd, true);
    expect(Math.abs(out[(n - tail) * d] - causalOnly[(n - tail) * d])).toBeGreaterThan(1e-4);
    expect(() => attention(q, cache, { bidirectionalTail: n + 1 })).toThrow(/bidirectionalTail 8/);
    expect(() => attention(q, cache, { causal: false, bidirectionalTail: 1 })).toThrow(/with causal attention/);
    cache.dispose();
  });

  // Several query rows per workgroup: rows that end at different keys share each key and value
  // load. A cached prefix of 40 keys (several per invocation), 7 rows (a partial last block),
  // 3 of them block-causal.
  for (const R of [1, 2, 3, 4, 16]) {
    it(`with ${R} query rows per workgroup, block-causal rows over a long prefix match the reference`, async () => {
      const dev = await getDevice();
      const [H, hd, P, n, tail] = [2, 64, 40, 7, 3];
      const d = H * hd;
      const qkv = randn((P + n) * 3 * d, 78);
      const cache = new KVCache(dev, H, P + n, hd);
      step(dev, qkv.subarray(0, P * 3 * d), cache).dispose();
      const q = appendQKV(Tensor.from(dev, qkv.subarray(P * 3 * d), [n, 3 * d]), cache);
      const out = await attention(q, cache, { bidirectionalTail: tail, rowsPerWorkgroup: R }).read();
      const { q: qa, k, v } = split(qkv, P + n, d);
      expectClose(out, attentionRef(rows(qa, d, P, P + n), k, v, n, P + n, H, hd, true, 1 / Math.sqrt(hd), tail), 1e-5, 1e-5);
      cache.dispose();
    });
  }

  // Tree attention: a cached prefix every row sees, then the rows' own keys as each row's mask names them
  // (any set with the row itself, not only ancestors). The reference runs each row over the keys it sees.
  for (const [H, hd, R] of [[2, 16, 1], [2, 16, 4], [1, 6, 3]] as const) {
    it(`tree H=${H} hd=${hd}, ${R} rows per workgroup: each row sees the cached keys and the rows its bit mask names`, async () => {
      const dev = await getDevice();
      const [P, n] = [5, 9];
      const d = H * hd;
      const qkv = randn((P + n) * 3 * d, 79 + hd);
      const masks = Array.from({ length: n }, (_, i) => ((0b1011001101 * (i + 3)) & ((1 << n) - 1)) | (1 << i));
      const cache = new KVCache(dev, H, P + n, hd);
      step(dev, qkv.subarray(0, P * 3 * d), cache).dispose();
      const q = appendQKV(Tensor.from(dev, qkv.subarray(P * 3 * d), [n, 3 * d]), cache);
      const out = await attention(q, cache, { tree: Tensor.from(dev, Uint32Array.from(masks), [n]), rowsPerWorkgroup: R }).read();
      const { q: qa, k, v } = split(qkv, P + n, d);
      for (let i = 0; i < n; i++) {
        const seen = [...Array(P).keys(), ...[...Array(n).keys()].filter((j) => (masks[i] >> j) & 1).map((j) => P + j)];
        const pick = (x: Float32Array) => Float32Array.from(seen.flatMap((j) => Array.from(rows(x, d, j, j + 1))));
        expectClose(out.subarray(i * d, (i + 1) * d), attentionRef(rows(qa, d, P + i, P + i + 1), pick(k), pick(v), 1, seen.length, H, hd, false), 1e-5, 1e-5);
      }
      cache.dispose();
    });
  }

  it('tree: refuses a mask of the wrong type or length, and more rows than a mask holds', async () => {
    const dev = await getDevice();
    const cache = new KVCache(dev, 1, 40, 16);
    const q = appendQKV(Tensor.from(dev, randn(3 * 3 * 16, 80), [3, 48]), cache);
    expect(() => attention(q, cache, { tree: Tensor.from(dev, Int32Array.of(1, 3, 5), [3]) })).toThrow(/must be u32 \[3\]/);
    expect(() => attention(q, cache, { tree: Tensor.from(dev, Uint32Array.of(1, 3), [2]) })).toThrow(/must be u32 \[3\]/);
    const wide = appendQKV(Tensor.from(dev, randn(33 * 3 * 16, 81), [33, 48]), cache);
    expect(() => attention(wide, cache, { tree: Tensor.from(dev, new Uint32Array(33), [33]) })).toThrow(/33 rows exceeds the 32/);
    cache.dispose();
  });

  it('rejects a number of query rows per workgroup outside 1..16', async () => {
    const dev = await getDevice();
    const cache = new KVCache(dev, 1, 4, 4);
    cache.length = 4;
    const q = Tensor.from(dev, new Float32Array(8), [2, 4]);
    expect(() => attention(q, cache, { rowsPerWorkgroup: 0 })).toThrow(/rowsPerWorkgroup must be an integer in 1..16, got 0/);
    cache.dispose();
  });

  /**
   * Scores around +120 (a shared component of q and every key) plus a spread of about ±30: exp
   * of a raw score overflows f32 (above 88.7), so only a max-subtracted (online) softmax gets
   * this right. Tolerance 2e-4: an f32 dot product summing to ~150 carries ~1e-5..1e-4 of
   * rounding, which exp turns into relative weight errors of that size (a bug in the online
   * merge gives errors of order 1).
   */
  function largeScores(L: number, H: number, hd: number, seed: number): Float32Array {
    const d = H * hd;
    const qkv = randn(L * 3 * d, seed);
    for (let r = 0; r < L; r++) {
      for (let h = 0; h < H; h++) {
        const [q, k] = [r * 3 * d + h * hd, r * 3 * d + d + h * hd];
        for (let e = 0; e < hd; e++) {
          qkv[q + e] *= 3;
          qkv[k + e] *= 3;
        }
        qkv[q] = 8 * Math.sqrt(hd);
        qkv[k] = 15;
      }
    }
    return qkv;
  }

  it('causal L=1024 hd=64 with scores above 100 is numerically stable', async () => {
    const dev = await getDevice();
    const [L, H, hd] = [1024, 1, 64];
    const qkv = largeScores(L, H, hd, 7);
    const cache = new KVCache(dev, H, L, hd);
    const out = await step(dev, qkv, cache).read();
    expect(out.every(Number.isFinite)).toBe(true);
    expectClose(out, fullRef(qkv, L, H, hd, true), 2e-4, 2e-4);
    cache.dispose();
  });

  it('bidirectional L=1024 hd=16 with scores above 100 is numerically stable', async () => {
    const dev = await getDevice();
    const [L, H, hd] = [1024, 2, 16];
    const qkv = largeScores(L, H, hd, 8);
    const cache = new KVCache(dev, H, L, hd);
    const out = await step(dev, qkv, cache, { causal: false }).read();
    expectClose(out, fullRef(qkv, L, H, hd, false), 2e-4, 2e-4);
    cache.dispose();
  });

  it('causal L=64 hd=128 with scores above 100 is numerically stable', async () => {
    const dev = await getDevice();
    const [L, H, hd] = [64, 2, 128];
    const qkv = largeScores(L, H, hd, 9);
    const cache = new KVCache(dev, H, L, hd);
    expectClose(await step(dev, qkv, cache).read(), fullRef(qkv, L, H, hd, true), 2e-4, 2e-4);
    cache.dispose();
  });

  it('uses the given scale instead of 1/sqrt(hd)', async () => {
    const dev = await getDevice();
    const [L, H, hd] = [7, 3, 16];
    const qkv = randn(L * 3 * H * hd, 10);
    const cache = new KVCache(dev, H, L, hd);
    const q = appendQKV(Tensor.from(dev, qkv, [L, 3 * H * hd]), cache);
    const { q: rq, k, v } = split(qkv, L, H * hd);
    expectClose(await attention(q, cache, { scale: 0.7 }).read(), attentionRef(rq, k, v, L, L, H, hd, true, 0.7), 1e-5, 1e-5);
    cache.dispose();
  });

  it('rejects more query rows than cached positions', async () => {
    const dev = await getDevice();
    const cache = new KVCache(dev, 1, 8, 16);
    appendQKV(Tensor.from(dev, randn(2 * 48, 11), [2, 48]), cache);
    expect(() => attention(Tensor.from(dev, randn(3 * 16, 12), [3, 16]), cache)).toThrow(/with 2 cached positions/);
    cache.dispose();
  });
});

describe('attention by subgroups', () => {
  /** The attention kernels `fn` dispatches. */
  const attentionKernels = (dev: Device, fn: () => void) => dev.collectKernels(fn).map((s) => s.key).filter((k) => k.startsWith('attention'));

  /** A cached causal prefix of P keys, then n query rows appended: their q, and the whole q, k and v. */
  function setUp(dev: Device, H: number, hd: number, P: number, n: number, seed: number) {
    const d = H * hd;
    const qkv = randn((P + n) * 3 * d, seed);
    const cache = new KVCache(dev, H, P + n, hd);
    step(dev, qkv.subarray(0, P * 3 * d), cache).dispose();
    const q = appendQKV(Tensor.from(dev, qkv.subarray(P * 3 * d), [n, 3 * d]), cache);
    const all = split(qkv, P + n, d);
    return { cache, q, k: all.k, v: all.v, qRows: rows(all.q, d, P, P + n) };
  }

  /** The kernel two or more rows run on this adapter: the subgroup one where its subgroups are SUBGROUP_LANES wide. */
  const severalRows = (dev: Device, mask: string) =>
    fixedSubgroupWidth(dev.info) === SUBGROUP_LANES ? expect.stringMatching(new RegExp(`^attention_sg_.*_${mask}$`)) : expect.stringMatching(new RegExp(`^attention_hd\\d+_r\\d+_${mask}$`));

  // CI's adapter (lavapipe) has them, so there every test below runs the subgroup kernel; a GPU with other widths runs the tiled one.
  it.runIf(process.env.CI)('on CI the adapter has subgroups of exactly the kernel\'s width', async () => {
    const { info } = await getDevice();
    expect([info.features.subgroups, info.subgroupMinSize, info.subgroupMaxSize]).toEqual([true, SUBGROUP_LANES, SUBGROUP_LANES]);
  });

  // Head sizes of 2, 8 and 16 values per lane; 2 rows (one partial workgroup) and 11 (a full one and a partial one).
  for (const [H, hd] of [[3, 16], [2, 64], [2, 128]] as const) {
    for (const n of [2, 11]) {
      it(`H=${H} hd=${hd}: ${n} block-causal rows over a cached prefix run the subgroup kernel and match the reference`, async () => {
        const dev = await getDevice();
        const [P, tail] = [37, Math.min(3, n - 1)];
        const { cache, q, qRows, k, v } = setUp(dev, H, hd, P, n, 90 + n + hd);
        expect(attentionKernels(dev, () => attention(q, cache, { bidirectionalTail: tail }))).toEqual([severalRows(dev, 'causal')]);
        const out = await attention(q, cache, { bidirectionalTail: tail }).read();
        expectClose(out, attentionRef(qRows, k, v, n, P + n, H, hd, true, 1 / Math.sqrt(hd), tail), 1e-5, 1e-5);
        const bidirectional = await attention(q, cache, { causal: false }).read();
        expectClose(bidirectional, attentionRef(qRows, k, v, n, P + n, H, hd, false), 1e-5, 1e-5);
        cache.dispose();
      });
    }
  }

  it('rows past one uniform window of Q run as several dispatches, each binding its own rows', async () => {
    const dev = await getDevice();
    // 8 heads of 128: 4 KiB a row, so a 64 KiB window holds fewer than 16 of the 40 rows.
    const [H, hd, P, n] = [8, 128, 9, 40];
    const { cache, q, qRows, k, v } = setUp(dev, H, hd, P, n, 95);
    const before = dev.dispatchCount;
    const out = attention(q, cache);
    // A window holds 15 rows, so 8 (a workgroup's) per dispatch: 5 dispatches; the tiled kernel takes all 40 in one.
    expect(dev.dispatchCount - before).toBe(fixedSubgroupWidth(dev.info) === SUBGROUP_LANES ? 5 : 1);
    expectClose(await out.read(), attentionRef(qRows, k, v, n, P + n, H, hd, true), 1e-5, 1e-5);
    cache.dispose();
  });

  it('tree: each row sees the cached keys and the rows its bit mask names', async () => {
    const dev = await getDevice();
    const [H, hd, P, n] = [2, 64, 5, 9];
    const d = H * hd;
    const { cache, q, qRows, k, v } = setUp(dev, H, hd, P, n, 96);
    const masks = Array.from({ length: n }, (_, i) => ((0b1011001101 * (i + 3)) & ((1 << n) - 1)) | (1 << i));
    const tree = Tensor.from(dev, Uint32Array.from(masks), [n]);
    expect(attentionKernels(dev, () => attention(q, cache, { tree }))).toEqual([severalRows(dev, 'tree')]);
    const out = await attention(q, cache, { tree }).read();
    for (let i = 0; i < n; i++) {
      const seen = [...Array(P).keys(), ...[...Array(n).keys()].filter((j) => (masks[i] >> j) & 1).map((j) => P + j)];
      const pick = (x: Float32Array) => Float32Array.from(seen.flatMap((j) => Array.from(rows(x, d, j, j + 1))));
      expectClose(out.subarray(i * d, (i + 1) * d), attentionRef(rows(qRows, d, i, i + 1), pick(k), pick(v), 1, seen.length, H, hd, false), 1e-5, 1e-5);
    }
    cache.dispose();
  });

  it('one row, an explicit rows-per-workgroup, a tuning of 0 rows or an adapter without subgroups run the tiled kernel', async () => {
    const dev = await getDevice();
    const [H, hd, P, n] = [2, 64, 12, 6];
    const { cache, q } = setUp(dev, H, hd, P, n, 97);
    const one = slice(q, n - 1, n, 0);
    expect(attentionKernels(dev, () => attention(one, cache))).toEqual(['attention_hd64_r1_causal']);
    expect(attentionKernels(dev, () => attention(q, cache, { rowsPerWorkgroup: 2 }))).toEqual(['attention_hd64_r2_causal']);
    const want = await attention(q, cache).read();
    for (const other of [await createNodeDevice({ tuning: { subgroupAttentionRows: 0 } }), await createNodeDevice({ disableFeatures: ['subgroups'] })]) {
      const again = setUp(other, H, hd, P, n, 97);
      expect(attentionKernels(other, () => attention(again.q, again.cache))).toEqual([`attention_hd64_r${other.tuning.attentionRows}_causal`]);
      expectClose(await attention(again.q, again.cache).read(), want, 1e-5, 1e-5);
      again.cache.dispose();
      other.destroy();
    }
    cache.dispose();
  });
});

describe('decoding through the KV cache', () => {
  const [H, hd, L] = [3, 16, 13];

  for (const rope of [false, true]) {
    const tag = rope ? ' (with rotary)' : '';
    it(`prefill then one token at a time gives the rows of the full causal result${tag}`, async () => {
      const dev = await getDevice();
      const qkv = randn(L * 3 * H * hd, 20);
      const ref = fullRef(qkv, L, H, hd, true, rope);
      const table = rope ? ropeTable(dev, L, hd) : undefined;
      const cache = new KVCache(dev, H, L, hd);
      const d3 = 3 * H * hd;
      const prefill = step(dev, qkv.subarray(0, 6 * d3), cache, { rope: table });
      expectClose(await prefill.read(), rows(ref, H * hd, 0, 6), 1e-5, 1e-5);
      for (let p = 6; p < L; p++) {
        const out = step(dev, qkv.subarray(p * d3, (p + 1) * d3), cache, { rope: table });
        expectClose(await out.read(), rows(ref, H * hd, p, p + 1), 1e-5, 1e-5);
      }
      cache.dispose();
    });

    it(`verify-style: appending 4 tokens at once gives the last 4 rows of the full causal result${tag}`, async () => {
      const dev = await getDevice();
      const qkv = randn(L * 3 * H * hd, 21);
      const ref = fullRef(qkv, L, H, hd, true, rope);
      const table = rope ? ropeTable(dev, L, hd) : undefined;
      const cache = new KVCache(dev, H, L, hd);
      const d3 = 3 * H * hd;
      step(dev, qkv.subarray(0, (L - 4) * d3), cache, { rope: table });
      const out = step(dev, qkv.subarray((L - 4) * d3), cache, { rope: table });
      expect(out.shape).toEqual([4, H * hd]);
      expectClose(await out.read(), rows(ref, H * hd, L - 4, L), 1e-5, 1e-5);
      cache.dispose();
    });

    it(`truncate(n) then re-append gives the same result as never having appended${tag}`, async () => {
      const dev = await getDevice();
      const qkv = randn(L * 3 * H * hd, 22);
      const table = rope ? ropeTable(dev, L, hd) : undefined;
      const d3 = 3 * H * hd;
      const clean = new KVCache(dev, H, L, hd);
      step(dev, qkv.subarray(0, 9 * d3), clean, { rope: table });
      const want = await step(dev, qkv.subarray(9 * d3), clean, { rope: table }).read();

      const cache = new KVCache(dev, H, L, hd);
      step(dev, qkv.subarray(0, 9 * d3), cache, { rope: table });
      step(dev, randn(3 * d3, 23, 5), cache, { rope: table }); // rejected drafts
      cache.truncate(9);
      expect(cache.length).toBe(9);
      const got = await step(dev, qkv.subarray(9 * d3), cache, { rope: table }).read();
      expect(Array.from(got)).toEqual(Array.from(want));
      expectClose(got, rows(fullRef(qkv, L, H, hd, true, rope), H * hd, 9, L), 1e-5, 1e-5);
      clean.dispose();
      cache.dispose();
    });
  }

  it('truncate rejects lengths beyond the current one and non-integers', async () => {
    const dev = await getDevice();
    const cache = new KVCache(dev, 1, 8, 16);
    appendQKV(Tensor.from(dev, randn(3 * 48, 24), [3, 48]), cache);
    expect(() => cache.truncate(4)).toThrow(RangeError);
    expect(() => cache.truncate(1.5)).toThrow(RangeError);
    expect(() => cache.truncate(-1)).toThrow(RangeError);
    cache.truncate(0);
    expect(cache.length).toBe(0);
    cache.dispose();
  });

  it('keep(base, positions) moves the kept positions down after base, in order, and drops the rest', async () => {
    const dev = await getDevice();
    const [h, dim] = [2, 16];
    const cache = new KVCache(dev, h, 12, dim);
    appendQKV(Tensor.from(dev, randn(10 * 3 * h * dim, 25), [10, 3 * h * dim]), cache);
    const [k0, v0] = [await cache.k.read(), await cache.v.read()];
    cache.keep(4, [4, 7, 9]);
    expect(cache.length).toBe(7);
    const [k1, v1] = [await cache.k.read(), await cache.v.read()];
    const at = (x: ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> }, head: number, pos: number) => Array.from(x.subarray((head * 12 + pos) * dim, (head * 12 + pos + 1) * dim));
    for (let head = 0; head < h; head++) {
      for (const [dst, src] of [[0, 0], [3, 3], [4, 4], [5, 7], [6, 9]]) {
        expect(at(k1, head, dst), `K head ${head} position ${dst}`).toEqual(at(k0, head, src));
        expect(at(v1, head, dst), `V head ${head} position ${dst}`).toEqual(at(v0, head, src));
      }
    }
    expect(() => cache.keep(2, [3, 3])).toThrow(/increase strictly/);
    expect(() => cache.keep(2, [1])).toThrow(/increase strictly/);
    expect(() => cache.keep(2, [7])).toThrow(/within \[2, 7\)/);
    expect(() => cache.keep(8, [])).toThrow(/base 8 not in \[0, 7\]/);
    cache.dispose();
  });

  it('a disposed cache is refused by appendQKV and attention: its buffers may belong to other tensors now', async () => {
    const dev = await getDevice();
    const cache = new KVCache(dev, 1, 8, 16);
    const q = appendQKV(Tensor.from(dev, randn(3 * 48, 25), [3, 48]), cache);
    cache.dispose();
    expect(() => appendQKV(Tensor.from(dev, randn(48, 26), [1, 48]), cache)).toThrow(/appendQKV \(KV cache keys\): tensor \[1, ?8, ?16\] was disposed/);
    expect(() => attention(q, cache)).toThrow(/attention \(KV cache keys\)/);
  });
});

describe('rotary', () => {
  for (const hd of [16, 64, 128]) {
    it(`rotary() with hd=${hd} matches rotate-half at positions up to 4100 (atol 1e-5: angles of cos/sin)`, async () => {
      const dev = await getDevice();
      const [n, H, pos0] = [5, 3, 4095];
      const x = randn(n * H * hd, hd);
      const table = ropeTable(dev, pos0 + n, hd);
      const out = rotary(Tensor.from(dev, x, [n, H, hd]), table, pos0);
      expectClose(await out.read(), rotaryRef(x, n, H, hd, pos0), 1e-5, 1e-5);
    });
  }

  it('rotary() at position 0 is the identity', async () => {
    const dev = await getDevice();
    const x = randn(1 * 2 * 16, 30);
    const out = rotary(Tensor.from(dev, x, [1, 2, 16]), ropeTable(dev, 1, 16));
    expect(Array.from(await out.read())).toEqual(Array.from(x));
  });

  it('ropeTable holds (cos, sin) of pos·10000^(−2i/hd)', async () => {
    const dev = await getDevice();
    const t = await ropeTable(dev, 3, 8).read();
    const ang = 2 * 10000 ** (-2 / 8); // position 2, pair 1
    expectClose([t[(2 * 4 + 1) * 2], t[(2 * 4 + 1) * 2 + 1]], [Math.cos(ang), Math.sin(ang)], 1e-7, 1e-7);
  });

  it('rotary() rejects a table that does not cover the positions', async () => {
    const dev = await getDevice();
    const x = Tensor.from(dev, randn(3 * 16, 31), [3, 1, 16]);
    expect(() => rotary(x, ropeTable(dev, 4, 16), 2)).toThrow(/does not cover positions 2..5/);
  });
});
