/** Elementwise ops: unary (gelu, silu, …) and binary with the second operand broadcast over rows. */
import { assertShape, shapeStr } from '../errors.js';
import { Tensor } from '../tensor.js';
import { grid2d } from '../../shaders/common.js';
import {
  BINARY,
  binaryWGSL,
  ELEMENTWISE_PARAMS,
  UNARY,
  unaryWGSL,
  type BinaryOp,
  type UnaryOp,
} from '../../shaders/elementwise.js';
import { kernelSpec } from '../spec.js';

function spec(op: string, binary: boolean) {
  return kernelSpec(`${binary ? 'binary' : 'unary'}_${op}`, binary ? ['r', 'r', 'w'] : ['r', 'w'], ELEMENTWISE_PARAMS, () =>
    binary ? binaryWGSL(op as BinaryOp) : unaryWGSL(op as UnaryOp),
  );
}

export function unary(op: UnaryOp, x: Tensor, alpha = 0): Tensor {
  assertShape(op in UNARY, 'unary', `unknown op ${op}`);
  assertShape(x.dtype === 'f32', op, `expects f32, got ${x.dtype}`);
  x.assertLive(op);
  const out = Tensor.empty(x.device, x.shape);
  x.device.dispatch(spec(op, false), [x.binding, out.binding], [x.size, 1, alpha], grid2d(Math.ceil(x.size / 256)));
  return out;
}

/** a op b, where b has a's shape or a's trailing dimensions (a row vector, a scalar …). */
export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  assertShape(op in BINARY, 'binary', `unknown op ${op}`);
  assertShape(a.dtype === 'f32' && b.dtype === 'f32', op, `expects f32, got ${a.dtype} and ${b.dtype}`);
  a.assertLive(op);
  b.assertLive(op);
  // b's shape without leading 1s must be a suffix of a's shape.
  const bCore = b.shape.slice(Math.max(0, b.shape.findIndex((d) => d !== 1)));
  const trailing = a.shape.slice(a.shape.length - bCore.length);
  assertShape(
    b.size > 0 && (b.size === 1 || (bCore.length <= a.shape.length && trailing.every((d, i) => d === bCore[i]))),
    op,
    `cannot broadcast ${shapeStr(b.shape)} over ${shapeStr(a.shape)}`,
  );
  const out = Tensor.empty(a.device, a.shape);
  a.device.dispatch(
    spec(op, true),
    [a.binding, b.binding, out.binding],
    [a.size, b.size, 0],
    grid2d(Math.ceil(a.size / 256)),
  );
  return out;
}

export const add = (a: Tensor, b: Tensor) => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor) => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor) => binary('mul', a, b);
export const gelu = (x: Tensor) => unary('gelu', x);
export const silu = (x: Tensor) => unary('silu', x);
export const scale = (x: Tensor, alpha: number) => unary('scale', x, alpha);
