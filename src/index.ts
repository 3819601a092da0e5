/** Public API (browser-safe: no Node imports, no dependencies). */
export { Device, type DeviceInfo, type DeviceLimits, type CreateDeviceOptions } from './tensor/device.js';
export { Tensor, type DType } from './tensor/tensor.js';
export * from './tensor/errors.js';
export * as ops from './tensor/ops/index.js';
