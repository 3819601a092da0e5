/**
 * One Dawn GPU object for the whole process, shared by our runtime's Device and by
 * tfjs-backend-webgpu (which looks for navigator.gpu), so both run on the same adapter.
 */
import { Device } from '../../src/tensor/device.js';

let dawn: GPU | null = null;

export async function dawnGPU(): Promise<GPU> {
  if (!dawn) {
    const mod = (await import('webgpu')) as unknown as { create(flags: string[]): GPU; globals: Record<string, unknown> };
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    Object.assign(globalThis, mod.globals);
    dawn = mod.create([]);
  }
  return dawn;
}

export async function benchDevice(): Promise<Device> {
  return Device.create({ gpu: await dawnGPU() });
}

/** Exposes the GPU object as navigator.gpu (Node 20 has no navigator; Node 21+ has one without gpu). */
export function exposeNavigatorGPU(gpu: GPU): void {
  const g = globalThis as { navigator?: object };
  if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
}

/** Every feature and limit the device was created with, for the header. */
export function deviceDescription(dev: Device): { features: string[]; limits: Record<string, number> } {
  const features = [...dev.gpu.features].map(String).sort();
  const limits: Record<string, number> = {};
  const lim = dev.gpu.limits as unknown as Record<string, number>;
  for (let o: object | null = lim; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) {
      if (k === 'constructor' || k in limits) continue;
      const v = lim[k];
      if (typeof v === 'number') limits[k] = v;
    }
  }
  return { features, limits };
}
