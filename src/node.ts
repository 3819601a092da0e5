/**
 * Node entry point: everything of the browser entry, plus a device from Dawn (the `webgpu`
 * npm package) and filesystem loaders. The browser entry never imports this file.
 */
import { Device, type CreateDeviceOptions } from './tensor/device.js';
import { WebGPUUnavailableError } from './tensor/errors.js';

export * from './index.js';
export { dirFolder, fileSource, openCheckpointDir, openSafetensorsFile } from './models/safetensors-node.js';

let dawn: GPU | null = null;

/**
 * A device in Node through Dawn. Needs the optional peer dependency `webgpu`. Sleeps through
 * expected GPU waits by default (Dawn's binding polls a busy core while it waits).
 */
export async function createNodeDevice(opts: Omit<CreateDeviceOptions, 'gpu'> = {}): Promise<Device> {
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
    Object.assign(globalThis, mod.globals);
    dawn = mod.create([]);
  }
  return Device.create({ sleepWhileWaiting: true, ...opts, gpu: dawn });
}
