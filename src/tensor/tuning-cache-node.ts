/**
 * Matmul choices measured by autotuning, kept on disk per adapter so that a later process on the same
 * adapter times only the shapes it has not seen. A file holds the adapter's description and a stamp (the
 * runtime's version: kernels change between versions); one written for another adapter or stamp, or one
 * that does not parse, is ignored with the reason, and autotuning measures again.
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
}

export interface LoadedTuning {
  /** The file read (or looked for). */
  path: string;
  /** Matmul choices restored onto the device (0 when the file is missing or ignored). */
  restored: number;
  /** Why an existing file was ignored; undefined when it was restored or is missing. */
  ignored?: string;
}

/** Where choices measured on `device`'s adapter are kept under `cacheDir`. */
export function tuningFile(device: Device, cacheDir: string): string {
  const key = createHash('sha256').update(device.info.adapter).digest('hex').slice(0, 16);
  return join(cacheDir, 'tuning', `${key}.json`);
}

/** Restores the choices kept for this adapter and stamp onto `device` (those it already has stay). */
export function loadTuning(device: Device, cacheDir: string, stamp: string): LoadedTuning {
  const path = tuningFile(device, cacheDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { path, restored: 0 };
    return { path, restored: 0, ignored: (e as Error).message };
  }
  let file: TuningFile;
  try {
    file = JSON.parse(text) as TuningFile;
  } catch (e) {
    return { path, restored: 0, ignored: `not JSON (${(e as Error).message})` };
  }
  if (typeof file !== 'object' || file === null || typeof file.matmulChoices !== 'object' || file.matmulChoices === null) {
    return { path, restored: 0, ignored: 'no "matmulChoices" object' };
  }
  if (file.adapter !== device.info.adapter) return { path, restored: 0, ignored: `measured on another adapter (${JSON.stringify(file.adapter)})` };
  if (file.stamp !== stamp) return { path, restored: 0, ignored: `measured with ${JSON.stringify(file.stamp)}, not ${JSON.stringify(stamp)}` };
  try {
    // tune() validates every choice and changes nothing if one is invalid.
    device.tune({ matmulChoices: { ...file.matmulChoices, ...device.tuning.matmulChoices } });
  } catch (e) {
    return { path, restored: 0, ignored: (e as Error).message };
  }
  return { path, restored: Object.keys(file.matmulChoices).length };
}

/** Writes every matmul choice `device` holds for its adapter and `stamp`; returns the file's path. */
export function saveTuning(device: Device, cacheDir: string, stamp: string): string {
  const path = tuningFile(device, cacheDir);
  const file: TuningFile = { adapter: device.info.adapter, stamp, matmulChoices: device.tuning.matmulChoices };
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
