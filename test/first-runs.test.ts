/**
 * Kernels' first runs known across processes (Device.firstRuns / restoreFirstRuns): a background warm-up starts its
 * helper devices at once when a kernel has never run on this adapter, instead of timing a first run on the device
 * that decodes (which would compile that kernel on its queue).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createNodeDevice } from '../src/node.js';
import type { Device, KernelSpec } from '../src/tensor/device.js';

/** Kernels that write one constant: quick first runs, so timing one never starts helpers by itself. */
function kernels(tag: string, n: number): KernelSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    key: `first-runs-${tag}-${i}`,
    wgsl: () => `@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1) fn main() { out[0] = ${i}u; }`,
    bindings: ['w'],
    params: '',
  }));
}

describe('first runs kept across processes', () => {
  const devices: Device[] = [];
  // A first run is never taken for a compilation: only the restored record can start helpers at once.
  const device = async () => {
    const d = await createNodeDevice({ warmupDevices: 2, tuning: { warmupCompileMs: 60_000 } });
    devices.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of devices.splice(0)) d.destroy();
  });

  it('without a record, a background warm-up whose first runs are quick runs them on the device alone (the control)', async () => {
    const d = await device();
    const w = await d.warmupInBackground(kernels('none', 3));
    expect(w.launched).toBe(3);
    expect(w.helperDevices).toBe(0);
  });

  it('a kernel outside the restored first runs starts helper devices at once, and every kernel is then ready here', async () => {
    const d = await device();
    const specs = kernels('outside', 3);
    d.restoreFirstRuns([specs[0].key, specs[1].key]);
    const w = await d.warmupInBackground(specs);
    expect(w.helperDevices).toBeGreaterThan(0);
    expect(w.launched).toBe(3);
  });

  it('with every kernel among the restored first runs, no helper starts', async () => {
    const d = await device();
    const specs = kernels('inside', 3);
    d.restoreFirstRuns(specs.map((s) => s.key));
    const w = await d.warmupInBackground(specs);
    expect(w.helperDevices).toBe(0);
    expect(w.launched).toBe(3);
  });

  it('kernels a helper device ran first count among the first runs, though this device has not run them', async () => {
    const d = await device();
    const specs = kernels('helper', 3);
    d.restoreFirstRuns([]);
    const stop = new AbortController();
    // Stopped once a helper has run a kernel: this device runs none of them.
    const w = await d.warmupInBackground(specs, (done) => done > 0 && stop.abort(), stop.signal);
    expect(w.launched).toBe(0);
    const ran = d.firstRuns().filter((k) => k.startsWith('first-runs-helper-'));
    expect(ran.length).toBeGreaterThan(0);
  });

  it('firstRuns lists the restored kernels and those run here, once each, sorted', async () => {
    const d = await device();
    const specs = kernels('listed', 3);
    d.restoreFirstRuns(['first-runs-earlier', specs[2].key]);
    await d.launch(specs);
    expect(d.firstRuns().filter((k) => k.startsWith('first-runs-'))).toEqual(['first-runs-earlier', ...specs.map((s) => s.key)].sort());
  });
});
