/**
 * The same shapes through @tensorflow/tfjs-backend-webgpu, in this process, on the same Dawn
 * adapter. tf.matMul for matmul (transposeB for the [N, K] LM head), matmul + softmax + matmul for
 * attention. Synchronised at queue level (submit what tfjs has recorded, wait for the queue),
 * so no readback is timed. Failures (e.g. a binding over the adapter's limit) are reported,
 * caught through an error scope on tfjs's own device.
 */
import type * as TF from '@tensorflow/tfjs-core';
import { exposeNavigatorGPU } from './gpu.js';
import { copiesFor, weightData, type MatmulCase } from './matmul.js';
import type { AttentionCase } from './attention.js';
import { timeCalls, type TfjsResult, type TimingOptions } from './timing.js';

/** The parts of tfjs's WebGPU backend used to submit and wait. */
interface WebGPUBackendLike {
  device: GPUDevice;
  queue: GPUQueue;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

export interface Tfjs {
  tf: typeof TF;
  backend: WebGPUBackendLike;
  version: string;
}

export async function initTfjs(gpu: GPU): Promise<Tfjs> {
  exposeNavigatorGPU(gpu);
  const tf = (await import('@tensorflow/tfjs-core')) as typeof TF;
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error("tf.setBackend('webgpu') returned false");
  await tf.ready();
  return { tf, backend: tf.backend() as unknown as WebGPUBackendLike, version: tf.version_core };
}

async function sync(t: Tfjs): Promise<void> {
  t.backend.ensureCommandEncoderReady();
  t.backend.endComputePassEncoder();
  t.backend.submitQueue();
  await t.backend.queue.onSubmittedWorkDone();
}

/** Runs `call` once under validation and out-of-memory scopes (the warm-up); then times it. */
async function timeTf(t: Tfjs, call: () => void, opts?: TimingOptions): Promise<TfjsResult> {
  const dev = t.backend.device;
  dev.pushErrorScope('validation');
  dev.pushErrorScope('out-of-memory');
  let thrown: Error | null = null;
  try {
    call();
    await sync(t);
  } catch (e) {
    thrown = e as Error;
  }
  const oom = await dev.popErrorScope();
  const invalid = await dev.popErrorScope();
  const err = thrown?.message ?? oom?.message ?? invalid?.message;
  if (err) return { error: err.split('\n')[0].slice(0, 200) };
  const timing = await timeCalls(call, () => sync(t), { ...opts, warmup: false });
  return { ms: timing.ms, once: timing.once };
}

/** Times tf.matMul for every M of a case; weights rotate through copies like ours. */
export async function tfjsMatmulCase(
  t: Tfjs,
  c: MatmulCase,
  data: Float32Array,
  workingSet: number,
): Promise<Map<number, TfjsResult>> {
  const { tf } = t;
  const out = new Map<number, TfjsResult>();
  if (c.wtype !== 'f32') {
    for (const M of c.Ms) out.set(M, { skipped: 'tfjs has no f16 matmul' });
    return out;
  }
  const nk = c.layout === 'nk';
  const shape: [number, number] = nk ? [c.N, c.K] : [c.K, c.N];
  const copies = copiesFor(c.K * c.N * 4, workingSet);
  const weights = Array.from({ length: copies }, () => tf.tensor2d(data, shape));
  for (const M of c.Ms) {
    const a = tf.tensor2d(weightData(M * c.K, 7 + M), [M, c.K]);
    let i = 0;
    const call = () => tf.matMul(a, weights[i++ % copies], false, nk).dispose();
    out.set(M, await timeTf(t, call, c.timing?.(M)));
    a.dispose();
  }
  for (const w of weights) w.dispose();
  return out;
}

/** softmax(q·kᵀ·scale + causal mask)·v with q [H, n, hd], k and v [H, L, hd] (no head transposes timed). */
export async function tfjsAttention(t: Tfjs, c: AttentionCase): Promise<TfjsResult> {
  const { tf } = t;
  const q = tf.tensor3d(weightData(c.H * c.n * c.hd, 5), [c.H, c.n, c.hd]);
  const k = tf.tensor3d(weightData(c.H * c.L * c.hd, 3), [c.H, c.L, c.hd]);
  const v = tf.tensor3d(weightData(c.H * c.L * c.hd, 4), [c.H, c.L, c.hd]);
  let mask: TF.Tensor | null = null;
  if (c.n > 1) {
    const m = new Float32Array(c.n * c.L);
    for (let i = 0; i < c.n; i++) for (let j = c.L - c.n + i + 1; j < c.L; j++) m[i * c.L + j] = -1e9;
    mask = tf.tensor2d(m, [c.n, c.L]);
  }
  const scale = 1 / Math.sqrt(c.hd);
  const call = () =>
    tf.tidy(() => {
      let s = tf.mul(tf.matMul(q, k, false, true), scale);
      if (mask) s = tf.add(s, mask);
      return tf.matMul(tf.softmax(s), v);
    }).dispose();
  const r = await timeTf(t, call, c.timing);
  for (const x of [q, k, v, mask]) x?.dispose();
  return r;
}
