/** The decode bench's interval for a speed ratio (bench/lib/interval.ts). */
import { describe, expect, it } from 'vitest';
import { pairedRatioInterval, pooledRatio, type RunTime } from '../bench/lib/interval.js';

const run = (tokens: number, ms: number): RunTime => ({ tokens, ms });

describe('paired ratio interval', () => {
  it('pools tokens and time: a long run counts for more than a short one', () => {
    // a: 64 tokens in 1000 ms and 64 in 500 ms; b: 128 tokens in 2000 ms.
    expect(pooledRatio([[run(64, 1000), run(64, 1000)], [run(64, 500), run(64, 1000)]])).toBeCloseTo(128 / 1500 / (128 / 2000), 12);
  });

  it('one method twice as fast in every pair: the interval is that ratio alone', () => {
    const pairs = Array.from({ length: 10 }, (_, i) => [run(64, 500 + 50 * i), run(64, 1000 + 100 * i)] as const);
    expect(pairedRatioInterval(pairs)).toEqual({ ratio: 2, low: 2, high: 2 });
  });

  it('pairs that disagree give an interval around the pooled ratio, wider with fewer pairs', () => {
    const pairs = Array.from({ length: 40 }, (_, i) => [run(64, i % 2 ? 600 : 900), run(64, 1000)] as const);
    const many = pairedRatioInterval(pairs);
    const few = pairedRatioInterval(pairs.slice(0, 6));
    expect(many.low).toBeLessThan(many.ratio);
    expect(many.high).toBeGreaterThan(many.ratio);
    expect(many.low).toBeGreaterThan(1000 / 900);
    expect(many.high).toBeLessThan(1000 / 600);
    expect(few.high - few.low).toBeGreaterThan(many.high - many.low);
  });

  it('the same runs and seed give the same interval', () => {
    const pairs = Array.from({ length: 12 }, (_, i) => [run(64, 700 + 37 * ((i * 7) % 5)), run(64, 1000)] as const);
    expect(pairedRatioInterval(pairs, { seed: 3 })).toEqual(pairedRatioInterval(pairs, { seed: 3 }));
  });

  it('no pairs is an error, not a ratio of nothing', () => {
    expect(() => pairedRatioInterval([])).toThrow(/at least one pair/);
  });
});
