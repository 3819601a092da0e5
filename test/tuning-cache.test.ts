/** Autotuned matmul choices and kernels' first runs kept on disk per adapter (the CLI keeps them). */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createNodeDevice, loadTuning, saveTuning, tuningFile } from '../src/node.js';
import { getMatmulChoice, setMatmulChoice, tuneKey } from '../src/tensor/ops/matmul.js';
import type { Device } from '../src/tensor/device.js';

const KEY = tuneKey('nk', 'f16', 3, 256, 768);
const STAMP = 'specdiff-webgpu test';

describe('kept tuning', () => {
  let dir = '';
  const devices: Device[] = [];
  const device = async () => {
    const d = await createNodeDevice();
    devices.push(d);
    return d;
  };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'specdiff-tuning-'));
  });
  afterEach(async () => {
    for (const d of devices.splice(0)) d.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('choices saved by one device are restored onto a fresh one on the same adapter', async () => {
    const measured = await device();
    setMatmulChoice(measured, KEY, { family: 'gemv-split', split: 4 });
    const path = saveTuning(measured, dir, STAMP);
    expect(path).toBe(tuningFile(measured, dir));
    const fresh = await device();
    expect(loadTuning(fresh, dir, STAMP)).toEqual({ path, restored: 1, firstRuns: 0 });
    expect(getMatmulChoice(fresh, KEY)).toEqual({ family: 'gemv-split', split: 4 });
  });

  it('a choice the device already holds wins over the kept one', async () => {
    const measured = await device();
    setMatmulChoice(measured, KEY, { family: 'gemv-split', split: 4 });
    saveTuning(measured, dir, STAMP);
    const fresh = await device();
    setMatmulChoice(fresh, KEY, { family: 'gemv', split: 1 });
    loadTuning(fresh, dir, STAMP);
    expect(getMatmulChoice(fresh, KEY)).toEqual({ family: 'gemv', split: 1 });
  });

  it('no file: nothing restored, nothing ignored, and no kernel known to have run', async () => {
    const d = await device();
    expect(d.keepsFirstRuns).toBe(false);
    expect(loadTuning(d, dir, STAMP)).toEqual({ path: tuningFile(d, dir), restored: 0, firstRuns: 0 });
    expect(d.keepsFirstRuns).toBe(true);
    expect(d.hasRun('any-kernel')).toBe(false);
  });

  it('a file of another version, of another adapter, not JSON, or with an invalid choice is ignored with the reason, and changes nothing', async () => {
    const d = await device();
    setMatmulChoice(d, KEY, { family: 'gemv-split', split: 4 });
    const path = saveTuning(d, dir, STAMP);
    const kept = JSON.parse(await readFile(path, 'utf8'));
    const cases: Array<[string, RegExp]> = [
      [JSON.stringify({ ...kept, stamp: 'specdiff-webgpu 0.0.1' }), /measured with "specdiff-webgpu 0.0.1", not "specdiff-webgpu test"/],
      [JSON.stringify({ ...kept, adapter: 'another GPU' }), /measured on another adapter \("another GPU"\)/],
      ['{"adapter": ', /not JSON/],
      [JSON.stringify({ ...kept, matmulChoices: { [KEY]: { family: 'gemv', split: 3 } } }), /split must be a power of two/],
      [JSON.stringify({ ...kept, firstRuns: ['gemv-a', 7] }), /"firstRuns" is not a list of kernel keys/],
    ];
    for (const [text, reason] of cases) {
      await writeFile(path, text);
      const fresh = await device();
      const loaded = loadTuning(fresh, dir, STAMP);
      expect(loaded.restored).toBe(0);
      expect(loaded.ignored).toMatch(reason);
      expect(getMatmulChoice(fresh, KEY)).toBeUndefined();
      expect(fresh.firstRuns()).toEqual([]);
    }
  });

  it('kernels that had their first run on one device are restored as first runs onto a fresh one', async () => {
    const ran = await device();
    ran.restoreFirstRuns(['kernel-b', 'kernel-a']);
    const path = saveTuning(ran, dir, STAMP);
    const fresh = await device();
    expect(loadTuning(fresh, dir, STAMP)).toEqual({ path, restored: 0, firstRuns: 2 });
    expect(fresh.firstRuns()).toEqual(['kernel-a', 'kernel-b']);
  });

  it('a file without the first runs restores its choices, and no kernel is known to have run', async () => {
    const d = await device();
    setMatmulChoice(d, KEY, { family: 'gemv-split', split: 4 });
    const path = saveTuning(d, dir, STAMP);
    const { firstRuns: _, ...older } = JSON.parse(await readFile(path, 'utf8'));
    await writeFile(path, JSON.stringify(older));
    const fresh = await device();
    expect(loadTuning(fresh, dir, STAMP)).toEqual({ path, restored: 1, firstRuns: 0 });
    expect(fresh.hasRun('any-kernel')).toBe(false);
  });
});
