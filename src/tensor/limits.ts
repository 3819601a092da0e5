/** What a device was created with: the adapter's description, optional features and limits. */

export interface DeviceLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupSizeX: number;
  maxComputeWorkgroupSizeY: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
  minStorageBufferOffsetAlignment: number;
  minUniformBufferOffsetAlignment: number;
  maxUniformBufferBindingSize: number;
}

export interface DeviceInfo {
  /** Adapter description as the driver reports it (vendor, architecture, device, description). */
  adapter: string;
  features: { shaderF16: boolean; subgroups: boolean; timestampQuery: boolean };
  /** Largest subgroup size the adapter may use (0 if unknown). */
  subgroupMaxSize: number;
  /** Smallest subgroup size the adapter may use (0 if unknown); equal to the largest where the width is fixed. */
  subgroupMinSize: number;
  limits: DeviceLimits;
}

/** The optional features kernels use where present. */
export type OptionalFeature = 'shader-f16' | 'subgroups' | 'timestamp-query';

const OPTIONAL_FEATURES: OptionalFeature[] = ['shader-f16', 'subgroups', 'timestamp-query'];

const LIMIT_NAMES: Array<keyof DeviceLimits> = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
  'maxUniformBufferBindingSize',
];

/**
 * What to ask the adapter for: its own maxima ('adapter') or the specification's defaults
 * ('default'), and every optional feature it has except the disabled ones.
 */
export function deviceRequest(adapter: GPUAdapter, limits: 'adapter' | 'default', disabled: readonly OptionalFeature[]): GPUDeviceDescriptor {
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    if (name.startsWith('min') || limits === 'default') continue;
    requiredLimits[name] = adapter.limits[name];
  }
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f) && !disabled.includes(f));
  return { requiredLimits, requiredFeatures };
}

/** The info of a device created from this adapter. */
export function deviceInfo(adapter: GPUAdapter, gpu: GPUDevice): DeviceInfo {
  const limits = {} as DeviceLimits;
  for (const name of LIMIT_NAMES) limits[name] = gpu.limits[name];
  const ai = adapter.info;
  const desc = [ai?.vendor, ai?.architecture, ai?.device, ai?.description].filter((s) => s).join(' ');
  return {
    adapter: desc || 'unknown adapter',
    features: {
      shaderF16: gpu.features.has('shader-f16'),
      subgroups: gpu.features.has('subgroups'),
      timestampQuery: gpu.features.has('timestamp-query'),
    },
    subgroupMaxSize: (ai as { subgroupMaxSize?: number } | undefined)?.subgroupMaxSize ?? 0,
    subgroupMinSize: (ai as { subgroupMinSize?: number } | undefined)?.subgroupMinSize ?? 0,
    limits,
  };
}

/** The width every subgroup of the device has (its smallest and largest sizes equal), or 0 without subgroups or with varying ones. */
export function fixedSubgroupWidth(info: Pick<DeviceInfo, 'features' | 'subgroupMinSize' | 'subgroupMaxSize'>): number {
  const { features, subgroupMinSize: min, subgroupMaxSize: max } = info;
  return features.subgroups && min > 0 && min === max ? min : 0;
}
