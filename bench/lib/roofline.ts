/**
 * The ceilings every kernel is judged against, on the same adapter: read bandwidth (a kernel
 * that streams a large buffer with vec4 loads and writes almost nothing), peak FMA throughput
 * (a register-bound kernel), the cost of one recorded dispatch, and the CPU's own read
 * bandwidth from JS.
 */
import type { Device } from '../../src/tensor/device.js';
import { kernelSpec } from '../../src/tensor/spec.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { median, timeCalls } from './timing.js';

export interface ReadConfig {
  mode: 'interleaved' | 'blocked' | 'wgblocked' | 'uniform';
  wg: number;
  groups: number;
  /** Best batch (GB/s). */
  gbps: number;
}

/**
 * 'interleaved': invocation i reads vec4s i, i+T, … over the whole buffer (the GPU-coalesced pattern);
 * 'blocked': each invocation reads one contiguous run; 'wgblocked': each workgroup owns a
 * contiguous run that its invocations read interleaved (lanes of a SIMD row read adjacent vec4s);
 * 'uniform': workgroups of one invocation, each reading a contiguous run at workgroup-uniform
 * addresses (a CPU driver can then use plain vector loads instead of per-lane gathers).
 */
function readWGSL(mode: ReadConfig['mode'], wg: number): string {
  const loops: Record<ReadConfig['mode'], string> = {
    interleaved: `let T = nwg.x * ${wg}u;
  var i = gid.x;
  for (; i + 3u * T < P.n4; i += 4u * T) { a0 += X[i]; a1 += X[i + T]; a2 += X[i + 2u * T]; a3 += X[i + 3u * T]; }
  for (; i < P.n4; i += T) { a0 += X[i]; }`,
    blocked: `let per = (P.n4 + nwg.x * ${wg}u - 1u) / (nwg.x * ${wg}u);
  let end = min(P.n4, (gid.x + 1u) * per);
  var i = gid.x * per;
  for (; i + 3u < end; i += 4u) { a0 += X[i]; a1 += X[i + 1u]; a2 += X[i + 2u]; a3 += X[i + 3u]; }
  for (; i < end; i++) { a0 += X[i]; }`,
    wgblocked: `let per = (P.n4 + nwg.x - 1u) / nwg.x;
  let end = min(P.n4, (wid.x + 1u) * per);
  var i = wid.x * per + lid.x;
  for (; i + ${3 * wg}u < end; i += ${4 * wg}u) { a0 += X[i]; a1 += X[i + ${wg}u]; a2 += X[i + ${2 * wg}u]; a3 += X[i + ${3 * wg}u]; }
  for (; i < end; i += ${wg}u) { a0 += X[i]; }`,
    uniform: `let per = (P.n4 + nwg.x - 1u) / nwg.x;
  let end = min(P.n4, (wid.x + 1u) * per);
  var i = wid.x * per;
  for (; i + 3u < end; i += 4u) { a0 += X[i]; a1 += X[i + 1u]; a2 += X[i + 2u]; a3 += X[i + 3u]; }
  for (; i < end; i++) { a0 += X[i]; }`,
  };
  const loop = loops[mode];
  return `struct Params { n4: u32 }
@group(0) @binding(0) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> Out: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  var a0 = vec4<f32>(0.0); var a1 = a0; var a2 = a0; var a3 = a0;
  ${loop}
  let s = a0 + a1 + a2 + a3;
  Out[gid.x] = s.x + s.y + s.z + s.w;
}`;
}

/** Launch shapes tried for the read-bandwidth kernel. */
export const READ_SHAPES: Array<Omit<ReadConfig, 'gbps'>> = [
  { mode: 'interleaved', wg: 256, groups: 1024 },
  { mode: 'blocked', wg: 64, groups: 16 },
  { mode: 'blocked', wg: 256, groups: 16 },
  { mode: 'wgblocked', wg: 8, groups: 16 },
  { mode: 'wgblocked', wg: 64, groups: 16 },
  { mode: 'wgblocked', wg: 64, groups: 128 },
];

/** Streams `bytes` (bound in chunks of at most the binding limit) under a few launch shapes; the best wins. */
export async function gpuReadBandwidth(dev: Device, bytes = 256 << 20, shapes = READ_SHAPES): Promise<{ gbps: number; configs: ReadConfig[] }> {
  const chunk = Math.min(dev.limits.maxStorageBufferBindingSize, 64 << 20) & ~255;
  const src = Tensor.empty(dev, [bytes / 4]);
  const out = Tensor.empty(dev, [1024 * 256]);
  const configs: ReadConfig[] = [];
  for (const { mode, wg, groups } of shapes) {
    const spec = kernelSpec(`bench_read_${mode}_wg${wg}`, ['r', 'w'], 'u', () => readWGSL(mode, wg));
    const call = () => {
      for (let off = 0; off < bytes; off += chunk) {
        const size = Math.min(chunk, bytes - off);
        dev.dispatch(spec, [{ buffer: src.buffer, offset: off, size }, out.binding], [size / 16], [groups]);
      }
    };
    const t = await timeCalls(call, () => dev.sync(), { batchMs: 150, batches: 3, budgetMs: 1500 });
    configs.push({ mode, wg, groups, gbps: bytes / t.min / 1e6 });
  }
  src.dispose();
  out.dispose();
  dev.pool.trim();
  return { gbps: Math.max(...configs.map((c) => c.gbps)), configs };
}

function fmaWGSL(acc: number): string {
  const vars = Array.from({ length: acc }, (_, i) => `a${i}`);
  return `struct Params { iters: u32, m: f32, c: f32 }
@group(0) @binding(0) var<storage, read_write> Out: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x = f32(gid.x) * 1e-7;
  ${vars.map((v, i) => `var ${v} = vec4<f32>(x + ${i}.0e-3, x + ${i}.1e-3, x + ${i}.2e-3, x + ${i}.3e-3);`).join('\n  ')}
  let m = vec4<f32>(P.m);
  let c = vec4<f32>(P.c);
  for (var i = 0u; i < P.iters; i++) {
    ${vars.map((v) => `${v} = fma(${v}, m, c);`).join(' ')}
  }
  let s = ${vars.join(' + ')};
  Out[gid.x] = s.x + s.y + s.z + s.w;
}`;
}

/** Peak f32 FMA throughput: `acc` independent vec4 chains per invocation, no memory traffic in the loop. */
export async function gpuPeakGflops(dev: Device): Promise<{ gflops: number; configs: Array<{ acc: number; gflops: number }> }> {
  const groups = 256;
  const iters = 2048;
  const out = Tensor.empty(dev, [groups * 64]);
  const configs: Array<{ acc: number; gflops: number }> = [];
  for (const acc of [4, 8, 16]) {
    const spec = kernelSpec(`bench_fma_acc${acc}`, ['w'], 'uff', () => fmaWGSL(acc));
    const call = () => dev.dispatch(spec, [out.binding], [iters, 0.999, 0.001], [groups]);
    const t = await timeCalls(call, () => dev.sync(), { batchMs: 150, batches: 3, budgetMs: 1500 });
    configs.push({ acc, gflops: (groups * 64 * iters * acc * 4 * 2) / t.min / 1e6 });
  }
  out.dispose();
  return { gflops: Math.max(...configs.map((c) => c.gflops)), configs };
}

/** Cost of one tiny dispatch recorded in a long batch (µs), and of an empty sync round trip (ms). */
export async function dispatchOverhead(dev: Device): Promise<{ dispatchUs: number; syncMs: number }> {
  const out = Tensor.empty(dev, [64]);
  const spec = kernelSpec('bench_tiny', ['w'], 'u', () => `struct Params { v: u32 }
@group(0) @binding(0) var<storage, read_write> Out: array<u32>;
@group(0) @binding(1) var<uniform> P: Params;
@compute @workgroup_size(1)
fn main() { Out[0] = P.v; }`);
  const t = await timeCalls(() => dev.dispatch(spec, [out.binding], [1], [1]), () => dev.sync(), { batchMs: 100, batches: 5, maxReps: 2048 });
  const syncs: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await dev.sync();
    syncs.push(performance.now() - t0);
  }
  out.dispose();
  return { dispatchUs: t.ms * 1000, syncMs: median(syncs) };
}

/** JS reading a large Float64Array (one thread, four accumulators), best of several passes (GB/s). */
export function cpuReadBandwidth(bytes = 256 << 20, runs = 5): number {
  const a = new Float64Array(bytes / 8).fill(1);
  let best = Infinity;
  let sink = 0;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let i = 0; i < a.length; i += 4) {
      s0 += a[i];
      s1 += a[i + 1];
      s2 += a[i + 2];
      s3 += a[i + 3];
    }
    best = Math.min(best, performance.now() - t0);
    sink += s0 + s1 + s2 + s3;
  }
  if (sink !== (a.length * runs)) throw new Error('cpuReadBandwidth: wrong sum');
  return bytes / best / 1e6;
}
