/**
 * Multi-head attention over a KV cache. The cache holds K and V head-major, [H, capacity, hd],
 * so that appending n positions is one kernel and rolling back is setting the length.
 */
import type { Device } from '../device.js';
import { assertShape, GPULimitError, shapeStr } from '../errors.js';
import { Tensor } from '../tensor.js';
import { kernelSpec } from '../spec.js';
import type { Access } from '../kernels.js';
import { grid2d, SUBGROUP_LANES } from '../../shaders/common.js';
import {
  ATTN_PARAMS,
  type AttentionMask,
  attentionThreads,
  KV_KEEP_PARAMS,
  kvKeepWGSL,
  MAX_TREE_ROWS,
  attentionWorkgroupBytes,
  attentionWGSL,
  QKV_PARAMS,
  qkvSplitWGSL,
  ROTARY_PARAMS,
  rotaryWGSL,
  attentionSubgroupWGSL,
  SUBGROUP_ATTN_PARAMS,
} from '../../shaders/attention.js';
import { uniformWindowBytes } from '../tuning.js';
import { fixedSubgroupWidth } from '../limits.js';

/** (cos, sin) of position·inv_freq_i for rotate-half rotary, [positions, hd/2, 2], in double precision. */
export function ropeTable(device: Device, positions: number, hd: number, base = 10000): Tensor {
  return ropeTableAt(device, Array.from({ length: positions }, (_, p) => p), hd, base);
}

/**
 * A rotary table whose row s holds the angles of `positions[s]` rather than of s: rows of a cache that
 * do not sit at their own index (several drafts' head steps sharing one cache, K rows per position).
 */
export function ropeTableAt(device: Device, positions: readonly number[], hd: number, base = 10000): Tensor {
  const half = hd / 2;
  const t = new Float32Array(positions.length * half * 2);
  positions.forEach((p, s) => {
    for (let i = 0; i < half; i++) {
      const ang = p * base ** ((-2 * i) / hd);
      t[(s * half + i) * 2] = Math.cos(ang);
      t[(s * half + i) * 2 + 1] = Math.sin(ang);
    }
  });
  return Tensor.from(device, t, [positions.length, half, 2]);
}

export class KVCache {
  /** Valid positions. */
  length = 0;
  readonly k: Tensor;
  readonly v: Tensor;

  constructor(
    device: Device,
    readonly heads: number,
    readonly capacity: number,
    readonly headDim: number,
  ) {
    this.k = Tensor.empty(device, [heads, capacity, headDim]).keep();
    this.v = Tensor.empty(device, [heads, capacity, headDim]).keep();
  }

  /** Rolls back to the first n positions (speculative decoding discards rejected drafts). */
  truncate(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.length) {
      throw new RangeError(`KVCache.truncate(${n}): length is ${this.length}`);
    }
    this.length = n;
  }

  /**
   * Keeps positions [0, base) and, after them in this order, the given later positions; drops the
   * rest (a token tree's verification keeps the accepted branch). `keep` must increase strictly.
   */
  keep(base: number, keep: readonly number[]): void {
    if (!Number.isInteger(base) || base < 0 || base > this.length) throw new RangeError(`KVCache.keep: base ${base} not in [0, ${this.length}]`);
    keep.forEach((p, i) => {
      if (!Number.isInteger(p) || p < base + i || p >= this.length || (i > 0 && p <= keep[i - 1])) {
        throw new RangeError(`KVCache.keep: positions [${keep}] must increase strictly within [${base}, ${this.length}) from base ${base}`);
      }
    });
    const moved = keep.findIndex((p, i) => p !== base + i);
    if (moved >= 0) {
      const from = keep.slice(moved);
      const dev = this.k.device;
      dev.scope(() => {
        const positions = Tensor.from(dev, Uint32Array.from(from), [from.length]);
        const spec = kernelSpec('kv_keep', ['r', 'w', 'w'], KV_KEEP_PARAMS, kvKeepWGSL);
        dev.dispatch(spec, [positions.binding, this.k.binding, this.v.binding], [this.heads, this.capacity, this.headDim, base + moved, from.length], [Math.ceil((this.heads * this.headDim) / 64)]);
      });
    }
    this.length = base + keep.length;
  }

  /** Throws if disposed: its buffers may already belong to other tensors. */
  assertLive(op: string): void {
    this.k.assertLive(`${op} (KV cache keys)`);
    this.v.assertLive(`${op} (KV cache values)`);
  }

  dispose(): void {
    this.k.dispose();
    this.v.dispose();
  }
}

/** One KV cache per layer (block) of a model, all kept at the same length. */
export class LayerKVCaches {
  constructor(readonly layers: KVCache[]) {}

  get length(): number {
    return this.layers[0].length;
  }

  get capacity(): number {
    return this.layers[0].capacity;
  }

  /** Rolls every layer back to the first n positions. */
  truncate(n: number): void {
    for (const l of this.layers) l.truncate(n);
  }

  /** Every layer keeps [0, base) and then the given later positions (KVCache.keep). */
  keep(base: number, keep: readonly number[]): void {
    for (const l of this.layers) l.keep(base, keep);
  }

  dispose(): void {
    for (const l of this.layers) l.dispose();
  }
}

/**
 * Splits qkv [n, 3·H·hd] (laid out [q | k | v], heads contiguous) into Q [n, H·hd] and appends
 * K and V to the cache at its current length (rotary applied to Q and K when a table is given).
 */
export function appendQKV(qkv: Tensor, cache: KVCache, rope?: Tensor): Tensor {
  qkv.assertLive('appendQKV');
  cache.assertLive('appendQKV');
  const { heads: H, headDim: hd } = cache;
  const d = H * hd;
  const n = qkv.size / (3 * d);
  assertShape(Number.isInteger(n) && qkv.shape[qkv.shape.length - 1] === 3 * d, 'appendQKV', `qkv ${shapeStr(qkv.shape)} is not [n, ${3 * d}]`);
  assertShape(hd % 2 === 0, 'appendQKV', `head size ${hd} must be even`);
  if (cache.length + n > cache.capacity) {
    throw new GPULimitError(`KV cache full: ${cache.length} + ${n} positions exceed its capacity ${cache.capacity}`);
  }
  if (rope) assertShape(rope.shape[0] >= cache.length + n && rope.shape[1] === hd / 2, 'appendQKV', `rotary table ${shapeStr(rope.shape)} too small`);
  const q = Tensor.empty(qkv.device, [n, d]);
  const spec = kernelSpec(`qkvsplit${rope ? '_rope' : ''}`, rope ? ['r', 'r', 'w', 'w', 'w'] : ['r', 'w', 'w', 'w'], QKV_PARAMS, () => qkvSplitWGSL(!!rope));
  const bufs = [qkv.binding, ...(rope ? [rope.binding] : []), q.binding, cache.k.binding, cache.v.binding];
  qkv.device.dispatch(spec, bufs, [n, H, hd, cache.capacity, cache.length], [Math.ceil((H * hd) / 2 / 64), n]);
  cache.length += n;
  return q;
}

export interface AttentionOptions {
  /** Query i sits at position kvLength - n + i and sees keys up to it (default true). */
  causal?: boolean;
  /**
   * Causal only: the last `bidirectionalTail` queries see every key, the others stay causal
   * (block-causal attention; default 0).
   */
  bidirectionalTail?: number;
  scale?: number;
  /**
   * Tree attention instead of causal: u32 [n], where bit j of row i says that query i sees key j of the
   * last `treeKeys` (its ancestors and itself in a token tree); every query sees the keys before those.
   * At most MAX_TREE_ROWS keys under the masks.
   */
  tree?: Tensor;
  /** With `tree`: how many of the last keys the masks cover (default n, the queries' own). */
  treeKeys?: number;
  /** Query rows per workgroup (default: the device's tuning.attentionRows): each key and value loaded serves that many rows. */
  rowsPerWorkgroup?: number;
}

/** softmax(q·Kᵀ·scale [+ causal mask]) · V for q [n, H·hd] against the cache's valid positions. */
export function attention(q: Tensor, cache: KVCache, opts: AttentionOptions = {}): Tensor {
  q.assertLive('attention');
  cache.assertLive('attention');
  const { heads: H, headDim: hd } = cache;
  const n = q.size / (H * hd);
  assertShape(Number.isInteger(n) && n <= cache.length, 'attention', `q ${shapeStr(q.shape)} for ${H} heads of ${hd} with ${cache.length} cached positions`);
  const causal = opts.causal ?? true;
  const tail = opts.bidirectionalTail ?? 0;
  assertShape(Number.isInteger(tail) && tail >= 0 && tail <= n && (causal || tail === 0), 'attention', `bidirectionalTail ${tail} must be an integer in 0..${n} rows, with causal attention`);
  const { tree } = opts;
  const treeKeys = opts.treeKeys ?? n;
  if (tree) {
    tree.assertLive('attention (tree)');
    assertShape(tree.dtype === 'u32' && tree.size === n && causal && tail === 0, 'attention', `tree ${shapeStr(tree.shape)} ${tree.dtype} must be u32 [${n}], one mask per query, with causal attention and no bidirectional tail`);
    assertShape(Number.isInteger(treeKeys) && treeKeys >= n && treeKeys <= cache.length, 'attention', `treeKeys ${treeKeys} must be an integer in [${n}, ${cache.length}]: the queries' keys and up to every cached one`);
    if (treeKeys > MAX_TREE_ROWS) throw new GPULimitError(`attention: a tree of ${treeKeys} rows exceeds the ${MAX_TREE_ROWS} a row's ancestor mask holds`);
  }
  const mask: AttentionMask = tree ? 'tree' : causal ? 'causal' : 'none';
  const out = Tensor.empty(q.device, [n, H * hd]);
  const perWorkgroup = opts.rowsPerWorkgroup ?? q.device.tuning.attentionRows;
  assertShape(Number.isInteger(perWorkgroup) && perWorkgroup >= 1 && perWorkgroup <= 16, 'attention', `rowsPerWorkgroup must be an integer in 1..16, got ${perWorkgroup}`);
  const dev = q.device;
  const chunks = opts.rowsPerWorkgroup === undefined ? subgroupChunks(q, H, hd, n) : null;
  if (chunks) {
    const R = dev.tuning.subgroupAttentionRows;
    const window = uniformWindowBytes(dev.limits);
    const bindings: Access[] = tree ? ['u', 'r', 'r', 'w', 'r'] : ['u', 'r', 'r', 'w'];
    const spec = kernelSpec(`attention_sg_hd${hd}_r${R}_u${window / 16}${mask === 'none' ? '' : `_${mask}`}`, bindings, SUBGROUP_ATTN_PARAMS, () => attentionSubgroupWGSL(hd, mask, R, window / 16));
    for (const c of chunks) {
      dev.dispatch(
        spec,
        [{ buffer: q.buffer, offset: c.offset, size: window }, cache.k.binding, cache.v.binding, out.binding, ...(tree ? [tree.binding] : [])],
        [n, H, cache.capacity, cache.length, cache.length - n, tail, opts.scale ?? 1 / Math.sqrt(hd), hd / 4, cache.length - treeKeys, c.row0, c.rows, c.qBase],
        grid2d(Math.ceil(c.rows / R) * H),
      );
    }
    return out;
  }
  // A row's result does not depend on R and rows past the end see no keys: 2..R-1 rows run the
  // R-row kernel, so each thread count has two variants (one row, R rows) instead of R.
  const rows = n === 1 ? 1 : perWorkgroup;
  const spec = attentionSpec(dev, hd, mask, rows);
  dev.dispatch(
    spec,
    [q.binding, cache.k.binding, cache.v.binding, out.binding, ...(tree ? [tree.binding] : [])],
    [n, H, cache.capacity, cache.length, cache.length - n, tail, opts.scale ?? 1 / Math.sqrt(hd), hd % 4 === 0 ? hd / 4 : hd, cache.length - treeKeys],
    grid2d(Math.ceil(n / spec.rows) * H),
  );
  return out;
}

/**
 * The subgroup kernel's dispatches for q's n rows, or null where the tiled kernel runs: one row, a tuning of 0 rows,
 * subgroups that are not exactly SUBGROUP_LANES wide, or a head or a row too wide for it. Each dispatch
 * binds its rows of Q as one uniform window from an aligned offset at or before them (qBase: their first vec4 in it).
 */
function subgroupChunks(q: Tensor, H: number, hd: number, n: number): Array<{ row0: number; rows: number; offset: number; qBase: number }> | null {
  const dev = q.device;
  const R = dev.tuning.subgroupAttentionRows;
  const L = SUBGROUP_LANES;
  if (n < 2 || R === 0 || fixedSubgroupWidth(dev.info) !== L || hd % 4 !== 0 || hd % L !== 0) return null;
  const window = uniformWindowBytes(dev.limits);
  const align = dev.limits.minUniformBufferOffsetAlignment;
  const rowBytes = H * hd * 4;
  const size = q.buffer.size;
  const fit = Math.floor((window - align) / rowBytes);
  if (size < window || fit < 1) return null;
  const perChunk = fit >= R ? fit - (fit % R) : fit;
  const lastOffset = size - window - ((size - window) % align);
  const chunks: Array<{ row0: number; rows: number; offset: number; qBase: number }> = [];
  for (let row0 = 0; row0 < n; row0 += perChunk) {
    const rows = Math.min(perChunk, n - row0);
    const start = row0 * rowBytes;
    const offset = Math.min(start - (start % align), lastOffset);
    if (start - offset + rows * rowBytes > window) return null;
    chunks.push({ row0, rows, offset, qBase: (start - offset) / 16 });
  }
  return chunks;
}

function attentionSpec(dev: Device, hd: number, mask: AttentionMask, rows: number) {
  const R = attentionRows(dev, hd, rows);
  const bindings: Access[] = mask === 'tree' ? ['r', 'r', 'r', 'w', 'r'] : ['r', 'r', 'r', 'w'];
  return { ...kernelSpec(`attention_hd${hd}_r${R}${mask === 'none' ? '' : `_${mask}`}`, bindings, ATTN_PARAMS, () => attentionWGSL(hd, mask, R)), rows: R };
}

/**
 * Query rows per workgroup within the device's workgroup memory and invocations (a row's result
 * does not depend on it).
 */
export function attentionRows(dev: Pick<Device, 'limits'>, hd: number, rows: number): number {
  const { maxComputeWorkgroupStorageSize: bytes, maxComputeInvocationsPerWorkgroup: inv, maxComputeWorkgroupSizeX: x } = dev.limits;
  if (attentionThreads(hd) > Math.min(inv, x)) {
    throw new GPULimitError(`attention: head size ${hd} needs ${attentionThreads(hd)} invocations per workgroup; the device allows ${Math.min(inv, x)} (maxComputeInvocationsPerWorkgroup, maxComputeWorkgroupSizeX)`);
  }
  let R = rows;
  while (R > 1 && attentionWorkgroupBytes(hd, R) > bytes) R--;
  if (attentionWorkgroupBytes(hd, R) > bytes) {
    throw new GPULimitError(`attention: head size ${hd} needs ${attentionWorkgroupBytes(hd, R)} bytes of workgroup memory; the device allows ${bytes} (maxComputeWorkgroupStorageSize)`);
  }
  return R;
}

/** Rotate-half rotary on x [n, H, hd] at positions pos0.. (table from ropeTable). */
export function rotary(x: Tensor, table: Tensor, pos0 = 0): Tensor {
  x.assertLive('rotary');
  assertShape(x.shape.length === 3, 'rotary', `x must be [n, H, hd], got ${shapeStr(x.shape)}`);
  const [n, H, hd] = x.shape;
  assertShape(table.shape[0] >= pos0 + n && table.shape[1] === hd / 2, 'rotary', `table ${shapeStr(table.shape)} does not cover positions ${pos0}..${pos0 + n}`);
  const out = Tensor.empty(x.device, x.shape);
  const spec = kernelSpec('rotary', ['r', 'r', 'w'], ROTARY_PARAMS, rotaryWGSL);
  x.device.dispatch(spec, [x.binding, table.binding, out.binding], [n, H, hd, pos0], [Math.ceil((H * hd) / 2 / 64), n]);
  return out;
}
