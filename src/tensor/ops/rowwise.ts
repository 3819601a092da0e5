/** Ops over the last axis, one workgroup per row: LayerNorm (also of gathered rows plus a residual), softmax, log-softmax, argmax (with its probability). */
import { assertShape, shapeStr } from '../errors.js';
import { Tensor } from '../tensor.js';
import { grid2d } from '../../shaders/common.js';
import { ARGMAX_PARAMS, argmaxWGSL, LAYERNORM_GATHER_PARAMS, layerNormWGSL, ROW_PARAMS, softmaxWGSL } from '../../shaders/rowreduce.js';
import { checkRowsOf, type IdRows, type RowsOf } from './rows.js';
import { kernelSpec } from '../spec.js';
import type { KernelTuning } from '../tuning.js';

/** Invocations per LayerNorm row of D elements (tuning.layerNormWorkgroup up to tuning.layerNormMaxWidth). */
export function layerNormWG(tuning: Readonly<KernelTuning>, D: number): number {
  return D <= tuning.layerNormMaxWidth ? tuning.layerNormWorkgroup : tuning.rowWorkgroup;
}

function rowsOf(x: Tensor): [number, number] {
  const D = x.shape[x.shape.length - 1] ?? 1;
  return [D === 0 ? 0 : x.size / D, D];
}

export interface LayerNormOptions {
  weight?: Tensor;
  bias?: Tensor;
  eps?: number;
}

/** The weight and bias dtype of a LayerNorm (f32 without either), after checking both have D elements. */
function normWeightType(op: string, D: number, opts: LayerNormOptions): 'f32' | 'f16' {
  const wtype = (opts.weight?.dtype ?? opts.bias?.dtype ?? 'f32') as 'f32' | 'f16';
  for (const [name, t] of [['weight', opts.weight], ['bias', opts.bias]] as const) {
    if (!t) continue;
    assertShape(t.size === D, op, `${name} ${shapeStr(t.shape)} must have ${D} elements`);
    assertShape(t.dtype === wtype, op, `weight and bias dtypes differ`);
  }
  return wtype;
}

/** gatherAdd: the type of the table a gathering LayerNorm reads (undefined: a plain one). */
function layerNormSpec(x: { device: Tensor['device'] }, D: number, opts: LayerNormOptions, wtype: 'f32' | 'f16', gatherAdd?: 'f32' | 'f16') {
  const v = { weight: !!opts.weight, bias: !!opts.bias, wtype, wg: layerNormWG(x.device.tuning, D), gatherAdd };
  const key = `layernorm${gatherAdd ? `_gather_${gatherAdd}_add` : ''}_${v.weight ? 'w' : ''}${v.bias ? 'b' : ''}_${wtype}_wg${v.wg}`;
  const inputs = gatherAdd ? (['r', 'r', 'r'] as const) : (['r'] as const);
  const outputs = gatherAdd ? (['w', 'w'] as const) : (['w'] as const);
  const bindings = [...inputs, ...(v.weight ? ['r' as const] : []), ...(v.bias ? ['r' as const] : []), ...outputs];
  return kernelSpec(key, bindings, gatherAdd ? LAYERNORM_GATHER_PARAMS : ROW_PARAMS, () => layerNormWGSL(v));
}

export function layerNorm(x: Tensor, opts: LayerNormOptions = {}): Tensor {
  x.assertLive('layerNorm');
  assertShape(x.dtype === 'f32', 'layerNorm', `expects f32 input, got ${x.dtype}`);
  const [rows, D] = rowsOf(x);
  const spec = layerNormSpec(x, D, opts, normWeightType('layerNorm', D, opts));
  const out = Tensor.empty(x.device, x.shape);
  const buffers = [x, opts.weight, opts.bias, out].filter((t): t is Tensor => !!t).map((t) => t.binding);
  x.device.dispatch(spec, buffers, [rows, D, opts.eps ?? 1e-5], grid2d(rows));
  return out;
}

/**
 * sum = table[ids] + residual and normed = layerNorm(sum), both [n, D], in one dispatch: an embedding read into a
 * residual stream that a LayerNorm reads next. `table` f32 or f16 [rows, D] within one binding (an id outside it
 * reads a zero row); ids as in embedding(); `residual` rows from `residualRow` on ([n, D] or more), or [1, D] added
 * to every row.
 */
export function embeddingAddLayerNorm(table: Tensor, ids: Tensor | IdRows, residual: Tensor, opts: LayerNormOptions & { residualRow?: number } = {}): { sum: Tensor; normed: Tensor } {
  const op = 'embeddingAddLayerNorm';
  table.assertLive(op);
  residual.assertLive(op);
  const source = ids instanceof Tensor ? ids : ids.tensor;
  source.assertLive(op);
  assertShape(table.shape.length === 2 && (table.dtype === 'f32' || table.dtype === 'f16'), op, `table must be 2-D f32 or f16, got ${shapeStr(table.shape)} ${table.dtype}`);
  assertShape(source.dtype === 'i32', op, `ids must be i32, got ${source.dtype}`);
  const [tableRows, D] = table.shape;
  const maxBinding = table.device.limits.maxStorageBufferBindingSize;
  assertShape(table.byteLength <= maxBinding, op, `table ${shapeStr(table.shape)} exceeds this device's binding limit of ${maxBinding} bytes`);
  const n = ids instanceof Tensor ? ids.size : ids.count;
  const idStride = ids instanceof Tensor || n === 0 ? 1 : checkRowsOf(ids, n, 1, op);
  const residualRow = opts.residualRow ?? 0;
  const broadcast = residual.size === D && n > 1;
  assertShape(residual.dtype === 'f32' && Number.isInteger(residualRow) && residualRow >= 0 && residual.size % D === 0 && (broadcast || (residualRow + n) * D <= residual.size), op,
    `residual must be f32 rows of ${D} holding rows ${residualRow}..${residualRow + n - 1} (or one row for all), got ${shapeStr(residual.shape)} ${residual.dtype}`);
  const spec = layerNormSpec(table, D, opts, normWeightType(op, D, opts), table.dtype as 'f32' | 'f16');
  const sum = Tensor.empty(table.device, [n, D]);
  const normed = Tensor.empty(table.device, [n, D]);
  if (n === 0) return { sum, normed };
  const buffers = [source, table, residual, opts.weight, opts.bias, sum, normed].filter((t): t is Tensor => !!t).map((t) => t.binding);
  table.device.dispatch(spec, buffers, [n, D, opts.eps ?? 1e-5, tableRows, ids instanceof Tensor ? 0 : ids.row, idStride, broadcast ? 0 : residualRow, broadcast ? 0 : 1], grid2d(n));
  return { sum, normed };
}

function softmaxImpl(x: Tensor, log: boolean, alpha: number): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  x.assertLive(op);
  assertShape(x.dtype === 'f32', op, `expects f32, got ${x.dtype}`);
  const wg = x.device.tuning.rowWorkgroup;
  const spec = kernelSpec(`${op}_wg${wg}`, ['r', 'w'], ROW_PARAMS, () => softmaxWGSL(log, wg));
  const [rows, D] = rowsOf(x);
  const out = Tensor.empty(x.device, x.shape);
  x.device.dispatch(spec, [x.binding, out.binding], [rows, D, alpha], grid2d(rows));
  return out;
}

/** softmax(alpha · x) over the last axis. */
export const softmax = (x: Tensor, alpha = 1) => softmaxImpl(x, false, alpha);
/** log-softmax(alpha · x) over the last axis. */
export const logSoftmax = (x: Tensor, alpha = 1) => softmaxImpl(x, true, alpha);

function argmaxImpl(x: Tensor, probability: boolean, into?: RowsOf): { ids: Tensor; prob: Tensor | null } {
  const op = probability ? 'argmaxProb' : 'argmax';
  x.assertLive(op);
  assertShape(x.dtype === 'f32', op, `expects f32, got ${x.dtype}`);
  const wg = x.device.tuning.rowWorkgroup;
  const spec = kernelSpec(`${op}_wg${wg}`, probability ? ['r', 'w', 'w'] : ['r', 'w'], ARGMAX_PARAMS, () => argmaxWGSL(probability, wg));
  const [rows, D] = rowsOf(x);
  const outStride = into ? checkRowsOf(into, rows, 1, op) : 1;
  if (into) assertShape(into.tensor.dtype === 'i32', op, `into must be i32, got ${into.tensor.dtype}`);
  const ids = into?.tensor ?? Tensor.empty(x.device, x.shape.slice(0, -1), 'i32');
  const prob = probability ? Tensor.empty(x.device, x.shape.slice(0, -1)) : null;
  x.device.dispatch(spec, [x.binding, ids.binding, ...(prob ? [prob.binding] : [])], [rows, D, into?.row ?? 0, outStride], grid2d(rows));
  return { ids, prob };
}

/** Index of the maximum of each row (first on ties), as i32 [rows]; `into` writes them into rows of an existing i32 tensor, which is returned. */
export const argmax = (x: Tensor, into?: RowsOf): Tensor => argmaxImpl(x, false, into).ids;

/** argmax of each row and its probability under the row's softmax (f32 [rows]), in one pass. */
export const argmaxProb = (x: Tensor, into?: RowsOf) => argmaxImpl(x, true, into) as { ids: Tensor; prob: Tensor };
