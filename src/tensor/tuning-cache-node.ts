/**
 * What a process learned about its adapter, kept on disk per adapter for the next one: the matmul choices
 * autotuning measured, so that a later process times only the shapes it has not seen, and the kernels that
 * have had their first run, so that a later process knows which ones the driver's shader cache lacks (its
 * background warm-up and its prefill choose by it: Device.restoreFirstRuns). A file holds the adapter's
 * description and a stamp (the runtime's version: kernels change between versions); one written for another
 * adapter or stamp, or one that does not parse, is ignored with the reason, and autotuning measures again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Device } from './device.js';
import type { MatmulChoice } from './tuning.js';

interface TuningFile {
  adapter: string;
  stamp: string;
  matmulChoices: Record<string, MatmulChoice>;
  /** Keys of the kernels that have had their first run on this adapter (absent in files of older versions). */
  firstRuns?: string[];
}

export interface LoadedTuning {
  /** The file read (or looked for). */
  path: string;
  /** Matmul choices restored onto the device (0 when the file is missing or ignored). */
  restored: number;
  /** Kernels known to have had their first run on this adapter, restored onto the device (0 when missing or ignored). */
  firstRuns: number;
  /** Why an existing file was ignored; undefined when it was restored or is missing. */
  ignored?: string;
}

/** Where choices measured on `device`'s adapter are kept under `cacheDir`. */
export function tuningFile(device: Device, cacheDir: string): string {
  const key = createHash('sha256').update(device.info.adapter).digest('hex').slice(0, 16);
  return join(cacheDir, 'tuning', `${key}.json`);
}

/**
 * Restores the choices kept for this adapter and stamp onto `device` (those it already has stay), and the kernels
 * known to have had their first run (Device.restoreFirstRuns): none when the file is missing or ignored.
 */
export function loadTuning(device: Device, cacheDir: string, stamp: string): LoadedTuning {
  const path = tuningFile(device, cacheDir);
  // Without a file for this adapter and stamp, no kernel is known to have run: the record starts empty.
  device.restoreFirstRuns([]);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { path, restored: 0, firstRuns: 0 };
    return { path, restored: 0, firstRuns: 0, ignored: (e as Error).message };
  }
  const ignored = (reason: string): LoadedTuning => ({ path, restored: 0, firstRuns: 0, ignored: reason });
  let file: TuningFile;
  try {
    file = JSON.parse(text) as TuningFile;
  } catch (e) {
    return ignored(`not JSON (${(e as Error).message})`);
  }
  if (typeof file !== 'object' || file === null || typeof file.matmulChoices !== 'object' || file.matmulChoices === null) {
    return ignored('no "matmulChoices" object');
  }
  const firstRuns = file.firstRuns ?? [];
  if (!Array.isArray(firstRuns) || !firstRuns.every((k) => typeof k === 'string')) return ignored('"firstRuns" is not a list of kernel keys');
  if (file.adapter !== device.info.adapter) return ignored(`measured on another adapter (${JSON.stringify(file.adapter)})`);
  if (file.stamp !== stamp) return ignored(`measured with ${JSON.stringify(file.stamp)}, not ${JSON.stringify(stamp)}`);
  try {
    // tune() validates every choice and changes nothing if one is invalid.
    device.tune({ matmulChoices: { ...file.matmulChoices, ...device.tuning.matmulChoices } });
  } catch (e) {
    return ignored((e as Error).message);
  }
  device.restoreFirstRuns(firstRuns);
  return { path, restored: Object.keys(file.matmulChoices).length, firstRuns: firstRuns.length };
}

/**
 * Writes every matmul choice `device` holds for its adapter and `stamp`, and the kernels that have had their first
 * run (Device.firstRuns); returns the file's path. Save after a warm-up or a generation, so the next process knows.
 */
export function saveTuning(device: Device, cacheDir: string, stamp: string): string {
  const path = tuningFile(device, cacheDir);
  const file: TuningFile = { adapter: device.info.adapter, stamp, matmulChoices: device.tuning.matmulChoices, firstRuns: device.firstRuns() };
  mkdirSync(join(cacheDir, 'tuning'), { recursive: true });
  // Written aside and renamed, so that a process reading it never sees half a file.
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, `${JSON.stringify(file, null, 1)}\n`);
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw e;
  }
  return path;
}
