/**
 * The benchmarks' device on nodeGPU(), the process's one Dawn GPU object, which
 * tfjs-backend-webgpu (looking for navigator.gpu) shares, so both run on the same adapter.
 */
import { Device } from '../../src/tensor/device.js';
import { nodeGPU } from '../../src/node.js';

export async function benchDevice(): Promise<Device> {
  return Device.create({ gpu: await nodeGPU() });
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
