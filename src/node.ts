// The published types use WebGPU's (GPUDevice …): this dependency brings them to consumers with no setup.
/// <reference types="@webgpu/types" preserve="true" />
/**
 * Node entry point: everything of the browser entry, plus a device from Dawn (the `webgpu`
 * npm package) and filesystem loaders. The browser entry never imports this file.
 */
import { availableParallelism } from 'node:os';
import { Device, type CreateDeviceOptions } from './tensor/device.js';
import { WebGPUUnavailableError } from './tensor/errors.js';
import { napWhileWaiting } from './tensor/node-wait.js';
import { LAVAPIPE_THREADS_PER_CORE, MAX_WARMUP_DEVICES } from './tensor/tuning.js';

export * from './index.js';
export { dirFolder, fileSource, openCheckpointDir, openSafetensorsFile } from './models/safetensors-node.js';
export { BUNDLED_MODELS, BundledModelsError, MODELS_PACKAGE, bundledModelPath, bundledModelsDir, type BundledModel } from './models/bundled-node.js';
// In Node, urlFolder caches its downloads on disk (it replaces the browser entry's urlFolder).
export { CacheError, defaultCacheDir, urlFolder, type CachedUrlOptions } from './models/url-cache-node.js';
export { loadTuning, saveTuning, tuningFile, type LoadedTuning } from './tensor/tuning-cache-node.js';

let dawn: GPU | null = null;

/**
 * Dawn's WebGPU entry point for this process, created once. Needs the optional peer dependency
 * `webgpu`. Share it with other WebGPU libraries so they run on the same instance. Drivers read
 * their environment when it is first created: see lavapipeThreads.
 */
export async function nodeGPU(): Promise<GPU> {
  if (!dawn) {
    let mod: { create(flags: string[]): GPU; globals: Record<string, unknown> };
    try {
      mod = (await import('webgpu')) as never;
    } catch (e) {
      throw new WebGPUUnavailableError(
        `the 'webgpu' package (Dawn for Node) is not installed: run \`npm install webgpu\` (${(e as Error).message})`,
      );
    }
    Object.assign(globalThis, mod.globals);
    dawn = mod.create([]);
  }
  return dawn;
}

/**
 * The LP_NUM_THREADS this project runs Mesa's software driver (lavapipe) with:
 * LAVAPIPE_THREADS_PER_CORE per core. An entry point sets it, if it wants it, before its first
 * nodeGPU(); the library sets no environment variable.
 */
export function lavapipeThreads(): number {
  return LAVAPIPE_THREADS_PER_CORE * availableParallelism();
}

export interface NodeDeviceOptions extends Omit<CreateDeviceOptions, 'gpu' | 'waitForGPU'> {
  /**
   * Nap between event-loop turns while waiting for the GPU (default true): Dawn's binding polls
   * a busy core while it waits (node-wait.ts).
   */
  sleepWhileWaiting?: boolean;
}

/** A device in Node through Dawn (nodeGPU). */
export async function createNodeDevice(opts: NodeDeviceOptions = {}): Promise<Device> {
  const { sleepWhileWaiting = true, ...rest } = opts;
  const warmupDevices = rest.warmupDevices ?? Math.min(availableParallelism(), MAX_WARMUP_DEVICES);
  return Device.create({ ...rest, gpu: await nodeGPU(), waitForGPU: sleepWhileWaiting ? napWhileWaiting : undefined, warmupDevices });
}
