/**
 * Node's way to wait for the GPU (createNodeDevice hands it to the device; the browser entry
 * never imports it). Dawn's Node binding settles a pending map or onSubmittedWorkDone from
 * setImmediate ticks that it re-queues until the GPU is done, which keeps one CPU core busy all
 * along: an adapter that executes on the same cores (a software Vulkan driver) then runs slower.
 * Napping between ticks (timings: KernelTuning's nap fields) frees the core. Needs
 * setImmediate, and Atomics.wait on the main thread.
 */
import type { GPUWait } from './context.js';

/** Atomics.wait on a cell nobody notifies: a sleep that blocks the thread without spinning. */
let napCell: Int32Array | null = null;

export const napWhileWaiting: GPUWait = async (settled, { napFraction, minNapMs, maxNapMs }) => {
  let done = false;
  settled.then(() => (done = true), () => (done = true));
  napCell ??= new Int32Array(new SharedArrayBuffer(4));
  const t0 = performance.now();
  while (!done) {
    const nap = Math.min(maxNapMs, napFraction * (performance.now() - t0));
    if (nap >= minNapMs) Atomics.wait(napCell, 0, 0, nap);
    await new Promise((r) => setImmediate(r));
  }
  await settled;
};
