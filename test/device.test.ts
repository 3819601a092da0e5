import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createNodeDevice } from '../src/node.js';
import { Device } from '../src/tensor/device.js';
import { Tensor, readTensors } from '../src/tensor/tensor.js';
import { DeviceLostError, GPULimitError, GPUValidationError, ShapeError } from '../src/tensor/errors.js';
import { kernelSpec } from '../src/tensor/spec.js';
import { add, gelu, scale } from '../src/tensor/ops/elementwise.js';
import { argmax, softmax } from '../src/tensor/ops/rowwise.js';
import { embedding } from '../src/tensor/ops/gather.js';
import { matmul } from '../src/tensor/ops/matmul.js';
import { getDevice } from './helpers/device.js';
import { geluRef, expectClose, randn } from './helpers/reference.js';

/** Rejects if `p` has not settled within `ms`: a hang becomes a failure with a message. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** CPU time (ms) the main thread has used, from Linux's per-thread accounting (10 ms ticks). */
function mainThreadCpuMs(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, USER_HZ = 100
}

describe('the Node entry', () => {
  it('importing it and creating a device leave process.env unchanged', () => {
    // A fresh process without the variables a driver reads, so that setting one would show.
    const env = { ...process.env };
    delete env.LP_NUM_THREADS;
    delete env.XDG_RUNTIME_DIR;
    const script = `const before = { ...process.env };
      const { createNodeDevice } = await import('./src/node.ts');
      (await createNodeDevice()).destroy();
      const keys = new Set([...Object.keys(before), ...Object.keys(process.env)]);
      console.log(JSON.stringify([...keys].filter((k) => before[k] !== process.env[k])));`;
    const root = new URL('..', import.meta.url).pathname;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, env, encoding: 'utf8', timeout: 120_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout.trim().split('\n').pop()!)).toEqual([]);
  });
});

describe('waiting for the GPU', () => {
  it('a device that naps while waiting still returns the work recorded just before each read and sync', async () => {
    const dev = await createNodeDevice({ sleepWhileWaiting: true });
    const x = Tensor.from(dev, randn(64 * 256, 1), [64, 256]);
    const w = Tensor.from(dev, randn(256 * 512, 2), [256, 512]);
    const base = matmul(x, w, { layout: 'kn' });
    const [ref] = await readTensors([base]);
    for (let round = 2; round <= 5; round++) {
      const y = scale(matmul(x, w, { layout: 'kn' }), round);
      await dev.sync();
      const [got] = await readTensors([y]);
      expectClose(got, ref.map((v) => v * round), 1e-5, 1e-4);
    }
    dev.gpu.destroy();
  });

  it.runIf(existsSync(`/proc/self/task/${process.pid}/stat`))(
    'while a device that naps waits for long GPU work, its thread uses a small part of a core instead of spinning one',
    async () => {
      const dev = await createNodeDevice({ sleepWhileWaiting: true });
      const x = Tensor.from(dev, randn(64 * 512, 3), [64, 512]);
      const w = Tensor.from(dev, randn(512 * 512, 4), [512, 512]);
      await dev.sync();
      // Enough work to wait at least 100 ms on any adapter (a software one needs the first batch only).
      let [wall, cpu] = [0, 0];
      for (let n = 60; wall < 100; n *= 4) {
        dev.scope(() => { for (let i = 0; i < n; i++) matmul(x, w, { layout: 'kn' }); });
        const cpu0 = mainThreadCpuMs();
        const t0 = performance.now();
        await dev.sync();
        [wall, cpu] = [performance.now() - t0, mainThreadCpuMs() - cpu0];
      }
      // Dawn's own waiting spins the thread for the whole wait (cpu ≈ wall).
      expect(cpu).toBeLessThan(0.25 * wall);
      dev.gpu.destroy();
    },
  );
});

describe('batched recording', () => {
  it('records ops into one batch: dispatches grow, submits do not, until a read submits once', async () => {
    const dev = await getDevice();
    await dev.sync();
    const x = Tensor.from(dev, [1, -2, 3, 0.5, 7, -1], [2, 3]);
    const [d0, s0] = [dev.dispatchCount, dev.submitCount];
    const y = gelu(x);
    const z = add(y, x);
    const p = softmax(z);
    const i = argmax(p);
    expect(dev.dispatchCount).toBe(d0 + 4);
    expect(dev.submitCount).toBe(s0);
    await i.read();
    expect(dev.submitCount).toBe(s0 + 1);
    await p.read();
    expect(dev.submitCount).toBe(s0 + 2);
  });

  it('orders small uploads with the recorded work: overwriting an input after an op does not change its result', async () => {
    const dev = await getDevice();
    const x = Tensor.from(dev, [1, 2, 3], [3]);
    const y = scale(x, 2);
    dev.upload(x.buffer, 0, Float32Array.of(10, 20, 30));
    const z = scale(x, 2);
    expect(Array.from(await y.read())).toEqual([2, 4, 6]);
    expect(Array.from(await z.read())).toEqual([20, 40, 60]);
  });

  it('orders large (direct) uploads with the recorded work too', async () => {
    const dev = await getDevice();
    const n = 20000; // 80 KB: past the arena's small-upload size
    const x = Tensor.from(dev, new Float32Array(n).fill(1), [n]);
    const y = scale(x, 3);
    dev.upload(x.buffer, 0, new Float32Array(n).fill(5));
    const z = scale(x, 3);
    const [yy, zz] = [await y.read(), await z.read()];
    expect(yy.every((v) => v === 3)).toBe(true);
    expect(zz.every((v) => v === 15)).toBe(true);
  });

  it('a batch with more params than the 1 MiB arena holds flushes midway and keeps every dispatch\'s own params', async () => {
    const dev = await getDevice();
    const steps = 5000; // 256-byte aligned params: 4096 fill the arena
    const s0 = dev.submitCount;
    let ref = Math.fround(1);
    const out = dev.scope(() => {
      let x = Tensor.from(dev, [1], [1]);
      for (let i = 0; i < steps; i++) {
        const alpha = 1 + ((i % 7) - 3) / 1024;
        ref = Math.fround(ref * alpha);
        x = scale(x, alpha);
      }
      return x;
    });
    expect(dev.submitCount).toBeGreaterThan(s0);
    expect((await out.read())[0]).toBe(ref);
  });
});

describe('buffer pool', () => {
  it('a loop that creates and disposes the same shapes creates no buffer after its first iteration', async () => {
    const dev = await getDevice();
    const x0 = new Float32Array(3 * 257).map((_, i) => (i % 11) - 5);
    let createdAfterFirst = -1;
    for (let it = 0; it < 5; it++) {
      const out = dev.scope(() => {
        const x = Tensor.from(dev, x0, [3, 257]);
        const h = gelu(add(x, x));
        return softmax(h);
      });
      await out.read();
      out.dispose();
      if (it === 0) createdAfterFirst = dev.memoryStats().created;
      else expect(dev.memoryStats().created).toBe(createdAfterFirst);
    }
  });

  it('a loop that frees its tensors in a different order each iteration gets the same buffers back, so it makes no bind group after its first', async () => {
    const dev = await getDevice();
    const x0 = new Float32Array(2 * 64).map((_, i) => (i % 7) - 3);
    let madeAfterFirst = -1;
    for (let it = 0; it < 6; it++) {
      const x = Tensor.from(dev, x0, [2, 64]);
      const a = add(x, x);
      const b = gelu(a);
      const c = scale(b, 0.5);
      const d = softmax(c);
      await d.read();
      // Freed in a rotated order: the free list's order differs from iteration to iteration.
      const all = [x, a, b, c, d];
      for (let k = 0; k < all.length; k++) all[(k + it) % all.length].dispose();
      if (it === 0) madeAfterFirst = dev.bindGroupCount;
      else expect(dev.bindGroupCount, `iteration ${it}`).toBe(madeAfterFirst);
    }
  });

  it('a disposed buffer goes back to the pool: live bytes return to where they were', async () => {
    const dev = await getDevice();
    const before = dev.memoryStats().liveBytes;
    const t = Tensor.from(dev, new Float32Array(1000), [1000]);
    expect(dev.memoryStats().liveBytes).toBeGreaterThanOrEqual(before + 4000);
    t.dispose();
    t.dispose(); // twice is harmless
    expect(dev.memoryStats().liveBytes).toBe(before);
  });
});

describe('scopes', () => {
  it('disposes the intermediates of a scope and keeps the tensors it returns, also inside arrays and objects', async () => {
    const dev = await getDevice();
    let a!: Tensor;
    let b!: Tensor;
    const res = dev.scope(() => {
      a = Tensor.from(dev, [1, 2, 3], [3]);
      b = scale(a, 2);
      return { sum: add(a, b), pair: [scale(b, 0.5)] };
    });
    expect(a.isDisposed).toBe(true);
    expect(b.isDisposed).toBe(true);
    expect(Array.from(await res.sum.read())).toEqual([3, 6, 9]);
    expect(Array.from(await res.pair[0].read())).toEqual([1, 2, 3]);
  });

  it('a tensor returned from an inner scope belongs to the outer scope and is disposed when that ends', async () => {
    const dev = await getDevice();
    let inner!: Tensor;
    const outer = dev.scope(() => {
      inner = dev.scope(() => scale(Tensor.from(dev, [1], [1]), 3));
      expect(inner.isDisposed).toBe(false);
      return scale(inner, 2);
    });
    expect(inner.isDisposed).toBe(true);
    expect(Array.from(await outer.read())).toEqual([6]);
  });

  it('keep() takes a tensor out of its scope', async () => {
    const dev = await getDevice();
    let kept!: Tensor;
    dev.scope(() => {
      kept = Tensor.from(dev, [4, 5], [2]).keep();
    });
    expect(Array.from(await kept.read())).toEqual([4, 5]);
    kept.dispose();
  });

  it('reading a disposed tensor, or a reshape of one, throws naming the shape', async () => {
    const dev = await getDevice();
    const t = Tensor.from(dev, [1, 2, 3, 4], [2, 2]);
    const v = t.reshape([4]);
    t.dispose();
    await expect(t.read()).rejects.toThrow(ShapeError);
    await expect(t.read()).rejects.toThrow(/\[2, 2\] was disposed/);
    await expect(v.read()).rejects.toThrow(/was disposed/);
    expect(() => gelu(t)).toThrow(/was disposed/);
  });
});

describe('errors', () => {
  it('a kernel whose WGSL does not compile fails with the compiler message and the kernel name', async () => {
    const dev = await getDevice();
    const bad = kernelSpec('test_broken_wgsl', ['w'], '', () => `
@group(0) @binding(0) var<storage, read_write> X: array<f32>;
@compute @workgroup_size(1)
fn main() { let target = 1.0; X[0] = target; }`);
    const t = Tensor.empty(dev, [1]);
    dev.dispatch(bad, [t.binding], [], [1]);
    const err = await t.read().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(GPUValidationError);
    expect(String((err as Error).message)).toMatch(/test_broken_wgsl/);
    expect(String((err as Error).message)).toMatch(/reserved keyword/);
    // The device stays usable afterwards.
    expect(Array.from(await scale(Tensor.from(dev, [1], [1]), 2).read())).toEqual([2]);
  });
});

describe('tensors larger than one storage binding', () => {
  // GPT-2's tied embedding [50257, 768] is 154 MB; lavapipe binds at most 128 MiB. On a device with
  // a larger limit the row count grows so that the weight still exceeds one binding.
  const K = 768;
  const wAt = (n: number, k: number) => (((n * 31 + k * 17) % 64) - 32) / 64; // exact in f32
  const aAt = (k: number) => (((k * 7) % 13) - 6) / 8;

  it('matmul with an nk weight and embedding gather across the binding limit (exact small-integer data)', async () => {
    const dev = await getDevice();
    const maxBind = dev.limits.maxStorageBufferBindingSize;
    const N = Math.max(50257, Math.floor(maxBind / (K * 4)) + 1000);
    if (N * K * 4 > 2 ** 30) return expect(N * K * 4).toBeGreaterThan(2 ** 30); // too large to test here
    const w = new Float32Array(N * K);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) w[n * K + k] = wAt(n, k);
    const wt = Tensor.from(dev, w, [N, K]);
    expect(wt.byteLength).toBeGreaterThan(maxBind);

    // Every product is a multiple of 2^-9 and every partial sum stays far below 2^15: exact.
    const a = Float32Array.from({ length: K }, (_, k) => aAt(k));
    const logits = await matmul(Tensor.from(dev, a, [1, K]), wt, { layout: 'nk' }).read();
    const ref = new Float32Array(N);
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[k] * w[n * K + k];
      ref[n] = s;
    }
    expectClose(logits, ref, 0, 0);

    const firstChunkRows = Math.floor(maxBind / (K * 4));
    const ids = [0, firstChunkRows - 1, firstChunkRows, N - 1, 20000, -1, N];
    const rows = await embedding(wt, Tensor.from(dev, Int32Array.from(ids), [ids.length])).read();
    const refRows = new Float32Array(ids.length * K);
    ids.forEach((id, i) => {
      if (id >= 0 && id < N) refRows.set(w.subarray(id * K, (id + 1) * K), i * K);
    });
    expectClose(rows, refRows, 0, 0);

    // An op without chunking refuses the tensor before dispatch instead of reading out of bounds.
    expect(() => gelu(wt)).toThrow(GPULimitError);
    wt.dispose();
    dev.pool.trim();
  });
});

describe('device loss', () => {
  it('a destroyed device gives DeviceLostError on the next read instead of a hang, then on every op', async () => {
    const dev = await createNodeDevice();
    const x = Tensor.from(dev, [1, 2, 3], [3]);
    expectClose(await gelu(x).read(), [1, 2, 3].map(geluRef), 1e-5, 1e-6);
    dev.gpu.destroy();
    await expect(within(gelu(x).read(), 10_000, 'a read on a destroyed device')).rejects.toThrow(DeviceLostError);
    expect(dev.isLost).toBe(true);
    expect(() => gelu(x)).toThrow(DeviceLostError);
    expect(() => Tensor.from(dev, [1], [1])).toThrow(DeviceLostError);
    await expect(within(dev.sync(), 10_000, 'sync on a destroyed device')).rejects.toThrow(DeviceLostError);
  });
});

describe('kernel profiler', () => {
  it('attributes GPU time to each kernel key while profiling, and nothing after', async () => {
    const dev = await getDevice();
    if (!dev.info.features.timestampQuery) return;
    // Big enough that no kernel starts and ends on one timestamp tick (a 4×64·64×32 matmul once did).
    const a = Tensor.from(dev, new Float32Array(16 * 1024).fill(1e-3), [16, 1024]);
    const w = Tensor.from(dev, new Float32Array(1024 * 1024).fill(1e-3), [1024, 1024]);
    dev.startProfiling();
    const y = gelu(matmul(a, w));
    const y2 = gelu(y);
    expect((await y2.read()).length).toBe(16 * 1024);
    const report = await dev.stopProfiling();
    const keys = report.map((r) => r.key).sort();
    expect(keys.length).toBe(2);
    expect(keys[0]).toMatch(/^matmul_gemv_kn_f32/);
    expect(keys[1]).toBe('unary_gelu');
    expect(report.find((r) => r.key === 'unary_gelu')?.count).toBe(2);
    for (const r of report) expect(r.ms).toBeGreaterThan(0);
    gelu(a);
    expect(await dev.stopProfiling()).toEqual([]);
  });
});

describe('device options', () => {
  it('a warmupDevices that is not a positive integer is a RangeError naming it, raised before any adapter is asked for', async () => {
    let asked = 0;
    const gpu = { requestAdapter: async () => (asked++, null) } as unknown as GPU;
    for (const warmupDevices of [0, -1, 1.5, Number.NaN]) {
      await expect(Device.create({ gpu, warmupDevices })).rejects.toThrow(/warmupDevices must be a positive integer/);
    }
    expect(asked).toBe(0);
  });
});
