/**
 * Batch timing: R calls recorded into one batch, one sync, time per call = batch time / R;
 * the median over several batches (of several calls, taken in turn). Wall-clock, so per-dispatch overhead counts as it does
 * in a decode loop. R is sized so a batch lasts about `batchMs`; slow calls get fewer batches,
 * and a call slower than half the budget is measured once.
 */

export interface TimingOptions {
  /** Aim for batches of about this long (ms). */
  batchMs?: number;
  /** Batches to take the median of. */
  batches?: number;
  /** Most time to spend measuring one configuration, after warm-up (ms). */
  budgetMs?: number;
  maxReps?: number;
  /** Skip the warm-up call (the pipeline is already compiled and the call is very slow). */
  warmup?: boolean;
}

/** One tfjs-backend-webgpu measurement beside ours (tfjs.ts), kept with the row it compares against. */
export interface TfjsResult {
  ms?: number;
  once?: boolean;
  error?: string;
  /** Not attempted, and why. */
  skipped?: string;
}

export interface Timing {
  /** Median time per call over the batches (ms). */
  ms: number;
  /** Fastest batch, per call (ms). */
  min: number;
  /** Per-call time of each batch (ms). */
  samples: number[];
  reps: number;
  batches: number;
  /** Too slow to repeat: one call (after the warm-up call, if any). */
  once: boolean;
}

export async function timeCalls(call: () => void, sync: () => Promise<void>, opts: TimingOptions = {}): Promise<Timing> {
  const [t] = await timeEach([call], sync, opts);
  if (t instanceof Error) throw t;
  return t;
}

/**
 * Times several calls under the same conditions: their batches are taken in turn, so a change
 * of load on a shared machine hits them all alike. `budgetMs` is per call. A call that throws
 * (at recording or at sync) gets its error instead of a timing; the others go on.
 */
export async function timeEach(calls: Array<() => void>, sync: () => Promise<void>, opts: TimingOptions = {}): Promise<Array<Timing | Error>> {
  const { batchMs = 200, batches = 5, budgetMs = 3000, maxReps = 256, warmup = true } = opts;
  const out: Array<Timing | Error> = [];
  const probes: number[] = [];
  for (const call of calls) {
    try {
      if (warmup) {
        // Compiles the pipeline, creates bind groups, clears fresh buffers.
        call();
        await sync();
      }
      const t0 = performance.now();
      call();
      await sync();
      probes.push(performance.now() - t0);
      out.push({ ms: probes[probes.length - 1], min: 0, samples: [], reps: 0, batches: 0, once: true });
    } catch (e) {
      probes.push(0);
      out.push(e as Error);
    }
  }
  const live = out.map((t, i) => i).filter((i) => !(out[i] instanceof Error));
  const reps = probes.map((p) => clamp(Math.round(batchMs / Math.max(p, 1e-3)), 1, maxReps));
  const perRound = live.reduce((s, i) => s + probes[i] * reps[i], 0);
  const n = Math.min(batches, Math.floor((budgetMs * live.length) / Math.max(perRound, 1e-3)));
  if (n < 2) {
    for (const i of live) out[i] = { ms: probes[i], min: probes[i], samples: [probes[i]], reps: 1, batches: 1, once: true };
    return out;
  }
  const samples: number[][] = calls.map(() => []);
  for (let b = 0; b < n; b++) {
    for (const i of live) {
      if (out[i] instanceof Error) continue;
      try {
        const t0 = performance.now();
        for (let r = 0; r < reps[i]; r++) calls[i]();
        await sync();
        samples[i].push((performance.now() - t0) / reps[i]);
      } catch (e) {
        out[i] = e as Error;
      }
    }
  }
  for (const i of live) {
    if (out[i] instanceof Error) continue;
    const s = samples[i];
    out[i] = { ms: median(s), min: Math.min(...s), samples: s, reps: reps[i], batches: s.length, once: false };
  }
  return out;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, x));
}
