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
import { LAVAPIPE_THREADS_PER_CORE } from './tensor/tuning.js';

export * from './index.js';
export { dirFolder, fileSource, openCheckpointDir, openSafetensorsFile } from './models/safetensors-node.js';
export { BUNDLED_MODELS, BundledModelsError, MODELS_PACKAGE, bundledModelPath, bundledModelsDir, type BundledModel } from './models/bundled-node.js';
// In Node, urlFolder caches its downloads on disk (it replaces the browser entry's urlFolder).
export { CacheError, defaultCacheDir, urlFolder, type CachedUrlOptions } from './models/url-cache-node.js';

let dawn: GPU | null = null;

/**
 * Dawn's WebGPU entry point for this process, created once, with the environment its drivers
 * need. Needs the optional peer dependency `webgpu`. Share it with other WebGPU libraries so they
 * run on the same instance.
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
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    // LAVAPIPE_THREADS_PER_CORE (tuning.ts); other drivers do not read it, and a value set by the caller is kept.
    process.env.LP_NUM_THREADS ??= String(LAVAPIPE_THREADS_PER_CORE * availableParallelism());
    Object.assign(globalThis, mod.globals);
    dawn = mod.create([]);
  }
  return dawn;
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
  return Device.create({ ...rest, gpu: await nodeGPU(), waitForGPU: sleepWhileWaiting ? napWhileWaiting : undefined });
}
