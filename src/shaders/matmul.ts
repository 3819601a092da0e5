/**
 * Matmul WGSL: C[M,N] = act(A[M,K] · W + bias) + residual, for weights stored [K,N]
 * ('kn', GPT-2 Conv1D) or [N,K] ('nk', nn.Linear). One generator, specialised by layout,
 * weight dtype, alignment (vec4 loads) and kernel family. K and the epilogue (bias, GELU,
 * residual) are run-time parameters, so one kernel serves every matmul of a row count
 * (docs/performance.md, "Compiling kernels"):
 *  - 'tiled': each invocation owns a 4×4 block of C; registers only, no barriers.
 *  - 'gemv':  few rows (≤ 16 per dispatch, a compile-time constant): weights are streamed once
 *             per dispatch, each invocation owns 4 columns ('kn') or `group` output rows of W ('nk').
 *  - 'gemv-split': 'gemv' with the K loop split over `split` invocations of a workgroup
 *             and reduced in workgroup memory (more parallelism for GPUs on narrow N).
 *  - 'gemv-subgroup' ('nk' only): one subgroup per output row; its lanes read the row
 *             contiguously and reduce with subgroupAdd, without barriers (feature 'subgroups').
 *  - 'gemv-uniform' ('nk' only): 'gemv' with the activation rows bound as a uniform buffer (a
 *             window of compile-time size). Every lane reads the same activation, and an
 *             implementation may then load it once per SIMD group, as llvmpipe does.
 */
import { GELU_FN, LINEAR_WG, paramsStruct, type WeightType } from './common.js';

export type WeightLayout = 'kn' | 'nk';
export type MatmulFamily = 'tiled' | 'gemv' | 'gemv-split' | 'gemv-subgroup' | 'gemv-uniform';

export interface MatmulVariant {
  family: MatmulFamily;
  layout: WeightLayout;
  wtype: WeightType;
  /** K % 4 == 0 (and N % 4 == 0 for 'kn'): vec4 loads. */
  aligned: boolean;
  /**
   * Rows, for the gemv families (1..16). The 'nk' gemv with split 1 may run fewer (P.M): the
   * rows past them repeat the last one.
   */
  rows: number;
  /** K-split factor of 'gemv-split' (power of two). */
  split: number;
  /** 'nk' gemv: output rows per invocation (4, 8 or 16). */
  group: number;
  /**
   * 'nk' gemv (split 1): invocations per workgroup (16, 32 or 64). Fewer let a narrow matmul
   * (N = 512 at 8 rows per invocation is one workgroup of 64) spread over more cores.
   */
  threads: number;
  /**
   * 'gemv-uniform': vec4s of the uniform window the activation rows are bound in, whatever K
   * (0 otherwise).
   */
  uniformVec4s: number;
  /**
   * f16 'nk' gemv (split 1) with K % 8 == 0: weights loaded 8 halves (one vec4<u32>) at a time.
   * Lanes read different rows of W, so an implementation without coalescing (llvmpipe) issues one
   * load per lane per load instruction; wider loads halve their number.
   */
  wide: boolean;
}

/**
 * M: rows (of this dispatch, for the gemv families); mBase: first row of this dispatch;
 * nBase/nCount: the weight chunk's columns; epilogue: MATMUL_EPILOGUE bits; aStart
 * ('gemv-uniform'): where the dispatch's first row starts in the uniform window, in floats.
 */
export const MATMUL_PARAMS = 'uuuuuuuu';
const PARAM_NAMES = ['M', 'N', 'K', 'nBase', 'nCount', 'mBase', 'epilogue', 'aStart'];

/** Bits of the `epilogue` parameter. A binding whose bit is clear is never read. */
export const MATMUL_EPILOGUE = { bias: 1, gelu: 2, residual: 4 } as const;

export function matmulKey(v: MatmulVariant): string {
  return `matmul_${v.family}_${v.layout}_${v.wtype}${v.aligned ? '_v4' : ''}_r${v.rows}_s${v.split}_g${v.group}${v.threads !== 64 ? `_t${v.threads}` : ''}${v.uniformVec4s ? `_u${v.uniformVec4s}` : ''}${v.wide ? '_w8' : ''}`;
}

/** Bindings in order: A, W, bias, residual, C (bias and residual bound even when unused). */
export function matmulBindings(v: MatmulVariant): Array<'r' | 'w' | 'u'> {
  return [v.family === 'gemv-uniform' ? 'u' : 'r', 'r', 'r', 'r', 'w'];
}

function loaders(v: MatmulVariant): string {
  const wt = v.wtype;
  const vecW = v.aligned;
  // A is always f32 activations; W may be f16. Loads return zeros past K so tails need no special case.
  // Row m is relative to this dispatch's first row, mBase.
  const a = v.family === 'gemv-uniform'
    ? `@group(0) @binding(0) var<uniform> A: array<vec4<f32>, ${v.uniformVec4s}>;
// The window holds this dispatch's rows from aStart: no mBase here. Rows past M (a padded row
// bucket) repeat row M - 1.
fn loadA(m: u32, k: u32) -> vec4<f32> { return A[(P.aStart + min(m, P.M - 1u) * P.K + k) / 4u]; }`
    : v.aligned
    ? `@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
fn loadA(m: u32, k: u32) -> vec4<f32> { return A[((min(m, P.M - 1u) + P.mBase) * P.K + k) / 4u]; }`
    : `@group(0) @binding(0) var<storage, read> A: array<f32>;
fn loadA(m: u32, k: u32) -> vec4<f32> {
  let i = (min(m, P.M - 1u) + P.mBase) * P.K + k;
  return vec4<f32>(A[i], select(0.0, A[i + 1u], k + 1u < P.K), select(0.0, A[i + 2u], k + 2u < P.K), select(0.0, A[i + 3u], k + 3u < P.K));
}`;
  // Weights are read through w4 (four at a flat index divisible by 4) or w1 (one). f16 weights
  // are bound as packed u32 words: two halves per 32-bit load, no shader-f16 needed.
  const decl = {
    f32: vecW ? 'array<vec4<f32>>' : 'array<f32>',
    f16: v.wide ? 'array<vec4<u32>>' : vecW ? 'array<vec2<u32>>' : 'array<u32>',
  }[wt];
  if (v.wide) {
    return `${a}
fn loadA8(m: u32, k: u32) -> mat2x4<f32> { return mat2x4<f32>(loadA(m, k), loadA(m, k + 4u)); }
@group(0) @binding(1) var<storage, read> W: ${decl};
// W[n, k..k+7] with n local to this chunk (k % 8 == 0).
fn loadW8(n: u32, k: u32) -> mat2x4<f32> {
  let p = W[(n * P.K + k) / 8u];
  return mat2x4<f32>(vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y)), vec4<f32>(unpack2x16float(p.z), unpack2x16float(p.w)));
}`;
  }
  const access = vecW
    ? wt === 'f32'
      ? 'fn w4(i: u32) -> vec4<f32> { return W[i / 4u]; }'
      : 'fn w4(i: u32) -> vec4<f32> { let p = W[i / 4u]; return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y)); }'
    : wt === 'f32'
      ? 'fn w1(i: u32) -> f32 { return W[i]; }'
      : 'fn w1(i: u32) -> f32 { return unpack2x16float(W[i >> 1u])[i & 1u]; }';
  let w: string;
  if (v.layout === 'kn') {
    // W[k, n..n+3] of this chunk; columns past N and rows past K read as zero.
    w = vecW
      ? `fn loadW(k: u32, n: u32) -> vec4<f32> { return w4(k * P.N + n); }`
      : `fn loadW(k: u32, n: u32) -> vec4<f32> {
  if (k >= P.K) { return vec4<f32>(0.0); }
  let i = k * P.N + n;
  return vec4<f32>(w1(i), select(0.0, w1(i + 1u), n + 1u < P.N), select(0.0, w1(i + 2u), n + 2u < P.N), select(0.0, w1(i + 3u), n + 3u < P.N));
}`;
  } else {
    // W[n, k..k+3] with n local to this chunk.
    w = vecW
      ? `fn loadW(n: u32, k: u32) -> vec4<f32> { return w4(n * P.K + k); }`
      : `fn loadW(n: u32, k: u32) -> vec4<f32> {
  let i = n * P.K + k;
  return vec4<f32>(w1(i), select(0.0, w1(i + 1u), k + 1u < P.K), select(0.0, w1(i + 2u), k + 2u < P.K), select(0.0, w1(i + 3u), k + 3u < P.K));
}`;
  }
  return `${a}\n@group(0) @binding(1) var<storage, read> W: ${decl};\n${access}\n${w}`;
}

/**
 * The epilogue reads its flags at run time through select(), not branches: a branch in the
 * unrolled store loops costs llvmpipe's JIT seconds per kernel, while loading bias[0] or R[0]
 * and computing an unused GELU costs a few instructions per output.
 */
function epilogue(): string {
  return `@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read> R: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
// n is the global column, m relative to mBase.
fn store(m: u32, n: u32, acc: f32) {
  let hasBias = (P.epilogue & ${MATMUL_EPILOGUE.bias}u) != 0u;
  let hasResidual = (P.epilogue & ${MATMUL_EPILOGUE.residual}u) != 0u;
  let i = (m + P.mBase) * P.N + n;
  var y = acc + select(0.0, Bias[select(0u, n, hasBias)], hasBias);
  y = select(y, gelu(y), (P.epilogue & ${MATMUL_EPILOGUE.gelu}u) != 0u);
  C[i] = y + select(0.0, R[select(0u, i, hasResidual)], hasResidual);
}
${GELU_FN}`;
}

export function matmulWGSL(v: MatmulVariant): string {
  const nb = matmulBindings(v).length;
  const head = `${paramsStruct(PARAM_NAMES, MATMUL_PARAMS, nb)}${loaders(v)}\n${epilogue()}\n`;
  if (v.family === 'tiled') return head + tiledBody(v);
  if (v.family === 'gemv-subgroup') return 'enable subgroups;\n' + head + gemvSubgroupBody(v);
  if (v.layout === 'kn') return head + gemvKnBody(v);
  return head + gemvNkBody(v);
}

/** Invocation (x, y) owns C[4y..4y+3, nBase+4x..+3]; rows/cols past the end are clamped on load and skipped on store. */
function tiledBody(v: MatmulVariant): string {
  const inner =
    v.layout === 'kn'
      ? `let b0 = loadW(k, n0); let b1 = loadW(k + 1u, n0); let b2 = loadW(k + 2u, n0); let b3 = loadW(k + 3u, n0);
    for (var i = 0u; i < 4u; i++) {
      let a = loadA(min(m0 + i, P.M - 1u), k);
      acc[i] += a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3;
    }`
      : `let w0 = loadW(min(n0, last), k); let w1 = loadW(min(n0 + 1u, last), k);
    let w2 = loadW(min(n0 + 2u, last), k); let w3 = loadW(min(n0 + 3u, last), k);
    for (var i = 0u; i < 4u; i++) {
      let a = loadA(min(m0 + i, P.M - 1u), k);
      acc[i] += vec4<f32>(dot(a, w0), dot(a, w1), dot(a, w2), dot(a, w3));
    }`;
  return `
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * 4u;
  let m0 = gid.y * 4u;
  if (n0 >= P.nCount || m0 >= P.M) { return; }
  let last = P.nCount - 1u;
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < P.K; k += 4u) {
    ${inner}
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= P.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      if (n0 + j < P.nCount) { store(m, P.nBase + n0 + j, acc[i][j]); }
    }
  }
}`;
}

/** 'kn' gemv: each invocation streams W[:, n..n+3] once for all rows; with split > 1, K is shared out. */
function gemvKnBody(v: MatmulVariant): string {
  const R = v.rows;
  const S = v.family === 'gemv-split' ? v.split : 1;
  const reduce =
    S > 1
      ? `
  for (var m = 0u; m < ${R}u; m++) {
    red[lid.y * 64u + lid.x] = acc[m];
    workgroupBarrier();
    for (var s = ${S / 2}u; s > 0u; s >>= 1u) {
      if (lid.y < s) { red[lid.y * 64u + lid.x] += red[(lid.y + s) * 64u + lid.x]; }
      workgroupBarrier();
    }
    if (lid.y == 0u) { acc[m] = red[lid.x]; }
    workgroupBarrier();
  }
  if (lid.y != 0u) { return; }`
      : '';
  return `
${S > 1 ? `var<workgroup> red: array<vec4<f32>, ${64 * S}>;` : ''}
@compute @workgroup_size(64, ${S})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let n0 = ((${LINEAR_WG}) * 64u + lid.x) * 4u;
  let nc = min(n0, P.N - 1u) & ~3u;
  var acc: array<vec4<f32>, ${R}>;
  // Four rows of W per step: one vec4 of A feeds 16 multiply-adds (loads past K read as zero).
  for (var k = lid.y * 4u; k < P.K; k += ${4 * S}u) {
    let w0 = loadW(k, nc);
    let w1 = loadW(k + 1u, nc);
    let w2 = loadW(k + 2u, nc);
    let w3 = loadW(k + 3u, nc);
    for (var m = 0u; m < ${R}u; m++) {
      let a = loadA(m, k);
      acc[m] += a.x * w0 + a.y * w1 + a.z * w2 + a.w * w3;
    }
  }${reduce}
  if (n0 >= P.N) { return; }
  for (var m = 0u; m < ${R}u; m++) {
    for (var j = 0u; j < 4u; j++) {
      if (n0 + j < P.N) { store(m, n0 + j, acc[m][j]); }
    }
  }
}`;
}

/** 'nk' gemv: each output row n of W is streamed once (split > 1: by `split` invocations and reduced). */
function gemvNkBody(v: MatmulVariant): string {
  const R = v.rows;
  const S = v.family === 'gemv-split' ? v.split : 1;
  if (S === 1) {
    // G rows of W per invocation: each vec4 of A loaded serves G rows. The last invocation's
    // group is moved back to end at the chunk's last row, and rows past M (a padded row bucket)
    // repeat row M - 1: the rows it shares with its neighbour and the repeated rows are stored
    // twice with the same values, so stores need no branch (branches in these unrolled loops
    // cost llvmpipe's JIT seconds per kernel; docs/performance.md, "Compiling kernels").
    const G = v.group;
    const rows = Array.from({ length: G }, (_, j) => j);
    const [step, load, fma] = v.wide
      ? [8, 'loadW8', (j: number) => `acc[m][${j}] += dot(a[0], w${j}[0]) + dot(a[1], w${j}[1]);`]
      : [4, 'loadW', (j: number) => `acc[m][${j}] += dot(a, w${j});`];
    return `
@compute @workgroup_size(${v.threads})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let n0 = ((${LINEAR_WG}) * ${v.threads}u + lid.x) * ${G}u;
  if (n0 >= P.nCount) { return; }
  let last = P.nCount - 1u;
  let base = min(n0, P.nCount - min(${G}u, P.nCount));
  var acc: array<array<f32, ${G}>, ${R}>;
  for (var k = 0u; k < P.K; k += ${step}u) {
    ${rows.map((j) => `let w${j} = ${load}(min(base + ${j}u, last), k);`).join('\n    ')}
    for (var m = 0u; m < ${R}u; m++) {
      let a = ${v.wide ? 'loadA8' : 'loadA'}(m, k);
      ${rows.map(fma).join('\n      ')}
    }
  }
  for (var m = 0u; m < ${R}u; m++) {
    for (var j = 0u; j < ${G}u; j++) { store(min(m, P.M - 1u), P.nBase + min(base + j, last), acc[m][j]); }
  }
}`;
  }
  // A workgroup of (S, 64/S... ) would fragment; use S invocations per row, 64 / S rows per workgroup.
  const rowsPerWg = Math.max(1, 64 / S);
  return `
var<workgroup> red: array<f32, ${rowsPerWg * S * R}>;
@compute @workgroup_size(${S}, ${rowsPerWg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let n = (${LINEAR_WG}) * ${rowsPerWg}u + lid.y;
  let nc = min(n, P.nCount - 1u);
  var acc: array<f32, ${R}>;
  for (var k = lid.x * 4u; k < P.K; k += ${4 * S}u) {
    let w = loadW(nc, k);
    for (var m = 0u; m < ${R}u; m++) { acc[m] += dot(loadA(m, k), w); }
  }
  let base = (lid.y * ${S}u + lid.x) * ${R}u;
  for (var m = 0u; m < ${R}u; m++) { red[base + m] = acc[m]; }
  workgroupBarrier();
  for (var s = ${S / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      for (var m = 0u; m < ${R}u; m++) { red[base + m] += red[base + s * ${R}u + m]; }
    }
    workgroupBarrier();
  }
  if (lid.x == 0u && n < P.nCount) {
    for (var m = 0u; m < ${R}u; m++) { store(m, P.nBase + n, red[base + m]); }
  }
}`;
}

/** 'nk' gemv by subgroups: subgroup g of the workgroup owns row n; lanes stride K by 4 × lanes. */
function gemvSubgroupBody(v: MatmulVariant): string {
  const R = v.rows;
  return `
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) lanes: u32) {
  let perWg = 64u / lanes;
  let n = (${LINEAR_WG}) * perWg + li / lanes;
  let nc = min(n, P.nCount - 1u);
  var acc: array<f32, ${R}>;
  for (var k = lane * 4u; k < P.K; k += 4u * lanes) {
    let w = loadW(nc, k);
    for (var m = 0u; m < ${R}u; m++) { acc[m] += dot(loadA(m, k), w); }
  }
  for (var m = 0u; m < ${R}u; m++) {
    let s = subgroupAdd(acc[m]);
    if (lane == 0u && n < P.nCount) { store(m, P.nBase + n, s); }
  }
}`;
}
