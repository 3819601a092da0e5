import { createNodeDevice } from '../../src/node.js';
import type { Device } from '../../src/tensor/device.js';

let shared: Promise<Device> | null = null;

/** One device per test worker. */
export function getDevice(): Promise<Device> {
  shared ??= createNodeDevice();
  return shared;
}
