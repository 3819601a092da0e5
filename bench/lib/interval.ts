/**
 * How sure a speed ratio is: methods run in turn on the same prompts, so each (round, prompt) gives a pair of
 * runs, and the ratio of the two methods' pooled rates (all tokens over all time) gets a percentile bootstrap
 * interval over those pairs. It holds the spread between prompts and the machine's noise within a pair.
 */
import { Rng } from '../../src/decode/rng.js';

/** Tokens generated and the time they took (ms). */
export interface RunTime {
  tokens: number;
  ms: number;
}

export interface RatioInterval {
  /** Pooled rate of `a` over pooled rate of `b`. */
  ratio: number;
  low: number;
  high: number;
}

/** (Σ tokens / Σ ms of a) / (Σ tokens / Σ ms of b) over the pairs. */
export function pooledRatio(pairs: ReadonlyArray<readonly [RunTime, RunTime]>): number {
  let [aTokens, aMs, bTokens, bMs] = [0, 0, 0, 0];
  for (const [a, b] of pairs) {
    aTokens += a.tokens;
    aMs += a.ms;
    bTokens += b.tokens;
    bMs += b.ms;
  }
  return aTokens / aMs / (bTokens / bMs);
}

/** The pooled ratio of `a` to `b` and its central `level` bootstrap interval, resampling the pairs (seeded). */
export function pairedRatioInterval(
  pairs: ReadonlyArray<readonly [RunTime, RunTime]>,
  { level = 0.95, resamples = 4000, seed = 1 }: { level?: number; resamples?: number; seed?: number } = {},
): RatioInterval {
  if (pairs.length === 0) throw new RangeError('a ratio needs at least one pair of runs');
  const rng = new Rng(seed);
  const draws = new Float64Array(resamples);
  const sample: Array<readonly [RunTime, RunTime]> = new Array(pairs.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < pairs.length; i++) sample[i] = pairs[Math.floor(rng.uniform() * pairs.length)];
    draws[r] = pooledRatio(sample);
  }
  draws.sort();
  const at = (q: number) => draws[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))];
  return { ratio: pooledRatio(pairs), low: at((1 - level) / 2), high: at((1 + level) / 2) };
}
