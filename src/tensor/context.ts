/**
 * The GPUDevice with its health: the lost-device promise, asynchronous errors reported by error
 * scopes or uncaptured, buffer creation, and waiting for submitted work. Every part of a Device
 * shares one.
 */
import { DeviceLostError, GPULimitError, GPUOutOfMemoryError, GPUValidationError } from './errors.js';
import type { DeviceLimits } from './limits.js';
import type { KernelTuning } from './tuning.js';

/**
 * How the device waits for `settled` (GPU work, or the device lost). The default awaits it;
 * Node's entry hands the device a napping one (node-wait.ts) that reads its timings from `tuning`.
 */
export type GPUWait = (settled: Promise<unknown>, tuning: Readonly<KernelTuning>) => Promise<void>;

export class GPUContext {
  private lostMessage: string | null = null;
  private readonly lostPromise: Promise<never>;
  private firstError: Error | null = null;
  private pendingScopes: Promise<GPUError | null>[] = [];

  constructor(
    readonly gpu: GPUDevice,
    readonly limits: DeviceLimits,
    private readonly tuning: () => Readonly<KernelTuning>,
    private readonly wait: GPUWait = async (settled) => void (await settled),
  ) {
    this.lostPromise = gpu.lost.then((l) => {
      this.lostMessage = `${l.reason}: ${l.message}`;
      throw new DeviceLostError(`GPU device lost (${this.lostMessage})`);
    });
    this.lostPromise.catch(() => undefined);
    gpu.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.firstError ??= toError(ev.error);
    };
  }

  get isLost(): boolean {
    return this.lostMessage !== null;
  }

  /** Throws if the device is lost or an earlier asynchronous GPU error was reported. */
  checkAlive(): void {
    if (this.lostMessage !== null) throw new DeviceLostError(`GPU device lost (${this.lostMessage})`);
    if (this.firstError) {
      const e = this.firstError;
      this.firstError = null;
      throw e;
    }
  }

  /** Records an error that takes precedence over the ones it causes later (an invalid pipeline's). */
  fail(e: Error): void {
    this.firstError = e;
  }

  createBuffer(size: number, usage: number, label: string): GPUBuffer {
    this.checkAlive();
    if (size > this.limits.maxBufferSize) {
      throw new GPULimitError(`${label}: buffer of ${size} bytes exceeds the adapter's maxBufferSize (${this.limits.maxBufferSize})`);
    }
    this.gpu.pushErrorScope('out-of-memory');
    const buf = this.gpu.createBuffer({ size: align(size, 4), usage, label });
    this.watch(this.gpu.popErrorScope());
    return buf;
  }

  /** Keeps a popped error scope until checkScopes reports it. */
  watch(scope: Promise<GPUError | null>): void {
    this.pendingScopes.push(scope);
  }

  /** Reports the errors of every scope watched so far, and a lost device. */
  async checkScopes(): Promise<void> {
    const pending = this.pendingScopes;
    this.pendingScopes = [];
    for (const e of await Promise.all(pending)) {
      if (e) this.firstError ??= toError(e);
    }
    this.checkAlive();
  }

  /** Settles with `work`, or rejects when the device is lost first. */
  waitFor(work: Promise<unknown>): Promise<void> {
    return this.wait(Promise.race([work, this.lostPromise]), this.tuning());
  }

  /** `work`, or a rejection when the device is lost first; without the wait strategy (for work off the queue). */
  unlessLost<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.lostPromise]);
  }
}

function toError(e: GPUError): Error {
  const name = e.constructor?.name ?? '';
  if (name.includes('OutOfMemory')) return new GPUOutOfMemoryError(`GPU out of memory: ${e.message}`);
  return new GPUValidationError(e.message);
}

export function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
