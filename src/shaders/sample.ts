/**
 * Sampling on the GPU, so that decoding reads back token ids and a few probabilities instead
 * of vocabulary rows.
 *  - filteredProbs: softmax(logits / temperature) restricted to the top-k and then to the
 *    smallest top-p nucleus, renormalised. Thresholds are found by a bitwise search over the
 *    order-preserving integer image of the floats (32 workgroup counts, no sort); tokens tied
 *    with the threshold are kept.
 *  - sampleRows: inverse-CDF draw per row from non-negative weights (need not sum to 1) with a
 *    uniform supplied by the caller's seeded generator.
 */
import { paramsStruct, rowEntry, workgroupReduce } from './common.js';

const WG = 256;

const WG_SUM = `${workgroupReduce('sumF', 'f32', '+', WG)}${workgroupReduce('sumU', 'u32', '+', WG)}${workgroupReduce('maxF', 'f32', 'max', WG)}
// Order-preserving map from f32 to u32: a < b  <=>  key(a) < key(b); -0 and +0 share a key.
fn key(x: f32) -> u32 {
  let b = select(bitcast<u32>(x), 0u, x == 0.0);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}`;

const ENTRY = rowEntry(WG, 'P.V');

export const PROBS_PARAMS = 'uuuff';

export function filteredProbsWGSL(): string {
  return `${paramsStruct(['rows', 'V', 'topK', 'invTemp', 'topP'], PROBS_PARAMS, 2)}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Prob: array<f32>;
${WG_SUM}
${ENTRY}
  var m = -3.0e38;
  for (var i = t; i < P.V; i += ${WG}u) { m = max(m, X[base + i]); }
  m = maxF(m, t);
  // Top-k: the largest key threshold that still keeps at least k tokens.
  var kth = 0u;
  if (P.topK > 0u && P.topK < P.V) {
    for (var bit = 31i; bit >= 0i; bit--) {
      let cand = kth | (1u << u32(bit));
      var c = 0u;
      for (var i = t; i < P.V; i += ${WG}u) { c += select(0u, 1u, key(X[base + i]) >= cand); }
      if (sumU(c, t) >= P.topK) { kth = cand; }
    }
  }
  var s = 0.0;
  for (var i = t; i < P.V; i += ${WG}u) {
    let x = X[base + i];
    let e = select(0.0, exp((x - m) * P.invTemp), key(x) >= kth);
    Prob[base + i] = e;
    s += e;
  }
  s = sumF(s, t);
  // Top-p: the largest probability threshold whose kept mass still reaches topP.
  var pth = 0u;
  if (P.topP < 1.0) {
    let need = P.topP * s;
    for (var bit = 30i; bit >= 0i; bit--) {
      let cand = pth | (1u << u32(bit));
      var c = 0.0;
      for (var i = t; i < P.V; i += ${WG}u) {
        let e = Prob[base + i];
        c += select(0.0, e, bitcast<u32>(e) >= cand);
      }
      if (sumF(c, t) >= need) { pth = cand; }
    }
    var s2 = 0.0;
    for (var i = t; i < P.V; i += ${WG}u) {
      let e = Prob[base + i];
      s2 += select(0.0, e, bitcast<u32>(e) >= pth);
    }
    s = sumF(s2, t);
  }
  let inv = 1.0 / s;
  for (var i = t; i < P.V; i += ${WG}u) {
    let e = Prob[base + i];
    Prob[base + i] = select(0.0, e * inv, bitcast<u32>(e) >= pth);
  }
}`;
}

export const SAMPLE_PARAMS = 'uu';

/** Ids[row] = the first index whose cumulative weight exceeds U[row] · total. Each invocation owns a contiguous span. */
export function sampleRowsWGSL(): string {
  return `${paramsStruct(['rows', 'V'], SAMPLE_PARAMS, 3)}
@group(0) @binding(0) var<storage, read> W: array<f32>;
@group(0) @binding(1) var<storage, read> U: array<f32>;
@group(0) @binding(2) var<storage, read_write> Ids: array<i32>;
var<workgroup> span: array<f32, ${WG}>;
var<workgroup> lastNonZero: array<i32, ${WG}>;
${ENTRY}
  let per = (P.V + ${WG - 1}u) / ${WG}u;
  let lo = min(t * per, P.V);
  let hi = min(lo + per, P.V);
  var s = 0.0;
  var nz = -1i;
  for (var i = lo; i < hi; i++) {
    let w = max(W[base + i], 0.0);
    s += w;
    if (w > 0.0) { nz = i32(i); }
  }
  span[t] = s;
  lastNonZero[t] = nz;
  workgroupBarrier();
  if (t == 0u) {
    var total = 0.0;
    var lastNz = -1i;
    for (var u = 0u; u < ${WG}u; u++) { total += span[u]; if (lastNonZero[u] >= 0i) { lastNz = lastNonZero[u]; } }
    let goal = U[row] * total;
    var acc = 0.0;
    var pick = lastNz;
    var found = false;
    for (var u = 0u; u < ${WG}u && !found; u++) {
      if (acc + span[u] > goal && span[u] > 0.0) {
        // The draw falls in this span. Summed element by element the running total may round
        // to just below the goal: then it is this span's last non-zero weight.
        pick = lastNonZero[u];
        let ulo = min(u * per, P.V);
        let uhi = min(ulo + per, P.V);
        for (var i = ulo; i < uhi; i++) {
          let w = max(W[base + i], 0.0);
          acc += w;
          if (acc > goal && w > 0.0) { pick = i32(i); break; }
        }
        found = true;
      } else {
        acc += span[u];
      }
    }
    Ids[row] = pick;
  }
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
