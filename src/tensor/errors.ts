/** Errors of the tensor runtime. Each names what was asked for and the limit it hit. */

export class WebGPUUnavailableError extends Error {
  override name = 'WebGPUUnavailableError';
}

export class DeviceLostError extends Error {
  override name = 'DeviceLostError';
}

/** A request exceeds a limit of the adapter (binding size, buffer size, workgroups…). */
export class GPULimitError extends Error {
  override name = 'GPULimitError';
}

export class GPUOutOfMemoryError extends Error {
  override name = 'GPUOutOfMemoryError';
}

/** The driver rejected a call (validation error), with the driver's own message. */
export class GPUValidationError extends Error {
  override name = 'GPUValidationError';
}

/** Operands of an op do not fit together. */
export class ShapeError extends Error {
  override name = 'ShapeError';
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function assertShape(cond: boolean, op: string, msg: string): asserts cond {
  if (!cond) throw new ShapeError(`${op}: ${msg}`);
}

/** A kernel tuning value (Device.create's `tuning`, or autotuning's) outside what the kernels support. */
export class TuningError extends Error {
  override name = 'TuningError';

  constructor(
    readonly field: string,
    readonly allowed: string,
    readonly value: unknown,
  ) {
    super(`tuning.${field} must be ${allowed}, got ${JSON.stringify(value)}`);
  }
}
