/**
 * matmul(a, w): a [..., K] times a weight stored [K, N] ('kn') or [N, K] ('nk'), with a fused
 * bias / GELU / residual epilogue. Few rows go to the weight-streaming gemv kernels, many rows
 * to the register-tiled kernel. An 'nk' weight larger than the adapter's storage binding limit
 * (GPT-2's tied 50257×d embedding used as the LM head) is bound in row chunks.
 */
import type { Device } from '../device.js';
import type { BufferBinding, KernelSpec } from '../kernels.js';
import { DEFAULT_TUNING, uniformWindowBytes, type KernelTuning, type MatmulChoice } from '../tuning.js';
import { assertShape, GPULimitError, shapeStr } from '../errors.js';
import { BYTES, Tensor } from '../tensor.js';
import { kernelSpec } from '../spec.js';
import { grid2d } from '../../shaders/common.js';
import {
  MATMUL_EPILOGUE,
  MATMUL_PARAMS,
  matmulBindings,
  matmulKey,
  matmulWGSL,
  type MatmulVariant,
  type WeightLayout,
} from '../../shaders/matmul.js';

export interface MatmulOptions {
  /** How the weight is stored: [K, N] ('kn', GPT-2 Conv1D, default) or [N, K] ('nk', nn.Linear). */
  layout?: WeightLayout;
  bias?: Tensor;
  gelu?: boolean;
  /** Added after the activation: out = act(a·W + bias) + residual. */
  residual?: Tensor;
}

export type { MatmulChoice } from '../tuning.js';

/**
 * DEFAULT_TUNING's streamedMaxRows, for decode/warmup.ts's row counts; a device created with
 * another value compiles the kernels warmup misses at their first dispatch.
 */
export const STREAMED_MAX_ROWS = DEFAULT_TUNING.streamedMaxRows;

/** The row bucket a gemv dispatch of `rows` rows runs (tuning.gemvRowBuckets). */
export function rowBucket(tuning: Readonly<KernelTuning>, rows: number): number {
  return tuning.gemvRowBuckets.find((b) => b >= rows) ?? rows;
}

/** The untuned kernel for this many rows (tuning.streamedMaxRows, tuning.gemvDefaults). */
export function defaultChoice(tuning: Readonly<KernelTuning>, rows: number): MatmulChoice {
  if (rows > tuning.streamedMaxRows) return { family: 'tiled', split: 1 };
  let band = tuning.gemvDefaults[0];
  for (const b of tuning.gemvDefaults) if (b.fromRows <= rows) band = b;
  return { family: 'gemv-uniform', split: 1, group: band.group, wide: band.wide };
}

/** Invocations per workgroup of the untuned 'nk' gemv (tuning.gemvThreads, tuning.gemvMinWorkgroups). */
export function defaultThreads(tuning: Readonly<KernelTuning>, N: number, group: number): number {
  let t = tuning.gemvThreads;
  while (t > 16 && Math.ceil(N / (t * group)) < tuning.gemvMinWorkgroups) t /= 2;
  return t;
}

/** Key of tuning.matmulChoices: everything that can change which kernel is fastest. */
export function tuneKey(layout: WeightLayout, wtype: string, M: number, K: number, N: number): string {
  return `matmul:${layout}:${wtype}:m${M}:${K}x${N}`;
}

/** Makes `c` the kernel of this kind of matmul on this device (autotuning does). */
export function setMatmulChoice(device: Device, key: string, c: MatmulChoice): void {
  device.tune({ matmulChoices: { ...device.tuning.matmulChoices, [key]: c } });
}

export function getMatmulChoice(device: Device, key: string): MatmulChoice | undefined {
  return device.tuning.matmulChoices[key];
}

/** Per table of choices: the tuned row counts of each weight shape, and the choices already resolved from them. */
const tunedShapes = new WeakMap<object, { rows: Map<string, Array<[number, MatmulChoice]>>; resolved: Map<string, MatmulChoice | undefined> }>();

/**
 * The kernel a matmul of M rows runs on this device: the choice autotuned for this exact shape, or else the one
 * tuned for the same weight at the nearest row count (a kernel fast for 7 rows of a weight is fast for 6; the
 * untuned default was chosen on another adapter and can be several times slower on this one). 'tiled' is never
 * borrowed for a single row, which autotuning never times it on. Undefined where this weight was never tuned.
 */
export function tunedMatmulChoice(device: Device, layout: WeightLayout, wtype: string, M: number, K: number, N: number): MatmulChoice | undefined {
  const choices = device.tuning.matmulChoices;
  const key = tuneKey(layout, wtype, M, K, N);
  const exact = choices[key];
  if (exact) return exact;
  let index = tunedShapes.get(choices);
  if (!index) {
    index = { rows: new Map(), resolved: new Map() };
    for (const [k, c] of Object.entries(choices)) {
      // tuneKey's fields: layout, weight type, rows, K, N.
      const m = /^matmul:(\w+):(\w+):m(\d+):(\d+)x(\d+)$/.exec(k);
      if (!m) continue;
      const shape = `${m[1]}:${m[2]}:${m[4]}x${m[5]}`;
      const list = index.rows.get(shape) ?? [];
      list.push([Number(m[3]), c]);
      index.rows.set(shape, list);
    }
    tunedShapes.set(choices, index);
  }
  if (index.resolved.has(key)) return index.resolved.get(key);
  let best: MatmulChoice | undefined;
  let distance = Infinity;
  for (const [rows, c] of index.rows.get(`${layout}:${wtype}:${K}x${N}`) ?? []) {
    if (M === 1 && c.family === 'tiled') continue;
    const d = Math.abs(Math.log(rows / M));
    if (d < distance || (d === distance && rows > M)) [best, distance] = [c, d];
  }
  index.resolved.set(key, best);
  return best;
}

export function matmul(a: Tensor, w: Tensor, opts: MatmulOptions = {}, choice?: MatmulChoice): Tensor {
  const layout = opts.layout ?? 'kn';
  const dev = a.device;
  a.assertLive('matmul');
  w.assertLive('matmul');
  assertShape(w.shape.length === 2, 'matmul', `weight must be 2-D, got ${shapeStr(w.shape)}`);
  assertShape(a.dtype === 'f32', 'matmul', `activations must be f32, got ${a.dtype}`);
  assertShape(w.dtype === 'f32' || w.dtype === 'f16', 'matmul', `weight must be f32 or f16, got ${w.dtype}`);
  const K = a.shape[a.shape.length - 1];
  const M = a.size / Math.max(K, 1);
  const [wk, N] = layout === 'kn' ? [w.shape[0], w.shape[1]] : [w.shape[1], w.shape[0]];
  assertShape(wk === K, 'matmul', `a ${shapeStr(a.shape)} and ${layout} weight ${shapeStr(w.shape)}: K ${K} ≠ ${wk}`);
  if (opts.bias) {
    assertShape(opts.bias.size === N, 'matmul', `bias ${shapeStr(opts.bias.shape)} must have ${N} elements`);
  }
  const outShape = [...a.shape.slice(0, -1), N];
  if (opts.residual) {
    assertShape(opts.residual.size === M * N, 'matmul', `residual ${shapeStr(opts.residual.shape)} must be ${shapeStr(outShape)}`);
  }
  const out = Tensor.empty(dev, outShape);
  if (M === 0 || N === 0) return out;
  const tuning = dev.tuning;
  const { gemvMaxRows, streamedMaxRows } = tuning;
  const given = choice ?? tunedMatmulChoice(dev, layout, w.dtype, M, K, N);
  const c = given ?? defaultChoice(tuning, M <= gemvMaxRows ? rowBucket(tuning, M) : M);
  if (c.threads !== undefined && ![16, 32, 64].includes(c.threads)) {
    throw new RangeError(`matmul: threads (invocations per workgroup) must be 16, 32 or 64, got ${c.threads}`);
  }
  const subgroupOk = dev.info.features.subgroups && dev.info.subgroupMaxSize > 0 && dev.info.subgroupMaxSize <= 64 && layout === 'nk';
  const uniformRows = c.family === 'gemv-uniform' && M <= streamedMaxRows ? uniformChunkRows(dev, layout, M, K) : 0;
  const family =
    M > streamedMaxRows ? 'tiled'
    : (c.family === 'gemv-subgroup' && !subgroupOk) || (c.family === 'gemv-uniform' && !uniformRows) ? 'gemv'
    : c.family;
  const nkGemv = (family === 'gemv' || family === 'gemv-uniform') && layout === 'nk';
  // Untuned, each row chunk takes the default for its own bucket (a 20-row matmul's 8-row chunks
  // run the 8-row kernel a matmul of 8 rows runs).
  const chunkChoice = (rows: number): MatmulChoice => given ?? (nkGemv ? defaultChoice(tuning, rows) : c);
  // A padded bucket must also fit the uniform binding and, read from the chunk's first row, the buffer.
  const window = uniformWindowBytes(dev.limits);
  const kernelRows = (mBase: number, rows: number): number => {
    const b = nkGemv ? rowBucket(tuning, rows) : rows;
    if (family !== 'gemv-uniform') return b;
    const fits = b * K * 4 <= window && (mBase + b) * K * 4 <= a.buffer.size;
    return fits ? b : rows;
  };
  // Pool buffers hold a whole window (one kernel for every K): it starts at the chunk's first
  // row, or ends at the buffer's end (an aligned offset) where that is nearer. Another buffer
  // binds just the chunk.
  const wholeWindow = a.buffer.size >= window && (a.buffer.size - window) % dev.limits.minUniformBufferOffsetAlignment === 0;
  const uniformBinding = (mBase: number, rows: number): { binding: BufferBinding; aStart: number } => {
    const start = mBase * K * 4;
    if (!wholeWindow) return { binding: { buffer: a.buffer, offset: start, size: rows * K * 4 }, aStart: 0 };
    const offset = Math.min(start, a.buffer.size - window);
    return { binding: { buffer: a.buffer, offset, size: window }, aStart: (start - offset) / 4 };
  };
  const variant = (rows: number, cc = chunkChoice(rows), group = cc.group ?? 4): MatmulVariant => ({
    family,
    layout,
    wtype: w.dtype as 'f32' | 'f16',
    aligned: K % 4 === 0 && (layout === 'nk' || N % 4 === 0),
    rows: family === 'tiled' ? 0 : rows,
    split: family === 'gemv-split' ? fitSplit(dev, layout, c.split) : 1,
    group: nkGemv ? group : 1,
    threads: nkGemv ? (cc.threads ?? defaultThreads(tuning, N, group)) : 64,
    uniformVec4s: family === 'gemv-uniform' ? (wholeWindow ? window : rows * K * 4) / 16 : 0,
    wide: !!cc.wide && w.dtype === 'f16' && layout === 'nk' && K % 8 === 0 && (family === 'gemv' || family === 'gemv-uniform'),
  });
  // The tiled kernel takes every row at once; the gemv families take at most gemvMaxRows per
  // dispatch, in equal chunks (20 rows as 10 + 10: per-row cost grows with the accumulator count).
  // Each row chunk has its kernel variant and its activation binding ('gemv-uniform' binds just
  // the chunk's rows; the others bind all of A and start at mBase).
  const perDispatch = family === 'tiled' ? M : family === 'gemv-uniform' ? uniformRows : Math.ceil(M / Math.ceil(M / gemvMaxRows));
  const rowChunks: Array<{ mBase: number; rows: number; v: MatmulVariant; spec: KernelSpec; aBinding: BufferBinding; aStart: number }> = [];
  for (let mBase = 0; mBase < M; mBase += perDispatch) {
    const rows = Math.min(perDispatch, M - mBase);
    const v = variant(kernelRows(mBase, rows));
    const { binding: aBinding, aStart } = family === 'gemv-uniform' ? uniformBinding(mBase, v.rows) : { binding: a.binding, aStart: 0 };
    rowChunks.push({ mBase, rows, v, aBinding, aStart, spec: kernelSpec(matmulKey(v), matmulBindings(v), MATMUL_PARAMS, () => matmulWGSL(v)) });
  }
  // An absent bias or residual is bound to the weight's first word: the epilogue's flag drops what it reads there.
  const unused = { buffer: w.buffer, offset: 0, size: 4 };
  const extra = [opts.bias?.binding ?? unused, opts.residual?.binding ?? unused];
  const epilogue = (opts.bias ? MATMUL_EPILOGUE.bias : 0) | (opts.gelu ? MATMUL_EPILOGUE.gelu : 0) | (opts.residual ? MATMUL_EPILOGUE.residual : 0);
  const outBinding = { buffer: out.buffer, size: M * N * 4 };
  const maxBind = dev.limits.maxStorageBufferBindingSize;
  if (outBinding.size > maxBind) {
    throw new GPULimitError(`matmul: output ${shapeStr(outShape)} (${outBinding.size} bytes) exceeds maxStorageBufferBindingSize (${maxBind}); compute fewer rows at a time`);
  }
  for (const chunk of weightChunks(dev, layout, w, K, N)) {
    const wBinding = { buffer: w.buffer, offset: chunk.byteOffset, size: chunk.byteLength };
    for (const { mBase, rows, v, spec, aBinding, aStart } of rowChunks) {
      dev.dispatch(spec, [aBinding, wBinding, ...extra, outBinding], [rows, N, K, chunk.nBase, chunk.nCount, mBase, epilogue, aStart], matmulGrid(v, rows, chunk.nCount, dev.info.subgroupMaxSize));
    }
  }
  return out;
}

/**
 * The 'kn' split gemv runs 64 × split invocations and reduces 64 × split vec4 in workgroup
 * memory: fewer splits where the device allows less (the 'nk' one always runs 64).
 */
function fitSplit(dev: Device, layout: WeightLayout, split: number): number {
  const { maxComputeInvocationsPerWorkgroup: inv, maxComputeWorkgroupSizeY: y, maxComputeWorkgroupStorageSize: bytes } = dev.limits;
  let s = split;
  while (layout === 'kn' && s > 1 && (64 * s > inv || s > y || 64 * s * 16 > bytes)) s /= 2;
  return s;
}

/**
 * Rows per dispatch of 'gemv-uniform' for M rows of length K (0: it cannot run). A chunk must fit
 * the uniform window, and every chunk after the first must start at an aligned offset.
 */
export function uniformChunkRows(dev: Pick<Device, 'limits' | 'tuning'>, layout: WeightLayout, M: number, K: number): number {
  const rowBytes = K * 4;
  if (layout !== 'nk' || K % 4 !== 0) return 0;
  const maxRows = Math.min(dev.tuning.gemvMaxRows, Math.floor(uniformWindowBytes(dev.limits) / rowBytes));
  if (maxRows < 1) return 0;
  if (M <= maxRows) return M;
  const align = dev.limits.minUniformBufferOffsetAlignment;
  const step = align / gcd(rowBytes, align);
  const per = Math.ceil(Math.ceil(M / Math.ceil(M / maxRows)) / step) * step;
  return per <= maxRows ? per : Math.floor(maxRows / step) * step;
}

function matmulGrid(v: MatmulVariant, M: number, n: number, subgroupMax: number): [number, number] {
  if (v.family === 'tiled') return [Math.ceil(n / 32), Math.ceil(M / 32)];
  // Sized for the largest subgroup; with smaller ones the extra workgroups find no row.
  if (v.family === 'gemv-subgroup') return grid2d(Math.ceil((n * subgroupMax) / 64));
  if (v.layout === 'kn') return grid2d(Math.ceil(n / 256));
  const rowsPerWg = v.family === 'gemv-split' ? Math.max(1, 64 / v.split) : v.threads * v.group;
  return grid2d(Math.ceil(n / rowsPerWg));
}

interface WeightChunk {
  nBase: number;
  nCount: number;
  byteOffset: number;
  byteLength: number;
}

/** Row ranges of an 'nk' weight that each fit one storage binding at an aligned offset. */
export function weightChunks(dev: Device, layout: WeightLayout, w: Tensor, K: number, N: number): WeightChunk[] {
  const bytes = BYTES[w.dtype];
  const total = w.size * bytes;
  const maxBind = dev.limits.maxStorageBufferBindingSize;
  const whole = { nBase: 0, nCount: N, byteOffset: 0, byteLength: Math.ceil(total / 4) * 4 };
  if (total <= maxBind) return [whole];
  if (layout === 'kn') {
    throw new GPULimitError(`matmul: [K, N] weight ${shapeStr(w.shape)} (${total} bytes) exceeds maxStorageBufferBindingSize (${maxBind}); store it [N, K]`);
  }
  const rowBytes = K * bytes;
  const alignTo = dev.limits.minStorageBufferOffsetAlignment;
  const step = alignTo / gcd(rowBytes, alignTo);
  const rows = Math.floor(Math.floor(maxBind / rowBytes) / step) * step;
  if (rows === 0) throw new GPULimitError(`matmul: one row of ${shapeStr(w.shape)} does not fit a storage binding`);
  const chunks: WeightChunk[] = [];
  for (let n = 0; n < N; n += rows) {
    const count = Math.min(rows, N - n);
    chunks.push({ nBase: n, nCount: count, byteOffset: n * rowBytes, byteLength: Math.ceil((count * rowBytes) / 4) * 4 });
  }
  return chunks;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
