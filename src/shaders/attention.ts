/**
 * Attention WGSL.
 *  - qkvSplit: splits a fused [n, 3·H·hd] projection into Q [n, H·hd] and writes K and V into
 *    head-major caches [H, cap, hd] at positions pos0.., applying rotary (rotate-half) to Q and K
 *    when asked. A KV cache then grows by append and rolls back by its length alone.
 *  - attention: one workgroup per (query row, head); its invocations share out the keys, each
 *    keeps an online softmax (running max, sum and weighted V), and the partial results are
 *    merged in workgroup memory, so any length is numerically stable. Causal attention may end
 *    in a bidirectional tail: its last `tail` query rows see every key (a block-causal drafter's
 *    masked block).
 */
import { LINEAR_WG, paramsStruct } from './common.js';

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

export const ATTN_PARAMS = 'uuuuuuf';

/**
 * Invocations per workgroup: enough to share out the keys (about 8 each), few enough that the
 * merge of partial results stays cheap for short contexts, and the partial outputs fit
 * workgroup memory (T·hd floats per query row). Depends on the key count through powers of two
 * only, from 4 (up to 32 keys) to 64 (over 256): five variants in all (ATTENTION_KEY_BUCKETS).
 */
export function attentionThreads(hd: number, keys: number, rows = 1): number {
  const byMemory = 2 ** Math.floor(Math.log2(4096 / (hd * rows)));
  const byKeys = 2 ** Math.ceil(Math.log2(Math.max(1, keys / 8)));
  return Math.max(4, Math.min(64, byMemory, byKeys));
}

/** A key count in each bucket of attentionThreads: together they reach every thread count. */
export const ATTENTION_KEY_BUCKETS = [32, 64, 128, 256, 512];

/** Workgroup memory of the attention kernel: partial outputs, maxima and sums of T·R rows. */
export function attentionWorkgroupBytes(hd: number, T: number, R: number): number {
  const n = hd % 4 === 0 ? hd / 4 : hd;
  const lane = hd % 4 === 0 ? 16 : 4;
  return T * R * n * lane + 2 * T * R * 4;
}

/**
 * Head dimensions divisible by 4 are read, accumulated and merged as vec4 (a quarter of the
 * indexed loads and private-array accesses: on lavapipe each one is issued per lane). A
 * workgroup takes R query rows of one head, so each key and value it loads serves R rows (a
 * verify's or a draft's rows would otherwise each reload the whole cache).
 */
export function attentionWGSL(hd: number, causal: boolean, T: number, R = 1): string {
  const V = hd % 4 === 0 ? 4 : 1;
  const ty = V === 4 ? 'vec4<f32>' : 'f32';
  const n = hd / V;
  return `${paramsStruct(['n', 'H', 'cap', 'kvLen', 'qPos0', 'tail', 'scale'], ATTN_PARAMS, 4)}
@group(0) @binding(0) var<storage, read> Q: array<${ty}>;
@group(0) @binding(1) var<storage, read> Kc: array<${ty}>;
@group(0) @binding(2) var<storage, read> Vc: array<${ty}>;
@group(0) @binding(3) var<storage, read_write> O: array<${ty}>;
// A head is HD elements of ${ty}; a workgroup takes R rows.
const HD = ${n}u;
const T = ${T}u;
const R = ${R}u;
fn dotv(a: ${ty}, b: ${ty}) -> f32 { return ${V === 4 ? 'dot(a, b)' : 'a * b'}; }
var<workgroup> partO: array<${ty}, ${T * R * n}>;
var<workgroup> partM: array<f32, ${T * R}>;
var<workgroup> partL: array<f32, ${T * R}>;
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let item = ${LINEAR_WG};
  let row0 = (item / P.H) * R;
  let h = item % P.H;
  let t = lid.x;
  if (row0 >= P.n) { return; }
  let rows = min(R, P.n - row0);
  var q: array<${ty}, ${R * n}>;
  var ends: array<u32, ${R}>; // 0 for rows past the end: they see no keys
  var last = 0u;
  for (var r = 0u; r < R; r++) {
    let row = min(row0 + r, P.n - 1u);
    let qoff = (row * P.H + h) * HD;
    for (var d = 0u; d < HD; d++) { q[r * HD + d] = Q[qoff + d] * P.scale; }
    ${causal ? 'ends[r] = select(min(P.kvLen, P.qPos0 + row + 1u), P.kvLen, row + P.tail >= P.n);' : 'ends[r] = P.kvLen;'}
    ends[r] = select(0u, ends[r], r < rows);
    last = max(last, ends[r]);
  }
  var m: array<f32, ${R}>;
  var l: array<f32, ${R}>;
  var o: array<${ty}, ${R * n}>;
  for (var r = 0u; r < R; r++) { m[r] = -3.0e38; }
  for (var j = t; j < last; j += T) {
    let koff = (h * P.cap + j) * HD;
    var k: array<${ty}, ${n}>;
    for (var d = 0u; d < HD; d++) { k[d] = Kc[koff + d]; }
    var p: array<f32, ${R}>;
    for (var r = 0u; r < R; r++) {
      p[r] = 0.0; // explicitly: lavapipe kept the previous key's weights in this loop-local array
      if (j < ends[r]) {
        var s = 0.0;
        for (var d = 0u; d < HD; d++) { s += dotv(q[r * HD + d], k[d]); }
        let mNew = max(m[r], s);
        let corr = exp(m[r] - mNew);
        p[r] = exp(s - mNew);
        l[r] = l[r] * corr + p[r];
        for (var d = 0u; d < HD; d++) { o[r * HD + d] = o[r * HD + d] * corr; }
        m[r] = mNew;
      }
    }
    for (var d = 0u; d < HD; d++) {
      let vd = Vc[koff + d];
      for (var r = 0u; r < R; r++) { o[r * HD + d] += p[r] * vd; }
    }
  }
  for (var r = 0u; r < R; r++) { partM[t * R + r] = m[r]; }
  workgroupBarrier();
  for (var r = 0u; r < R; r++) {
    var gm = -3.0e38;
    for (var u = 0u; u < T; u++) { gm = max(gm, partM[u * R + r]); }
    let w = select(0.0, exp(m[r] - gm), l[r] > 0.0);
    partL[t * R + r] = l[r] * w;
    for (var d = 0u; d < HD; d++) { partO[(t * R + r) * HD + d] = o[r * HD + d] * w; }
  }
  workgroupBarrier();
  for (var r = 0u; r < rows; r++) {
    var gl = 0.0;
    for (var u = 0u; u < T; u++) { gl += partL[u * R + r]; }
    let qoff = ((row0 + r) * P.H + h) * HD;
    for (var d = t; d < HD; d += T) {
      var acc = ${ty}(0.0);
      for (var u = 0u; u < T; u++) { acc += partO[(u * R + r) * HD + d]; }
      O[qoff + d] = acc / gl;
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
