/** Elementwise WGSL, generated from one template per arity: unary f(x), binary f(a, b) with b broadcast. */
import { GELU_FN, LINEAR_WG, paramsStruct } from './common.js';

export const UNARY = {
  gelu: 'gelu(x)',
  silu: 'x / (1.0 + exp(-x))',
  relu: 'max(x, 0.0)',
  exp: 'exp(x)',
  scale: 'x * P.alpha',
} as const;
export type UnaryOp = keyof typeof UNARY;

export const BINARY = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  /** max(a - b, 0): the residual distribution of speculative sampling. */
  subRelu: 'max(a - b, 0.0)',
} as const;
export type BinaryOp = keyof typeof BINARY;

export const ELEMENTWISE_PARAMS = 'uuf';

function body(expr: string, binary: boolean): string {
  return `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (${LINEAR_WG}) * 256u + lid.x;
  if (i >= P.n) { return; }
  ${binary ? 'let a = A[i];\n  let b = B[i % P.nb];' : 'let x = A[i];'}
  Out[i] = ${expr};
}`;
}

export function unaryWGSL(op: UnaryOp): string {
  return `${paramsStruct(['n', 'nb', 'alpha'], ELEMENTWISE_PARAMS, 2)}
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read_write> Out: array<f32>;
${op === 'gelu' ? GELU_FN : ''}
${body(UNARY[op], false)}`;
}

export function binaryWGSL(op: BinaryOp): string {
  return `${paramsStruct(['n', 'nb', 'alpha'], ELEMENTWISE_PARAMS, 3)}
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;
${body(BINARY[op], true)}`;
}
