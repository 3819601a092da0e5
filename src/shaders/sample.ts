/**
 * Sampling on the GPU, so that decoding reads back token ids and a few probabilities instead
 * of vocabulary rows.
 *  - filteredProbs: softmax(logits / temperature) restricted to the top-k and then to the
 *    smallest top-p nucleus, renormalised. Thresholds are found by a radix search over the
 *    order-preserving integer image of the floats (no sort); tokens tied with the threshold
 *    are kept.
 *  - sampleRows: inverse-CDF draw per row from non-negative weights (need not sum to 1) with a
 *    uniform supplied by the caller's seeded generator. filteredProbs can make the same draw from the
 *    rows it filters, in the same dispatch.
 */
import { paramsStruct, rowEntry, workgroupReduce, workgroupReduceBytes } from './common.js';

const WG = 256;

const KEY_FN = `
// Order-preserving map from f32 to u32: a < b  <=>  key(a) < key(b); -0 and +0 share a key.
fn key(x: f32) -> u32 {
  let b = select(bitcast<u32>(x), 0u, x == 0.0);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}`;

/**
 * How filteredProbs searches its thresholds: `digitBits` bits of the 32-bit key per pass over the
 * row (2^digitBits − 1 candidate thresholds counted at once, one workgroup reduction per pass),
 * in workgroups of `wg` invocations, one per row. A bit per pass needs 32 passes and reductions.
 */
export interface ThresholdSearch {
  digitBits: 1 | 2 | 4;
  wg: 32 | 64 | 128 | 256;
}

/**
 * Keys the top-k search gathers before searching (4 KB of workgroup memory): the tokens at or above a lower bound
 * on the k-th largest logit. A row with more searches all its tokens instead.
 */
export const TOPK_GATHER_CAPACITY = 1024;

/**
 * Workgroup memory filteredProbs needs: its scalar sums and max, the candidates' sums, the top-k gather (the
 * invocations' maxima, their bound, the gathered keys and their count) and a draw's spans. The draw's are counted
 * whether a dispatch draws or not, so that every search the device allows can draw.
 */
export function thresholdSearchBytes(s: ThresholdSearch): number {
  const search = 2 * workgroupReduceBytes(4, s.wg) + workgroupReduceBytes(16 * candidateVecs(s), s.wg) + 4 * s.wg + workgroupReduceBytes(4, s.wg) + 4 * TOPK_GATHER_CAPACITY + 8;
  return search + inverseCdfBytes(s.wg);
}

/** vec4s that hold the 2^digitBits − 1 candidates' sums. */
function candidateVecs(s: ThresholdSearch): number {
  return Math.ceil((2 ** s.digitBits - 1) / 4);
}

/**
 * WGSL that raises `result` (a u32 variable holding 0) to the largest threshold th with
 * Σ weight(x_i) over key(x_i) ≥ th at least `goal`, searched digit by digit from the top: each
 * pass counts every candidate digit at once (in vec4 lanes: slot j − 1 holds digit j) and keeps
 * the largest that still reaches the goal.
 */
function thresholdSearch(s: ThresholdSearch, o: { result: string; load: string; key: string; weight: string; goal: string; len?: string }): string {
  const B = s.digitBits;
  const vecs = candidateVecs(s);
  const ids = Array.from({ length: vecs }, (_, q) => q);
  const digits = Array.from({ length: 2 ** B - 1 }, (_, j) => j + 1);
  return `
  for (var digitIndex = 1u; digitIndex <= ${32 / B}u; digitIndex++) {
    let shift = vec4<u32>(32u - ${B}u * digitIndex);
    ${ids.map((q) => `let cand${q} = vec4<u32>(${o.result}) | (vec4<u32>(${4 * q + 1}u, ${4 * q + 2}u, ${4 * q + 3}u, ${4 * q + 4}u) << shift);`).join('\n    ')}
    ${ids.map((q) => `var c${q} = vec4<f32>(0.0);`).join('\n    ')}
    for (var i = t; i < ${o.len ?? 'P.V'}; i += ${s.wg}u) {
      ${o.load}
      let k = vec4<u32>(${o.key});
      let w = vec4<f32>(${o.weight});
      ${ids.map((q) => `c${q} += select(vec4<f32>(0.0), w, k >= cand${q});`).join('\n      ')}
    }
    let total = sumCounts(array<vec4<f32>, ${vecs}>(${ids.map((q) => `c${q}`).join(', ')}), t);
    var digit = 0u;
    ${digits.map((j) => `if (total[${(j - 1) >> 2}][${(j - 1) & 3}] >= ${o.goal}) { digit = ${j}u; }`).join('\n    ')}
    ${o.result} |= digit << shift.x;
  }`;
}

export const PROBS_PARAMS = 'uuuuuuff';
/** PROBS_PARAMS, then where a drawing kernel writes its ids: Ids[drawBase + r·drawStride]. */
export const PROBS_DRAW_PARAMS = `${PROBS_PARAMS}uu`;

/** The filters a filteredProbs kernel applies; each is compiled in only where a dispatch uses it (a cold start JITs less). */
export interface FilterParts {
  topK: boolean;
  topP: boolean;
  /** Also draw an index per row from the filtered distribution, with uniform U[r] (as sampleRows does). */
  draw?: boolean;
}

/**
 * Row r reads the first V columns of X's row r (inStride elements apart) and writes Prob[outBase + r·outStride + i]
 * for i < V, so that a caller can fill rows of a larger tensor in place. `parts.topK`: 0 < topK < V; `parts.topP`:
 * topP < 1.
 */
export function filteredProbsWGSL(s: ThresholdSearch, parts: FilterParts): string {
  // Top-k: the largest key threshold that still keeps at least k tokens (counts are exact in f32). The search runs
  // over the tokens at or above a lower bound on it, gathered once, instead of over the whole row on every pass: with
  // k ≤ wg, the k-th largest of the invocations' own maxima (k distinct tokens reach it). Each pass decides alike
  // over them and over the row (below the bound both counts reach k), so the threshold is the same.
  const topK = `
  laneMax[t] = mine;
  if (t == 0u) { atomicStore(&gathered, 0u); }
  workgroupBarrier();
  let bounded = P.topK <= ${s.wg}u && P.V >= ${s.wg}u;
  var rank = 0u;
  for (var j = 0u; j < ${s.wg}u; j++) { rank += select(0u, 1u, laneMax[j] >= mine); }
  let lower = maxU(select(0u, key(mine), bounded && rank >= P.topK), t);
  if (bounded) {
    for (var i = t; i < P.V; i += ${s.wg}u) {
      let kx = key(X[base + i]);
      if (kx >= lower) {
        let slot = atomicAdd(&gathered, 1u);
        if (slot < ${TOPK_GATHER_CAPACITY}u) { gatheredKeys[slot] = kx; }
      }
    }
  }
  workgroupBarrier();
  if (t == 0u) { gatheredCount = select(0xffffffffu, atomicLoad(&gathered), bounded); }
  let nGathered = workgroupUniformLoad(&gatheredCount);
  let useGathered = nGathered <= ${TOPK_GATHER_CAPACITY}u;
  let searchLen = select(P.V, nGathered, useGathered);${thresholdSearch(s, {
    result: 'kth',
    load: 'var kx = 0u;\n      if (useGathered) { kx = gatheredKeys[i]; } else { kx = key(X[base + i]); }',
    key: 'kx',
    weight: '1.0',
    goal: 'f32(P.topK)',
    len: 'searchLen',
  })}`;
  const gatherMemory = parts.topK
    ? `${workgroupReduce('maxU', 'u32', 'max', s.wg)}
var<workgroup> laneMax: array<f32, ${s.wg}>;
var<workgroup> gatheredKeys: array<u32, ${TOPK_GATHER_CAPACITY}>;
var<workgroup> gathered: atomic<u32>;
var<workgroup> gatheredCount: u32;
`
    : '';
  const topP = `
  // Top-p: the largest probability threshold whose kept mass still reaches topP.
  let need = P.topP * s;${thresholdSearch(s, { result: 'pth', load: 'let e = Prob[outRow + i];', key: 'bitcast<u32>(e)', weight: 'e', goal: 'need' })}
  var s2 = 0.0;
  for (var i = t; i < P.V; i += ${s.wg}u) {
    let e = Prob[outRow + i];
    s2 += select(0.0, e, bitcast<u32>(e) >= pth);
  }
  s = sumF(s2, t);`;
  const searches = parts.topK || parts.topP ? workgroupReduce('sumCounts', `array<vec4<f32>, ${candidateVecs(s)}>`, '+', s.wg) : '';
  const names = ['rows', 'V', 'inStride', 'outBase', 'outStride', 'topK', 'invTemp', 'topP'];
  const params = parts.draw ? paramsStruct([...names, 'drawBase', 'drawStride'], PROBS_DRAW_PARAMS, 4) : paramsStruct(names, PROBS_PARAMS, 2);
  const drawBindings = parts.draw
    ? `@group(0) @binding(2) var<storage, read> U: array<f32>;
@group(0) @binding(3) var<storage, read_write> Ids: array<i32>;
${inverseCdfMemory(s.wg)}`
    : '';
  // The draw reads rows the whole workgroup wrote.
  const draw = parts.draw
    ? `
  storageBarrier();${inverseCdfDraw(s.wg, { weight: (i) => `Prob[outRow + ${i}]`, uniform: 'U[row]', store: 'Ids[P.drawBase + row * P.drawStride]' })}`
    : '';
  return `${params}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Prob: array<f32>;
${drawBindings}
${workgroupReduce('sumF', 'f32', '+', s.wg)}${workgroupReduce('maxF', 'f32', 'max', s.wg)}${searches}${gatherMemory}
${KEY_FN}
${rowEntry(s.wg, 'P.inStride')}
  let outRow = P.outBase + row * P.outStride;
  var mine = -3.0e38;
  for (var i = t; i < P.V; i += ${s.wg}u) { mine = max(mine, X[base + i]); }
  let m = maxF(mine, t);
  var kth = 0u;${parts.topK ? topK : ''}
  var s = 0.0;
  for (var i = t; i < P.V; i += ${s.wg}u) {
    let x = X[base + i];
    let e = select(0.0, exp((x - m) * P.invTemp), key(x) >= kth);
    Prob[outRow + i] = e;
    s += e;
  }
  s = sumF(s, t);
  var pth = 0u;${parts.topP ? topP : ''}
  let inv = 1.0 / s;
  for (var i = t; i < P.V; i += ${s.wg}u) {
    let e = Prob[outRow + i];
    Prob[outRow + i] = select(0.0, e * inv, bitcast<u32>(e) >= pth);
  }${draw}
}`;
}

export const SAMPLE_PARAMS = 'uuuuuu';

/** Workgroup memory of inverseCdfDraw in workgroups of `wg`. */
function inverseCdfMemory(wg: number): string {
  return `var<workgroup> span: array<f32, ${wg}>;
var<workgroup> lastNonZero: array<i32, ${wg}>;`;
}

/** Bytes of inverseCdfMemory. */
function inverseCdfBytes(wg: number): number {
  return 8 * wg;
}

/**
 * WGSL run by a whole workgroup of `wg` (invocation t) that stores, through `store`, the first index i < P.V whose
 * cumulative weight max(weight(i), 0) exceeds uniform · total. Each invocation sums a contiguous span; invocation 0
 * finds the span the draw falls in and walks it.
 */
function inverseCdfDraw(wg: number, o: { weight: (i: string) => string; uniform: string; store: string; total?: string }): string {
  return `
  let per = (P.V + ${wg - 1}u) / ${wg}u;
  let lo = min(t * per, P.V);
  let hi = min(lo + per, P.V);
  var spanSum = 0.0;
  var nz = -1i;
  for (var i = lo; i < hi; i++) {
    let w = max(${o.weight('i')}, 0.0);
    spanSum += w;
    if (w > 0.0) { nz = i32(i); }
  }
  span[t] = spanSum;
  lastNonZero[t] = nz;
  workgroupBarrier();
  if (t == 0u) {
    // Spans from P.V on are empty. The bound is a run-time one, as llvmpipe would otherwise unroll these loops.
    let spans = min(${wg}u, P.V);
    var total = 0.0;
    var lastNz = -1i;
    for (var u = 0u; u < spans; u++) { total += span[u]; if (lastNonZero[u] >= 0i) { lastNz = lastNonZero[u]; } }
    let goal = ${o.uniform} * total;
    var acc = 0.0;
    var pick = lastNz;
    var found = false;
    for (var u = 0u; u < spans && !found; u++) {
      if (acc + span[u] > goal && span[u] > 0.0) {
        // The draw falls in this span. Summed element by element the running total may round
        // to just below the goal: then it is this span's last non-zero weight.
        pick = lastNonZero[u];
        let ulo = min(u * per, P.V);
        let uhi = min(ulo + per, P.V);
        for (var i = ulo; i < uhi; i++) {
          let w = max(${o.weight('i')}, 0.0);
          acc += w;
          if (acc > goal && w > 0.0) { pick = i32(i); break; }
        }
        found = true;
      } else {
        acc += span[u];
      }
    }
    ${o.store} = pick;${o.total ? `
    ${o.total} = total;` : ''}
  }`;
}

/**
 * Ids[outBase + r·outStride] = the first index whose cumulative weight in W's row inBase + r·inStride exceeds
 * U[r] · total.
 */
export function sampleRowsWGSL(): string {
  return `${paramsStruct(['rows', 'V', 'inBase', 'inStride', 'outBase', 'outStride'], SAMPLE_PARAMS, 3)}
@group(0) @binding(0) var<storage, read> W: array<f32>;
@group(0) @binding(1) var<storage, read> U: array<f32>;
@group(0) @binding(2) var<storage, read_write> Ids: array<i32>;
${inverseCdfMemory(WG)}
${rowEntry(WG, 'P.V')}
  let w0 = (P.inBase + row * P.inStride) * P.V;${inverseCdfDraw(WG, { weight: (i) => `W[w0 + ${i}]`, uniform: 'U[row]', store: 'Ids[P.outBase + row * P.outStride]' })}
}`;
}

export const RESIDUAL_DRAW_PARAMS = 'uu';

/**
 * A verification's per-position numbers, one workgroup per drafted position r: Px[r] = Prob[r, d] and
 * Qx[r] = Q[r, d] for the drafted token d = Draft[r], and Ids[r] drawn with U[r] from the residual
 * max(0, Prob[r] − Q[r]) (unnormalised), from where the target takes its token if d is rejected.
 * `block` (block verification, accept.ts): the residual is max(0, w_r · Prob[r] − Q[r]), w_r the weight of
 * the drafted prefix before row r, and Mass[r] its total.
 */
export function residualDrawWGSL(block = false): string {
  const weight = block ? (i: string) => `w * Prob[base + ${i}] - Q[base + ${i}]` : (i: string) => `Prob[base + ${i}] - Q[base + ${i}]`;
  return `${paramsStruct(['rows', 'V'], RESIDUAL_DRAW_PARAMS, block ? 8 : 7)}
@group(0) @binding(0) var<storage, read> Prob: array<f32>;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> Draft: array<i32>;
@group(0) @binding(3) var<storage, read> U: array<f32>;
@group(0) @binding(4) var<storage, read_write> Ids: array<i32>;
@group(0) @binding(5) var<storage, read_write> Px: array<f32>;
@group(0) @binding(6) var<storage, read_write> Qx: array<f32>;${block ? `
@group(0) @binding(7) var<storage, read_write> Mass: array<f32>;` : ''}
${inverseCdfMemory(WG)}
${rowEntry(WG, 'P.V')}
  if (t == 0u) {
    // A token outside the vocabulary (a broken drafter) reads zeros; the caller rejects it by id.
    let d = u32(Draft[row]);
    let inside = d < P.V;
    let at = base + min(d, P.V - 1u);
    Px[row] = select(0.0, Prob[at], inside);
    Qx[row] = select(0.0, Q[at], inside);
  }${block ? `
  // w_r = min(1, w_{r-1} · p/q) over the drafted tokens before row r (w_0 = 1), as prefixWeights computes it.
  // Every invocation computes it: r ≤ 31 reads, against V for the draw.
  var w = 1.0;
  for (var j = 0u; j < row; j++) {
    let at = j * P.V + min(u32(Draft[j]), P.V - 1u);
    let pj = Prob[at];
    let qj = Q[at];
    let next = select(select(0.0, 1.0, pj > 0.0), min(1.0, w * (pj / qj)), qj > 0.0);
    w = select(0.0, next, w > 0.0);
  }` : ''}${inverseCdfDraw(WG, { weight, uniform: 'U[row]', store: 'Ids[row]', total: block ? 'Mass[row]' : undefined })}
}`;
}

export const GATHER_PARAMS = 'uu';

/** Out[i] = X[Rows[i] · V + Cols[i]]: the few probabilities a decision needs. */
export function gatherWGSL(): string {
  return `${paramsStruct(['n', 'V'], GATHER_PARAMS, 4)}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Rows: array<i32>;
@group(0) @binding(2) var<storage, read> Cols: array<i32>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= P.n) { return; }
  Out[i] = X[u32(Rows[i]) * P.V + u32(Cols[i])];
}`;
}

export const RESIDUAL_CHAIN_PARAMS = 'uuu';

/**
 * The residual chains of a token tree's verification, one workgroup per tree row. Row u starts from its
 * target distribution (Prob, rows summing to 1); for each of its candidates j < Count[u] in turn, a
 * (q row, token x) pair, it writes Probe[u, j] = (r_j(x), q(x)), the numbers of x's acceptance test, and
 * replaces r by norm(max(0, r − q)), the residual after x's rejection. R ends as row u's last residual
 * (unnormalised), from which the target draws when every candidate is rejected.
 */
export function residualChainWGSL(): string {
  return `${paramsStruct(['rows', 'V', 'maxCands'], RESIDUAL_CHAIN_PARAMS, 6)}
@group(0) @binding(0) var<storage, read> Prob: array<f32>;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> Cands: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> Count: array<u32>;
@group(0) @binding(4) var<storage, read_write> R: array<f32>;
@group(0) @binding(5) var<storage, read_write> Probe: array<vec2<f32>>;
${workgroupReduce('sumF', 'f32', '+', WG)}
${rowEntry(WG, 'P.V')}
  for (var i = t; i < P.V; i += ${WG}u) { R[base + i] = Prob[base + i]; }
  // The mass of R: r = R / s.
  var s = 1.0;
  // Every invocation runs every step (the reduction's barriers need them all); rows with fewer candidates idle.
  for (var j = 0u; j < P.maxCands; j++) {
    storageBarrier();
    let tried = j < Count[row];
    let c = Cands[row * P.maxCands + j];
    let qBase = c.x * P.V;
    if (tried && t == 0u) { Probe[row * P.maxCands + j] = vec2<f32>(R[base + c.y] / s, Q[qBase + c.y]); }
    storageBarrier();
    var part = 0.0;
    if (tried) {
      for (var i = t; i < P.V; i += ${WG}u) {
        let v = max(R[base + i] / s - Q[qBase + i], 0.0);
        R[base + i] = v;
        part += v;
      }
    }
    let total = sumF(part, t);
    // A residual with no mass follows a rejection that could not happen; keep r at zero rather than NaN.
    if (tried) { s = max(total, 1.0e-30); }
  }
}`;
}
