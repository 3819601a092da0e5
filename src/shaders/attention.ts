/**
 * Attention WGSL.
 *  - qkvSplit: splits a fused [n, 3·H·hd] projection into Q [n, H·hd] and writes K and V into
 *    head-major caches [H, cap, hd] at positions pos0.., applying rotary (rotate-half) to Q and K
 *    when asked. A KV cache then grows by append and rolls back by its length alone.
 *  - attention: one workgroup per (query rows, head), keys in tiles with an online softmax, so
 *    any length is numerically stable. Causal attention may end in a bidirectional tail: its
 *    last `tail` query rows see every key (a block-causal drafter's masked block). Tree attention
 *    lets each query row see the keys before the last `treeKeys` and, among those, the ones its bit
 *    mask names: a token tree's verification (its ancestors and itself among the tree's rows), or
 *    several drafts' head steps sharing one cache (each draft's own earlier rows).
 */
import { LINEAR_WG, paramsStruct, SUBGROUP_LANES } from './common.js';

export const QKV_PARAMS = 'uuuuu';

/**
 * With rope, binding 1 is a table [positions, hd/2, 2] of (cos, sin) computed on the CPU in
 * double precision: GPU sin/cos are only accurate near [-π, π], and angles reach the context length.
 */
export function qkvSplitWGSL(rope: boolean): string {
  const b = rope ? 1 : 0;
  return `${paramsStruct(['n', 'H', 'hd', 'cap', 'pos0'], QKV_PARAMS, 4 + b)}
@group(0) @binding(0) var<storage, read> QKV: array<f32>;
${rope ? '@group(0) @binding(1) var<storage, read> Rope: array<vec2<f32>>;' : ''}
@group(0) @binding(${1 + b}) var<storage, read_write> Q: array<f32>;
@group(0) @binding(${2 + b}) var<storage, read_write> Kc: array<f32>;
@group(0) @binding(${3 + b}) var<storage, read_write> Vc: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let half = P.hd / 2u;
  let j = wid.x * 64u + lid.x;          // pair index within the row: head h, dims i and i + half
  let row = wid.y;
  if (j >= P.H * half || row >= P.n) { return; }
  let h = j / half;
  let i = j % half;
  let d = P.H * P.hd;
  let src = row * 3u * d + h * P.hd + i;
  let pos = P.pos0 + row;
  var q1 = QKV[src];
  var q2 = QKV[src + half];
  var k1 = QKV[src + d];
  var k2 = QKV[src + d + half];
  ${
    rope
      ? `let cs = Rope[pos * half + i];
  let rq1 = q1 * cs.x - q2 * cs.y; let rq2 = q2 * cs.x + q1 * cs.y;
  let rk1 = k1 * cs.x - k2 * cs.y; let rk2 = k2 * cs.x + k1 * cs.y;
  q1 = rq1; q2 = rq2; k1 = rk1; k2 = rk2;`
      : ''
  }
  let qo = row * d + h * P.hd + i;
  Q[qo] = q1;
  Q[qo + half] = q2;
  let co = (h * P.cap + pos) * P.hd + i;
  Kc[co] = k1;
  Kc[co + half] = k2;
  Vc[co] = QKV[src + 2u * d];
  Vc[co + half] = QKV[src + 2u * d + half];
}`;
}

/** hd: vectors per head (a loop bound the shader compiler must not unroll, see attentionWGSL). */
export const ATTN_PARAMS = 'uuuuuufuu';

/**
 * Invocations per workgroup: one per vector of the head (its output dimension), at most 64.
 * Fixed per head size, so one kernel serves every key count.
 */
export function attentionThreads(hd: number): number {
  return Math.min(64, hd % 4 === 0 ? hd / 4 : hd);
}

/** Keys per tile: scored together, then one max, one exponentiation and one weighted sum each. */
export function attentionTileKeys(hd: number): number {
  return 4 * attentionThreads(hd);
}

/** Workgroup memory of the attention kernel with R rows: queries, a tile's scores and weights, partial sums. */
export function attentionWorkgroupBytes(hd: number, R: number): number {
  const T = attentionThreads(hd);
  return R * hd * 4 + 2 * R * attentionTileKeys(hd) * 4 + 2 * R * T * 4;
}

/** Which keys a query row sees: all of them, those up to its own position, or its tree ancestors'. */
export type AttentionMask = 'none' | 'causal' | 'tree';

/** Most rows a tree attention takes: a row's ancestors are one u32 bit mask. */
export const MAX_TREE_ROWS = 32;

/**
 * One workgroup per (R query rows, head). The keys go in tiles: the invocations share out the
 * tile's keys and score each against the R rows into workgroup memory, each then takes the tile's maxima (from each invocation's) and
 * exponentiates its share into the weights (a separate array: others still read the scores),
 * and each accumulates the weighted values of its own head dimension
 * over the tile (an online softmax across tiles, so any length is numerically stable).
 * The loops over keys and over the head have bounds known only at run time: llvmpipe unrolls
 * constant-bound loops, and its JIT then takes seconds per kernel over the unrolled loads
 * (docs/performance.md, "Compiling kernels").
 */
export function attentionWGSL(hd: number, mask: AttentionMask, R = 1): string {
  const V = hd % 4 === 0 ? 4 : 1;
  const ty = V === 4 ? 'vec4<f32>' : 'f32';
  const n = hd / V;
  const T = attentionThreads(hd);
  const KT = attentionTileKeys(hd);
  const DPI = Math.ceil(n / T);
  // The head loop unrolled by U inside its run-time bound.
  const U = n % 4 === 0 ? 4 : 1;
  const NEG = '-3.0e38';
  // Only when T does not divide the head: a branch inside a constant-bound loop slows the JIT too.
  const guard = n % T === 0 ? '' : 'if (d < P.hd)';
  const tree = mask === 'tree';
  return `${paramsStruct(['n', 'H', 'cap', 'kvLen', 'qPos0', 'tail', 'scale', 'hd', 'treeStart'], ATTN_PARAMS, tree ? 5 : 4)}
@group(0) @binding(0) var<storage, read> Q: array<${ty}>;
@group(0) @binding(1) var<storage, read> Kc: array<${ty}>;
@group(0) @binding(2) var<storage, read> Vc: array<${ty}>;
@group(0) @binding(3) var<storage, read_write> O: array<${ty}>;
${tree ? '// Row i sees key treeStart + j when bit j of Tree[i] is set, and every key before treeStart.\n@group(0) @binding(4) var<storage, read> Tree: array<u32>;' : ''}
// A head is P.hd = ${n} elements of ${ty}; a workgroup takes R rows, T invocations, tiles of KT keys.
const T = ${T}u;
const R = ${R}u;
const KT = ${KT}u;
const DPI = ${DPI}u;
fn dotv(a: ${ty}, b: ${ty}) -> f32 { return ${V === 4 ? 'dot(a, b)' : 'a * b'}; }
var<workgroup> Qs: array<${ty}, ${R * n}>;
var<workgroup> S: array<f32, ${R * KT}>;
var<workgroup> Pw: array<f32, ${R * KT}>;
var<workgroup> partM: array<f32, ${R * T}>;
var<workgroup> partL: array<f32, ${R * T}>;
/** Keys query row \`row\` may see, a bound for the loop over keys (none past the last row). */
fn keysOf(row: u32) -> u32 {
  return select(0u, ${mask === 'causal' ? 'select(min(P.kvLen, P.qPos0 + row + 1u), P.kvLen, row + P.tail >= P.n)' : 'P.kvLen'}, row < P.n);
}
/** Whether query row \`row\` sees key j. */
fn sees(row: u32, j: u32) -> bool {
  ${tree ? 'return j < keysOf(row) && (j < P.treeStart || ((Tree[min(row, P.n - 1u)] >> (j - P.treeStart)) & 1u) == 1u);' : 'return j < keysOf(row);'}
}
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let item = ${LINEAR_WG};
  let row0 = (item / P.H) * R;
  let h = item % P.H;
  let t = lid.x;
  if (row0 >= P.n) { return; }
  let rows = min(R, P.n - row0);
  for (var i = t; i < R * P.hd; i += T) {
    let row = min(row0 + i / P.hd, P.n - 1u);
    Qs[i] = Q[(row * P.H + h) * P.hd + i % P.hd] * P.scale;
  }
  var last = 0u;
  for (var r = 0u; r < R; r++) { last = max(last, keysOf(row0 + r)); }
  var m: array<f32, ${R}>;
  var l: array<f32, ${R}>;
  var corr: array<f32, ${R}>;
  var o: array<${ty}, ${R * DPI}>;
  for (var r = 0u; r < R; r++) { m[r] = ${NEG}; }
  workgroupBarrier();
  for (var j0 = 0u; j0 < last; j0 += KT) {
    let count = min(KT, last - j0);
    var pm: array<f32, ${R}>;
    for (var r = 0u; r < R; r++) { pm[r] = ${NEG}; }
    for (var jj = t; jj < count; jj += T) {
      let j = j0 + jj;
      let koff = (h * P.cap + j) * P.hd;
      // Zeroed explicitly: lavapipe kept a loop-local array's values from the previous iteration.
      var s = array<f32, ${R}>();
      for (var d = 0u; d < P.hd; d += ${U}u) {
        ${Array.from({ length: U }, (_, u) => `let k${u} = Kc[koff + d${u ? ` + ${u}u` : ''}];`).join('\n        ')}
        for (var r = 0u; r < R; r++) {
          let qo = r * P.hd + d;
          s[r] += ${Array.from({ length: U }, (_, u) => `dotv(Qs[qo${u ? ` + ${u}u` : ''}], k${u})`).join(' + ')};
        }
      }
      for (var r = 0u; r < R; r++) {
        let v = select(${NEG}, s[r], sees(row0 + r, j));
        S[r * KT + jj] = v;
        pm[r] = max(pm[r], v);
      }
    }
    for (var r = 0u; r < R; r++) { partM[r * T + t] = pm[r]; }
    workgroupBarrier();
    for (var r = 0u; r < R; r++) {
      var tm = ${NEG};
      for (var u = 0u; u < T; u++) { tm = max(tm, partM[r * T + u]); }
      let mNew = max(m[r], tm);
      corr[r] = exp(m[r] - mNew);
      m[r] = mNew;
      var ps = 0.0;
      for (var jj = t; jj < count; jj += T) {
        let sv = S[r * KT + jj];
        let p = select(0.0, exp(sv - mNew), sv > -1.0e38);
        Pw[r * KT + jj] = p;
        ps += p;
      }
      partL[r * T + t] = ps;
    }
    workgroupBarrier();
    for (var r = 0u; r < R; r++) {
      var ts = 0.0;
      for (var u = 0u; u < T; u++) { ts += partL[r * T + u]; }
      l[r] = l[r] * corr[r] + ts;
    }
    for (var di = 0u; di < DPI; di++) {
      let d = t + di * T;
      ${guard} {
        var acc: array<${ty}, ${R}>;
        for (var r = 0u; r < R; r++) { acc[r] = o[r * DPI + di] * corr[r]; }
        for (var jj = 0u; jj < count; jj++) {
          let vd = Vc[(h * P.cap + j0 + jj) * P.hd + d];
          for (var r = 0u; r < R; r++) { acc[r] += Pw[r * KT + jj] * vd; }
        }
        for (var r = 0u; r < R; r++) { o[r * DPI + di] = acc[r]; }
      }
    }
    // The next tile overwrites S, Pw, partM and partL.
    workgroupBarrier();
  }
  for (var r = 0u; r < rows; r++) {
    for (var di = 0u; di < DPI; di++) {
      let d = t + di * T;
      ${guard} { O[((row0 + r) * P.H + h) * P.hd + d] = o[r * DPI + di] / l[r]; }
    }
  }
}`;
}

/** The subgroup kernel's params: ATTN_PARAMS' and the dispatch's rows (first, count) and where they start in the Q window. */
export const SUBGROUP_ATTN_PARAMS = 'uuuuuufuuuuu';

/**
 * Attention with one subgroup per workgroup of (R query rows, head), for adapters whose subgroups are exactly
 * SUBGROUP_LANES wide (one subgroup per workgroup). Each lane scores one key of a tile of that many against the R rows, subgroupMax
 * and subgroupAdd settle the tile's softmax, and subgroupShuffle hands each key's weight to every lane, which sums
 * its share of the head's dimensions; no workgroup memory and no barriers. Q is bound as a uniform window, which
 * llvmpipe loads once per SIMD group where every lane reads the same element; there a storage buffer or workgroup
 * memory is read lane by lane, each lane behind its own branch (docs/performance.md, "Attention on lavapipe").
 * Loops over keys and over the head keep run-time bounds, as attentionWGSL's do.
 */
export function attentionSubgroupWGSL(hd: number, mask: AttentionMask, R: number, windowVec4s: number): string {
  const L = SUBGROUP_LANES;
  if (hd % 4 !== 0 || hd % L !== 0) throw new Error(`attentionSubgroupWGSL: head size ${hd} must be a multiple of 4 and of ${L}`);
  const n = hd / 4;
  const U = n % 4 === 0 ? 4 : 1;
  const DPL = hd / L;
  const NEG = '-3.0e38';
  const tree = mask === 'tree';
  const keyLoads = Array.from({ length: U }, (_, u) => `let k${u} = Kc[koff + d${u ? ` + ${u}u` : ''}];`).join('\n      ');
  const dots = Array.from({ length: U }, (_, u) => `dot(Q[qo${u ? ` + ${u}u` : ''}], k${u})`).join(' + ');
  return `enable subgroups;
${paramsStruct(['n', 'H', 'cap', 'kvLen', 'qPos0', 'tail', 'scale', 'hd', 'treeStart', 'row0', 'rows', 'qBase'], SUBGROUP_ATTN_PARAMS, tree ? 5 : 4)}
@group(0) @binding(0) var<uniform> Q: array<vec4<f32>, ${windowVec4s}>;
@group(0) @binding(1) var<storage, read> Kc: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> Vc: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${tree ? '// Row i sees key treeStart + j when bit j of Tree[i] is set, and every key before treeStart.\n@group(0) @binding(4) var<storage, read> Tree: array<u32>;' : ''}
// A head is P.hd = ${n} vec4s; a workgroup takes R rows, one lane per key of a tile of L, ${DPL} of the head's values per lane.
const L = ${L}u;
const R = ${R}u;
const DPL = ${DPL}u;
/** Keys row \`row\` (of all P.n) may see: a loop bound. */
fn keysOf(row: u32) -> u32 {
  return ${mask === 'causal' ? 'select(min(P.kvLen, P.qPos0 + row + 1u), P.kvLen, row + P.tail >= P.n)' : 'P.kvLen'};
}
/** Whether row \`row\` sees key j, within its bound. */
fn sees(row: u32, j: u32) -> bool {
  return ${tree ? 'j < P.treeStart || ((Tree[row] >> (j - P.treeStart)) & 1u) == 1u' : 'true'};
}
@compute @workgroup_size(${L})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) t: u32) {
  let item = ${LINEAR_WG};
  let first = P.row0 + (item / P.H) * R;
  let h = item % P.H;
  let end = P.row0 + P.rows;
  if (first >= end) { return; }
  var bound: array<u32, ${R}>;
  var qoff: array<u32, ${R}>;
  var last = 0u;
  for (var r = 0u; r < R; r++) {
    let row = min(first + r, end - 1u);
    bound[r] = select(0u, keysOf(row), first + r < end);
    last = max(last, bound[r]);
    qoff[r] = P.qBase + ((row - P.row0) * P.H + h) * P.hd;
  }
  var m: array<f32, ${R}>;
  var l: array<f32, ${R}>;
  var o: array<f32, ${R * DPL}>;
  for (var r = 0u; r < R; r++) { m[r] = ${NEG}; }
  for (var j0 = 0u; j0 < last; j0 += L) {
    let j = j0 + t;
    let koff = (h * P.cap + min(j, last - 1u)) * P.hd;
    // Zeroed explicitly: lavapipe kept a loop-local array's values from the previous iteration.
    var s = array<f32, ${R}>();
    for (var d = 0u; d < P.hd; d += ${U}u) {
      ${keyLoads}
      for (var r = 0u; r < R; r++) {
        let qo = qoff[r] + d;
        s[r] += ${dots};
      }
    }
    var p: array<f32, ${R}>;
    for (var r = 0u; r < R; r++) {
      let seen = j < bound[r] && sees(min(first + r, end - 1u), j);
      let v = select(${NEG}, s[r] * P.scale, seen);
      let mNew = max(m[r], subgroupMax(v));
      let corr = exp(m[r] - mNew);
      p[r] = select(0.0, exp(v - mNew), seen);
      l[r] = l[r] * corr + subgroupAdd(p[r]);
      m[r] = mNew;
      for (var i = 0u; i < DPL; i++) { o[r * DPL + i] *= corr; }
    }
    for (var kk = 0u; kk < L; kk++) {
      let voff = (h * P.cap + min(j0 + kk, last - 1u)) * P.hd * 4u + t;
      for (var i = 0u; i < DPL; i++) {
        let vd = Vc[voff + i * L];
        for (var r = 0u; r < R; r++) { o[r * DPL + i] += subgroupShuffle(p[r], kk) * vd; }
      }
    }
  }
  for (var r = 0u; r < R; r++) {
    if (first + r < end) {
      let ooff = ((first + r) * P.H + h) * P.hd * 4u + t;
      for (var i = 0u; i < DPL; i++) { O[ooff + i * L] = o[r * DPL + i] / l[r]; }
    }
  }
}`;
}

export const ROTARY_PARAMS = 'uuuu';

/** Standalone rotate-half rotary on X [n, H, hd] at positions pos0.., with the same (cos, sin) table. */
export function rotaryWGSL(): string {
  return `${paramsStruct(['n', 'H', 'hd', 'pos0'], ROTARY_PARAMS, 3)}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Rope: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let half = P.hd / 2u;
  let j = wid.x * 64u + lid.x;
  let row = wid.y;
  if (j >= P.H * half || row >= P.n) { return; }
  let i = j % half;
  let o = row * P.H * P.hd + (j / half) * P.hd + i;
  let cs = Rope[(P.pos0 + row) * half + i];
  let x1 = X[o];
  let x2 = X[o + half];
  Y[o] = x1 * cs.x - x2 * cs.y;
  Y[o + half] = x2 * cs.x + x1 * cs.y;
}`;
}

export const KV_KEEP_PARAMS = 'uuuuu';

/**
 * Moves kept cache positions down over dropped ones: position base + i takes what was at
 * Keep[i] (strictly increasing, Keep[i] ≥ base + i), for keys and values [H, cap, hd]. One
 * invocation per (head, element) walks i upwards, so it reads each position before it overwrites it.
 */
export function kvKeepWGSL(): string {
  return `${paramsStruct(['H', 'cap', 'hd', 'base', 'count'], KV_KEEP_PARAMS, 3)}
@group(0) @binding(0) var<storage, read> Keep: array<u32>;
@group(0) @binding(1) var<storage, read_write> Kc: array<f32>;
@group(0) @binding(2) var<storage, read_write> Vc: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = wid.x * 64u + lid.x;
  if (j >= P.H * P.hd) { return; }
  let h = j / P.hd;
  let e = j % P.hd;
  for (var i = 0u; i < P.count; i++) {
    let src = (h * P.cap + Keep[i]) * P.hd + e;
    let dst = (h * P.cap + P.base + i) * P.hd + e;
    Kc[dst] = Kc[src];
    Vc[dst] = Vc[src];
  }
}`;
}
