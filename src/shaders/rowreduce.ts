/**
 * Row-wise kernels (one workgroup per row of the last axis): LayerNorm, softmax,
 * log-softmax and argmax. They share a workgroup tree reduction.
 */
import { paramsStruct, rowEntry, weightArray, workgroupReduce, type WeightType } from './common.js';

export const ROW_PARAMS = 'uuf';

export interface LayerNormVariant {
  weight: boolean;
  bias: boolean;
  wtype: WeightType;
  /** Invocations per row. */
  wg: number;
  /**
   * The rows normalised are rows of a table of this type gathered by id plus residual rows (the sum is written out
   * too) instead of rows of X: an embedding, its residual add and the LayerNorm after them in one dispatch.
   */
  gatherAdd?: WeightType;
}

/** Params of a gatherAdd LayerNorm: ROW_PARAMS, then the table's rows and where ids and residual rows are read. */
export const LAYERNORM_GATHER_PARAMS = 'uufuuuuu';

/**
 * y = (x - mean) / sqrt(var + eps) · w + b, statistics in two passes for accuracy.
 * With gatherAdd, x = table[Ids[idBase + row·idStride]] + Res[resBase + row·resStride] (an id outside the table
 * reads a zero row), and x is written to Sum.
 */
export function layerNormWGSL(v: LayerNormVariant): string {
  let b = v.gatherAdd ? 3 : 1;
  const wDecl = v.weight ? weightArray('weight', b++, v.wtype) : '';
  const bDecl = v.bias ? weightArray('bias', b++, v.wtype) : '';
  const input = v.gatherAdd
    ? `@group(0) @binding(0) var<storage, read> Ids: array<i32>;
${weightArray('table', 1, v.gatherAdd)}
@group(0) @binding(2) var<storage, read> Res: array<f32>;`
    : '@group(0) @binding(0) var<storage, read> X: array<f32>;';
  const output = v.gatherAdd
    ? `@group(0) @binding(${b}) var<storage, read_write> Sum: array<f32>;
@group(0) @binding(${b + 1}) var<storage, read_write> Y: array<f32>;`
    : `@group(0) @binding(${b}) var<storage, read_write> Y: array<f32>;`;
  const rowStart = v.gatherAdd
    ? `
  let id = u32(Ids[P.idBase + row * P.idStride]);
  let inTable = id < P.tableRows;
  let tableBase = min(id, P.tableRows - 1u) * P.D;
  let resBase = (P.resBase + row * P.resStride) * P.D;`
    : '';
  const x = (i: string) => (v.gatherAdd ? `(select(0.0, table(tableBase + ${i}), inTable) + Res[resBase + ${i}])` : `X[base + ${i}]`);
  return `${v.gatherAdd ? paramsStruct(['rows', 'D', 'eps', 'tableRows', 'idBase', 'idStride', 'resBase', 'resStride'], LAYERNORM_GATHER_PARAMS, b + 2) : paramsStruct(['rows', 'D', 'eps'], ROW_PARAMS, b + 1)}
${input}
${wDecl}
${bDecl}
${output}
${workgroupReduce('reduceSum', 'f32', '+', v.wg)}
${rowEntry(v.wg, 'P.D')}${rowStart}
  var s = 0.0;
  for (var i = t; i < P.D; i += ${v.wg}u) {
    let x = ${x('i')};${v.gatherAdd ? ' Sum[base + i] = x;' : ''}
    s += x;
  }
  let mean = reduceSum(s, t) / f32(P.D);
  var q = 0.0;
  for (var i = t; i < P.D; i += ${v.wg}u) { let d = ${x('i')} - mean; q += d * d; }
  let inv = inverseSqrt(reduceSum(q, t) / f32(P.D) + P.eps);
  for (var i = t; i < P.D; i += ${v.wg}u) {
    var y = (${x('i')} - mean) * inv;
    ${v.weight ? 'y *= weight(i);' : ''}
    ${v.bias ? 'y += bias(i);' : ''}
    Y[base + i] = y;
  }
}`;
}

/** softmax(x · alpha) or log-softmax(x · alpha) over the last axis, `wg` invocations per row. */
export function softmaxWGSL(log: boolean, wg: number): string {
  return `${paramsStruct(['rows', 'D', 'alpha'], ROW_PARAMS, 2)}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
${workgroupReduce('reduceSum', 'f32', '+', wg)}${workgroupReduce('reduceMax', 'f32', 'max', wg)}
${rowEntry(wg, 'P.D')}
  var m = -3.0e38;
  for (var i = t; i < P.D; i += ${wg}u) { m = max(m, X[base + i] * P.alpha); }
  m = reduceMax(m, t);
  var s = 0.0;
  for (var i = t; i < P.D; i += ${wg}u) { s += exp(X[base + i] * P.alpha - m); }
  s = reduceSum(s, t);
  ${log ? 'let lse = m + log(s);' : 'let inv = 1.0 / s;'}
  for (var i = t; i < P.D; i += ${wg}u) {
    ${log ? 'Y[base + i] = X[base + i] * P.alpha - lse;' : 'Y[base + i] = exp(X[base + i] * P.alpha - m) * inv;'}
  }
}`;
}

/**
 * Index of the largest element of each row (the first one on ties); with `probability`, also its
 * probability under the row's softmax, 1 / Σ exp(x − max): a greedy drafter's confidence.
 * A row holding NaN or ±Inf gives -1, so that callers can tell broken logits from token 0.
 * `wg` invocations per row, a power of two.
 */
export const ARGMAX_PARAMS = 'uuuu';

/** Row r's index goes to Out[outBase + r·outStride] (its probability to Prob[r]). */
export function argmaxWGSL(probability: boolean, wg: number): string {
  return `${paramsStruct(['rows', 'D', 'outBase', 'outStride'], ARGMAX_PARAMS, probability ? 3 : 2)}
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Out: array<i32>;
${probability ? `@group(0) @binding(2) var<storage, read_write> Prob: array<f32>;
${workgroupReduce('reduceSum', 'f32', '+', wg)}` : ''}
var<workgroup> bestV: array<f32, ${wg}>;
var<workgroup> bestI: array<u32, ${wg}>;
var<workgroup> nonFinite: atomic<u32>;
${rowEntry(wg, 'P.D')}
  var v = -3.4e38;
  var idx = 0xffffffffu;
  var bad = 0u;
  for (var i = t; i < P.D; i += ${wg}u) {
    let x = X[base + i];
    // On the bits: a compiler may assume floats are never NaN.
    bad |= u32((bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u);
    if (x > v || idx == 0xffffffffu) { v = x; idx = i; }
  }
  if (bad != 0u) { atomicOr(&nonFinite, 1u); }
  bestV[t] = v;
  bestI[t] = idx;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (t < s) {
      let ov = bestV[t + s];
      let oi = bestI[t + s];
      if (oi != 0xffffffffu && (bestI[t] == 0xffffffffu || ov > bestV[t] || (ov == bestV[t] && oi < bestI[t]))) {
        bestV[t] = ov;
        bestI[t] = oi;
      }
    }
    workgroupBarrier();
  }
  if (t == 0u) { Out[P.outBase + row * P.outStride] = select(i32(bestI[0]), -1, atomicLoad(&nonFinite) != 0u); }${probability ? `
  let m = bestV[0];
  var s = 0.0;
  for (var i = t; i < P.D; i += ${wg}u) { s += exp(X[base + i] - m); }
  s = reduceSum(s, t);
  if (t == 0u) { Prob[row] = 1.0 / s; }` : ''}
}`;
}
