import type { Access, KernelSpec } from './kernels.js';

const specs = new Map<string, KernelSpec>();

/** The kernel spec for `key`, built once: WGSL generation is lazy and happens at first dispatch. */
export function kernelSpec(key: string, bindings: Access[], params: string, wgsl: () => string): KernelSpec {
  let s = specs.get(key);
  if (!s) specs.set(key, (s = { key, bindings, params, wgsl }));
  return s;
}
