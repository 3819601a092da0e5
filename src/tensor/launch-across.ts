/**
 * First runs of kernels spread over several devices of one adapter. A driver that compiles a pipeline's
 * machine code at its first run (Mesa's llvmpipe) does so on the device's queue thread, one kernel after another,
 * while the other cores idle. Helper devices compile other kernels meanwhile, and the driver's on-disk shader
 * cache then hands the main device their machine code: its own first runs of them take milliseconds.
 * Both are measured, not assumed: helpers start only once a kernel's first run takes long enough to be a
 * compilation, and stop as soon as the main device's run of a helper's kernel is not much faster than the
 * helper's was (no shared cache). docs/performance.md, "Compiling kernels".
 */

/** Runs a kernel once (a driver that compiles at first runs compiles it then). */
export interface Launcher<K> {
  launch(kernel: K): Promise<void>;
}

export interface HelperLauncher<K> extends Launcher<K> {
  destroy(): void;
}

export interface LaunchAcrossOptions<K> {
  /** Helper devices to start, at most. */
  helpers: number;
  /** A helper device; null (or a rejection) when none can be had. */
  makeHelper: () => Promise<HelperLauncher<K> | null>;
  /** A first run at least this long is taken for a compilation. */
  compileMs: number;
  /** The main device's run of a helper's kernel counts as served from a cache below this fraction of the helper's time. */
  cachedFraction: number;
  /** Called as kernels have run on some device: how many so far. */
  onLaunched?: (done: number) => void;
  /**
   * Keep the main device's queue free (for decoding beside the warm-up): once helpers start they run every kernel
   * first; the main device runs one of theirs to check that the cache serves it, and the rest at the end. Without a
   * helper, or without a shared cache, it runs them itself.
   */
  mainLast?: boolean;
  /** Start helpers without a first run on the main device to show that first runs compile (the caller has seen it). */
  helpersAtOnce?: boolean;
  /** Once aborted, no kernel is started: the call resolves when the runs under way have ended (the rest run, and compile, at their first use). */
  signal?: AbortSignal;
}

/** What a device hands its launches: the options less the progress callback, which each launch brings. */
export type LaunchHelpers<K> = Omit<LaunchAcrossOptions<K>, 'onLaunched'>;

/** How the kernels ran: on the main device alone, or with helpers (and whether their cache reached it). */
export interface LaunchAcrossResult {
  helpers: number;
  /** Kernels a helper ran first. */
  byHelpers: number;
  /** Whether the main device's first run of a helper's kernel was served from the cache (undefined: not tried). */
  cacheShared?: boolean;
}

/** Runs every kernel of `specs` on `main`, with helpers compiling some of them first where that pays. */
export async function launchAcross<K>(main: Launcher<K>, specs: readonly K[], o: LaunchAcrossOptions<K>): Promise<LaunchAcrossResult> {
  const queue = [...specs];
  let done = 0;
  const timed = async (l: Launcher<K>, spec: K): Promise<number> => {
    const t0 = performance.now();
    await l.launch(spec);
    return performance.now() - t0;
  };
  const stopped = () => o.signal?.aborted === true;
  const alone = async (): Promise<LaunchAcrossResult> => {
    for (let s = stopped() ? undefined : queue.shift(); s !== undefined; s = stopped() ? undefined : queue.shift()) {
      await main.launch(s);
      o.onLaunched?.(++done);
    }
    return { helpers: 0, byHelpers: 0 };
  };
  // Alone while first runs are quick (a driver that compiles at pipeline creation, or a cache that holds the
  // kernels); helpers once one is a compilation.
  if (o.helpersAtOnce) {
    if (o.helpers < 1 || queue.length === 0) return alone();
  } else {
    for (;;) {
      const s = stopped() ? undefined : queue.shift();
      if (s === undefined) return alone();
      const ms = await timed(main, s);
      o.onLaunched?.(++done);
      if (o.helpers < 1 || queue.length < (o.mainLast ? 1 : 2)) return alone();
      if (ms >= o.compileMs) break;
    }
  }

  const made = await Promise.all(Array.from({ length: Math.min(o.helpers, o.mainLast ? queue.length : queue.length - 1) }, () => o.makeHelper().catch(() => null)));
  const helpers = made.filter((h): h is HelperLauncher<K> => h !== null);
  if (!helpers.length) return alone();
  // Kernels a helper ran first, which the main device runs at the end (from the cache, if it holds them).
  const theirs: Array<{ spec: K; ms: number }> = [];
  /** Kernels a helper failed to run: the main device runs them at the end, as it would have. */
  const failed: K[] = [];
  let cacheShared: boolean | undefined;
  let byHelpers = 0;
  let firstRun = () => {};
  const someRun = new Promise<void>((resolve) => (firstRun = resolve));
  const helperLoop = async (h: HelperLauncher<K>) => {
    for (let s = queue.shift(); s !== undefined; s = cacheShared === false || stopped() ? undefined : queue.shift()) {
      let ms: number;
      try {
        ms = await timed(h, s);
      } catch {
        failed.push(s);
        return;
      }
      theirs.push({ spec: s, ms });
      firstRun();
      byHelpers++;
      o.onLaunched?.(++done);
    }
  };
  const mainLoop = async (helping: Promise<unknown>) => {
    if (o.mainLast) await Promise.race([someRun, helping]);
    while (!stopped()) {
      if (cacheShared === undefined && theirs.length) {
        const { spec, ms } = theirs.shift()!;
        const mine = await timed(main, spec);
        // A quick helper run compiled nothing (a cache held the kernel already): it tells nothing.
        if (ms >= o.compileMs) cacheShared = mine < ms * o.cachedFraction;
        continue;
      }
      if (o.mainLast && cacheShared !== false) return;
      const s = queue.shift();
      if (s === undefined) return;
      await main.launch(s);
      o.onLaunched?.(++done);
    }
  };
  try {
    const helping = Promise.all(helpers.map(helperLoop));
    await Promise.all([mainLoop(helping), helping]);
  } finally {
    // If the main device failed, the helpers take nothing more.
    queue.length = 0;
    for (const h of helpers) h.destroy();
  }
  for (const { spec } of theirs) if (!stopped()) await main.launch(spec);
  for (const spec of failed) {
    if (stopped()) break;
    await main.launch(spec);
    o.onLaunched?.(++done);
  }
  return { helpers: helpers.length, byHelpers, cacheShared };
}
