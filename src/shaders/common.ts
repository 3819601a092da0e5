/** Small pieces shared by the WGSL generators. */

/**
 * The subgroup width the subgroup kernels are written for and tested on (lavapipe's, on AVX2): where an adapter's
 * subgroups are all exactly this wide, attention over several query rows uses subgroup operations; elsewhere the
 * kernel without them runs.
 */
export const SUBGROUP_LANES = 8;

export type WeightType = 'f32' | 'f16';

/**
 * A read-only storage array of `wtype` values at `binding`, read through `fn name(i: u32) -> f32`. f16 arrays are
 * bound as packed u32 words (two halves each, unpacked by unpack2x16float) so that no kernel needs shader-f16.
 */
export function weightArray(name: string, binding: number, wtype: WeightType): string {
  return wtype === 'f16'
    ? `@group(0) @binding(${binding}) var<storage, read> ${name}Bits: array<u32>;
fn ${name}(i: u32) -> f32 { return unpack2x16float(${name}Bits[i >> 1u])[i & 1u]; }`
    : `@group(0) @binding(${binding}) var<storage, read> ${name}Values: array<f32>;
fn ${name}(i: u32) -> f32 { return ${name}Values[i]; }`;
}

/** WGSL for a params struct: one 32-bit field per char of `layout` (u32, i32, f32). */
export function paramsStruct(names: string[], layout: string, binding: number): string {
  if (names.length !== layout.length) throw new Error(`params: ${names.length} names for layout '${layout}'`);
  const ty = { u: 'u32', i: 'i32', f: 'f32' } as Record<string, string>;
  const fields = names.map((n, i) => `  ${n}: ${ty[layout[i]]},`).join('\n');
  return `struct Params {\n${fields}\n}\n@group(0) @binding(${binding}) var<uniform> P: Params;\n`;
}

/** Linear workgroup index of a 2-D grid (grids are folded to stay under 65535 per dimension). */
export const LINEAR_WG = 'wid.x + wid.y * nwg.x';

/** A grid of `n` workgroups folded into two dimensions. */
export function grid2d(n: number, maxPerDim = 65535): [number, number] {
  if (n <= maxPerDim) return [n, 1];
  const y = Math.ceil(n / maxPerDim);
  return [Math.ceil(n / y), y];
}

/** The tanh-approximated GELU of GPT-2 ("gelu_new"), clamped so tanh never sees a huge argument. */
export const GELU_FN = `
fn gelu(x: f32) -> f32 {
  let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
  return 0.5 * x * (1.0 + tanh(u));
}`;

/**
 * WGSL for a workgroup reduction `name(v, t) -> ty` over `wg` invocations (t = local index),
 * combining with `op` ('+' or 'max'), in its own workgroup scratch arrays. `ty` may also be
 * `array<vec4<f32>, n>` (summed lane by lane: several sums for the barriers of one). Two levels
 * of fan-in F ≈ √wg (F invocations each combine F values, then every invocation combines those F)
 * take two barriers where a tree takes log2(wg) + 2: an implementation that runs a workgroup's
 * invocations as coroutines (llvmpipe) pays for every barrier.
 * The barriers also keep a later call from overwriting values an earlier one still reads.
 */
export function workgroupReduce(name: string, ty: 'f32' | 'u32' | `array<vec4<f32>, ${number}>`, op: '+' | 'max', wg: number): string {
  const { F, groups } = fanIn(wg);
  const lanes = /^array<vec4<f32>, (\d+)>$/.exec(ty)?.[1];
  if (lanes && op !== '+') throw new Error(`workgroupReduce: arrays are only summed, not '${op}'`);
  const fold = (acc: string, x: string) =>
    lanes ? `for (var q = 0u; q < ${lanes}u; q++) { ${acc}[q] += ${x}[q]; }` : op === '+' ? `${acc} += ${x};` : `${acc} = max(${acc}, ${x});`;
  return `
var<workgroup> scratch_${name}: array<${ty}, ${wg}>;
var<workgroup> partial_${name}: array<${ty}, ${groups}>;
fn ${name}(v: ${ty}, t: u32) -> ${ty} {
  scratch_${name}[t] = v;
  workgroupBarrier();
  if (t < ${groups}u) {
    var a = scratch_${name}[t * ${F}u];
    for (var j = t * ${F}u + 1u; j < min(t * ${F}u + ${F}u, ${wg}u); j++) { ${fold('a', `scratch_${name}[j]`)} }
    partial_${name}[t] = a;
  }
  workgroupBarrier();
  var r = partial_${name}[0];
  for (var j = 1u; j < ${groups}u; j++) { ${fold('r', `partial_${name}[j]`)} }
  return r;
}`;
}

function fanIn(wg: number): { F: number; groups: number } {
  const F = 2 ** Math.ceil(Math.log2(wg) / 2);
  return { F, groups: Math.ceil(wg / F) };
}

/** Workgroup memory of one workgroupReduce over `wg` invocations of `valueBytes`-byte values. */
export function workgroupReduceBytes(valueBytes: number, wg: number): number {
  return (wg + fanIn(wg).groups) * valueBytes;
}

/** The shared entry of one-workgroup-per-row kernels: `row`, `t` and `base` (first element of the row). */
export function rowEntry(wg: number, width: string): string {
  return `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = ${LINEAR_WG};
  let t = lid.x;
  if (row >= P.rows) { return; }
  let base = row * ${width};`;
}
