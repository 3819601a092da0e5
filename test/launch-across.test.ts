/**
 * launchAcross: first runs spread over helper devices only where a first run is a compilation and the driver's
 * cache then serves the main device; every kernel still runs on the main device, each counted once.
 * Fake devices with simulated compile times, no GPU.
 */
import { describe, expect, it } from 'vitest';
import { launchAcross, type HelperLauncher, type LaunchAcrossOptions } from '../src/tensor/launch-across.js';
import type { KernelSpec } from '../src/tensor/kernels.js';

const COMPILE_MS = 20;
const specs: KernelSpec[] = Array.from({ length: 8 }, (_, i) => ({ key: `k${i}`, wgsl: () => '', bindings: [], params: '' }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake driver: a first run compiles (COMPILE_MS) unless the shared cache holds the kernel (`cached`: from the start). */
function fakeDriver(cacheShared: boolean, cached: string[] = []) {
  const cache = new Set<string>(cached);
  const device = (name: string, fail = false) => {
    const runs: string[] = [];
    /** Kernels this device compiled (its first run not served by the cache). */
    const compiled: string[] = [];
    const seen = new Set<string>();
    let destroyed = false;
    return {
      runs,
      compiled,
      get destroyed() {
        return destroyed;
      },
      async launch(spec: KernelSpec) {
        if (fail) throw new Error(`${name} lost`);
        runs.push(spec.key);
        const fromCache = (cacheShared || cached.includes(spec.key)) && cache.has(spec.key);
        if (!seen.has(spec.key) && !fromCache) compiled.push(spec.key);
        if (!seen.has(spec.key)) await sleep(fromCache ? 1 : COMPILE_MS);
        seen.add(spec.key);
        cache.add(spec.key);
      },
      destroy() {
        destroyed = true;
      },
    };
  };
  return { device };
}

function options(makeHelper: () => Promise<HelperLauncher<KernelSpec> | null>, over: Partial<LaunchAcrossOptions<KernelSpec>> = {}): LaunchAcrossOptions<KernelSpec> & { counts: number[] } {
  const counts: number[] = [];
  return { helpers: 1, makeHelper, compileMs: COMPILE_MS / 2, cachedFraction: 0.5, onLaunched: (d) => counts.push(d), counts, ...over };
}

describe('launchAcross', () => {
  it('runs every kernel on the main device alone while first runs are quick', async () => {
    const runs: string[] = [];
    let asked = 0;
    const o = options(async () => (asked++, null));
    const r = await launchAcross({ launch: async (s) => void runs.push(s.key) }, specs, o);
    expect(runs).toEqual(specs.map((s) => s.key));
    expect(asked).toBe(0);
    expect(r).toEqual({ helpers: 0, byHelpers: 0 });
    expect(o.counts).toEqual(specs.map((_, i) => i + 1));
  });

  it('once a first run compiles, a helper runs some kernels first and the main device then runs them from the cache', async () => {
    const driver = fakeDriver(true);
    const main = driver.device('main');
    const helper = driver.device('helper');
    const o = options(async () => helper);
    const r = await launchAcross(main, specs, o);
    expect([...main.runs].sort()).toEqual(specs.map((s) => s.key).sort());
    expect(helper.runs.length).toBeGreaterThan(0);
    expect(r).toMatchObject({ helpers: 1, byHelpers: helper.runs.length, cacheShared: true });
    expect(helper.destroyed).toBe(true);
    expect(o.counts).toEqual(specs.map((_, i) => i + 1));
  });

  it.each([
    ['helpers stop after the first check and the main device compiles the rest', {}],
    ['mainLast: the main device compiles what the helpers had not taken when that showed', { mainLast: true, helpersAtOnce: true }],
  ])('without a cache shared between devices, %s', async (_, mode) => {
    const driver = fakeDriver(false);
    const main = driver.device('main');
    const helper = driver.device('helper');
    const o = options(async () => helper, mode);
    const r = await launchAcross(main, specs, o);
    expect(r.cacheShared).toBe(false);
    expect([...main.runs].sort()).toEqual(specs.map((s) => s.key).sort());
    // The kernel checked, and those the helper took while the main device ran the check: no more.
    expect(helper.runs.length).toBeLessThanOrEqual(3);
    expect(o.counts).toEqual(specs.map((_, i) => i + 1));
  });

  it('judges the cache only on a helper run that compiled: a kernel the cache held already tells nothing', async () => {
    // The main device runs k0 (compiling: helpers start); the helper's first kernel, k1, was cached before.
    const driver = fakeDriver(true, ['k1']);
    const main = driver.device('main');
    const helper = driver.device('helper');
    const r = await launchAcross(main, specs, options(async () => helper));
    expect(r.cacheShared).toBe(true);
    expect(helper.runs.length).toBeGreaterThan(2);
    expect([...main.runs].sort()).toEqual(specs.map((s) => s.key).sort());
  });

  it('mainLast: helpers compile every kernel and the main device runs each from the cache, its queue free meanwhile', async () => {
    const driver = fakeDriver(true);
    const main = driver.device('main');
    const helper = driver.device('helper');
    const o = options(async () => helper, { mainLast: true, helpersAtOnce: true });
    const r = await launchAcross(main, specs, o);
    expect(main.compiled).toEqual([]);
    expect([...helper.runs].sort()).toEqual(specs.map((s) => s.key).sort());
    expect([...main.runs].sort()).toEqual(specs.map((s) => s.key).sort());
    expect(r).toMatchObject({ helpers: 1, byHelpers: specs.length, cacheShared: true });
    expect(o.counts).toEqual(specs.map((_, i) => i + 1));
  });

  it('mainLast, not told first runs compile: the main device runs kernels the cache holds alone, and hands the rest to helpers after one compiles', async () => {
    const cached = fakeDriver(true, specs.map((s) => s.key));
    let asked = 0;
    const warm = cached.device('main');
    const r = await launchAcross(warm, specs, options(async () => (asked++, cached.device('helper')), { mainLast: true }));
    expect(asked).toBe(0);
    expect(r.helpers).toBe(0);
    expect(warm.runs).toEqual(specs.map((s) => s.key));

    const driver = fakeDriver(true);
    const main = driver.device('main');
    const helper = driver.device('helper');
    const o = options(async () => helper, { mainLast: true });
    const r2 = await launchAcross(main, specs, o);
    expect(main.compiled).toEqual([specs[0].key]);
    expect(r2).toMatchObject({ helpers: 1, byHelpers: specs.length - 1, cacheShared: true });
    expect(o.counts).toEqual(specs.map((_, i) => i + 1));
  });


  it('mainLast with no helper to be had: the main device runs every kernel alone', async () => {
    const main = fakeDriver(true).device('main');
    const o = options(async () => null, { mainLast: true, helpersAtOnce: true });
    const r = await launchAcross(main, specs, o);
    expect(r.helpers).toBe(0);
    expect(main.runs).toEqual(specs.map((s) => s.key));
    expect(o.counts).toEqual(specs.map((_, i) => i + 1));
  });

  it('a helper that fails hands its kernel to the main device, which runs every kernel once', async () => {
    const driver = fakeDriver(true);
    const main = driver.device('main');
    const helper = driver.device('helper', true);
    const o = options(async () => helper);
    const r = await launchAcross(main, specs, o);
    expect(r.byHelpers).toBe(0);
    expect([...main.runs].sort()).toEqual(specs.map((s) => s.key).sort());
    expect(helper.destroyed).toBe(true);
    expect(o.counts).toEqual(specs.map((_, i) => i + 1));
  });

  it('with no helper to be had (none, or a rejection), the main device runs every kernel alone', async () => {
    for (const makeHelper of [async () => null, () => Promise.reject(new Error('no adapter'))]) {
      const main = fakeDriver(true).device('main');
      const o = options(makeHelper);
      const r = await launchAcross(main, specs, o);
      expect(r.helpers).toBe(0);
      expect(main.runs).toEqual(specs.map((s) => s.key));
      expect(o.counts).toEqual(specs.map((_, i) => i + 1));
    }
  });

  it('launches every kernel whatever its value: a falsy one (0) does not end the queue', async () => {
    const runs: number[] = [];
    const r = await launchAcross({ launch: async (k: number) => void runs.push(k) }, [0, 1, 2], { helpers: 1, makeHelper: async () => null, compileMs: COMPILE_MS, cachedFraction: 0.5 });
    expect(runs).toEqual([0, 1, 2]);
    expect(r.helpers).toBe(0);
  });

  it('destroys its helpers when the main device fails', async () => {
    const driver = fakeDriver(true);
    const helper = driver.device('helper');
    let n = 0;
    const main = {
      async launch(): Promise<void> {
        if (++n === 3) throw new Error('device lost');
        await sleep(COMPILE_MS);
      },
    };
    await expect(launchAcross(main, specs, options(async () => helper))).rejects.toThrow('device lost');
    expect(helper.destroyed).toBe(true);
  });
});
